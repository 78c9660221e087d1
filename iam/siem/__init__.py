"""Streaming the audit log to the organisation's SIEM (R-AUD-5, issue 15 part 1).

The worker reads the *sealed* chain from a durable cursor per destination (``siem_cursors``)
and sends it in chain order: RFC 5424 syslog over TLS (RFC 5425 octet counting) or JSON lines
over HTTPS, each event as RFC 5424 structured data, CEF or JSON. A batch moves the cursor only
after the collector has taken it (at least once); a collector that is down keeps its events
waiting, counted in ``/metrics`` and ``/readyz``. The sealed chain head (the external anchor)
goes along after each batch. Rooms: :mod:`.formats` (what a record looks like),
:mod:`.transport` (how it travels), :mod:`.service` (cursor, lease, backlog), :mod:`.jobs`.
"""
