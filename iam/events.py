"""In-process domain signals (blinker). The core sends, feature packages subscribe.

Receivers are called inside the sender's transaction with ``session=`` so their writes (e.g.
revoking tokens, enqueuing back-channel logouts) commit together with the change.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

identity_disabled = _signals.signal("identity-disabled")
"""sender: sub (str); kwargs: session, reason. SSO ends sessions and tokens."""

identity_signed_out = _signals.signal("identity-signed-out")
"""sender: sub (str); kwargs: session, sso_session_id."""

client_changed = _signals.signal("client-changed")
"""sender: client_id (str). Caches of client registrations drop the entry."""

client_certificate_refused = _signals.signal("client-certificate-refused")
"""sender: the peer's address (str). The TLS handshake (gunicorn terminating TLS, ``iam serve
--certfile … --client-certs optional``) refused the client's certificate before any request
was read; kwargs: session, verify_code (OpenSSL X509_V_ERR_*), verify_message. The card
sign-in records it (``card.tls_refused``)."""

review_requested = _signals.signal("review-requested")
"""sender: account id (str) whose holder's access needs a review now; kwargs: session, event
(``mover``, ``rehire``, ``break_glass``, ``out_of_band``), actor. Access reviews start a campaign
for that person from every definition that names the event (R-JML-4, R-PIM-7, R-PIM-8)."""

job_dead = _signals.signal("job-dead")
"""sender: the job's id; kwargs: session, kind, attempts. Sent by iam.jobs in the transaction that
marks a job dead after its last attempt; iam.audit records ``job.dead`` (so jobs need not import
audit, which queues its notifications as jobs)."""

audit_anchored = _signals.signal("audit-anchored")
"""sender: kind (``genesis``/``rows``/``seal``); kwargs: entry (the anchor line as a dict, with its
MAC). Sent after the commit that the line anchors (iam.audit_anchor). The hook for the SIEM
stream (R-AUD-5): a receiver forwards each line off the host; ``audit.anchor_syslog`` is the
built-in one."""
