"""Access requests (R-JML-7, PABIANICE §2–§5): a person, or their manager for them, asks for a
right from the catalogue of requestable rights (``policies/requestable.toml``); the approval
chain (manager → resource owner → security officer's opinion) decides within deadlines counted
in working days; a grant reaches AD through a durable job, is read back, enters the register of
authorised persons with its decision number, and is the right's origin in the next review.
A time-limited grant ends by itself through the same job table."""
