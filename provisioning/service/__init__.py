"""Domain logic of provisioning (no Flask): accepting events, the joiner/mover/leaver engine,
policies, password delivery, batch files, reconciliation and the register."""
