"""Reports for people (R-AUD-3, Pabianice §69, Čačak Član 30; issue 15 part 5): the audit log
for a period, a person, an application or a severity as a printable PDF and CSV with readable
event names (:mod:`.labels`), and the security officer's monthly review with its sign-off
(:mod:`.review`). Rooms: ``labels``, ``service`` (queries, CSV), ``pdf``, ``review``, ``views``,
``cli``, ``jobs``."""
