"""Readable names of audit events, translated (``lazy_gettext``): what a report prints instead
of codes. An event without an entry is shown by a readable form of its code (and the test
``test_every_recorded_event_has_a_label`` names it)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

EVENT_LABELS: dict[str, Any] = {
    # sign-in, sessions, tokens
    "login.succeeded": _l("Sign-in succeeded"),
    "login.failed": _l("Sign-in failed"),
    "login.locked_out": _l("Account locked after failed sign-ins"),
    "login.unlocked": _l("Account unlocked"),
    "logout": _l("Signed out"),
    "logout.backchannel_delivered": _l("Sign-out delivered to an application"),
    "token.issued": _l("Token issued to an application"),
    "token.refused": _l("Token refused"),
    "token.code_replay": _l("Authorisation code used twice (possible attack)"),
    "token.refresh_reuse": _l("Refresh token reused (possible theft)"),
    "token.refresh_retry": _l("Refresh token retried after its answer was lost"),
    "client.created": _l("Application registered"),
    "client.removed": _l("Application removed"),
    "client.required_level_changed": _l("Application's required sign-in level changed"),
    "keys.created": _l("Signing key created"),
    "keys.rotated": _l("Signing keys rotated"),
    "keys.removed": _l("Signing key removed"),
    # second factor
    "mfa.code_rejected": _l("One-time code rejected"),
    "mfa.throttled": _l("Too many wrong one-time codes"),
    "mfa.recovery_code_used": _l("Recovery code used"),
    "mfa.recovery_codes.regenerated": _l("Recovery codes renewed"),
    "mfa.reset": _l("Second factor reset"),
    "mfa.reset_refused": _l("Second factor reset refused"),
    "mfa.totp.enrolled": _l("Authenticator app enrolled"),
    "mfa.totp.enrollment_started": _l("Authenticator app enrolment started"),
    "mfa.totp.enrollment_code_rejected": _l("Authenticator app enrolment code rejected"),
    "mfa.totp.removed": _l("Authenticator app removed"),
    # smart cards
    "card.verified": _l("Smart card verified"),
    "card.bound": _l("Smart card linked to an account"),
    "card.binding_revoked": _l("Smart card link removed"),
    "card.login_refused": _l("Smart card sign-in refused"),
    "card.tls_refused": _l("Smart card refused during the connection"),
    "card.revocation_unknown_accepted": _l("Smart card accepted without revocation status"),
    "card.ca_added": _l("Card authority added"),
    "card.ca_removed": _l("Card authority removed"),
    "card.account_requested": _l("Account requested with a smart card"),
    "card.account_request_approved": _l("Smart card account request approved"),
    "card.account_request_denied": _l("Smart card account request denied"),
    "card.account_created": _l("Account created for a smart card"),
    # accounts and passwords
    "user.created": _l("Account created"),
    "identity.disabled": _l("Account disabled"),
    "identity.enabled": _l("Account enabled"),
    "identity.inactive_in_directory": _l("Account found disabled in the directory"),
    "password.reset": _l("Password reset by an administrator"),
    "password.changed": _l("Password changed"),
    "password.expiry_reminder": _l("Password expiry reminder sent"),
    "directory.group_created": _l("Directory group created"),
    "directory.member_removed": _l("Removed from a directory group"),
    # privileged access
    "pim.requested": _l("Privileged role requested"),
    "pim.approval": _l("Privileged request approval given"),
    "pim.approved": _l("Privileged role approved"),
    "pim.denied": _l("Privileged role denied"),
    "pim.activated": _l("Privileged role activated"),
    "pim.access_removed": _l("Privileged access removed"),
    "pim.break_glass": _l("Emergency (break-glass) access used"),
    "pim.break_glass_reviewed": _l("Emergency access reviewed"),
    "pim.admin_account_created": _l("Administrator account created"),
    "pim.admin_session_started": _l("Administrator session started"),
    "pim.password_shown": _l("Administrator password shown"),
    "pim.eligibility_added": _l("Eligibility for a privileged role added"),
    "pim.eligibility_removed": _l("Eligibility for a privileged role removed"),
    "pim.role_saved": _l("Privileged role definition saved"),
    "pim.role_override_deleted": _l("Privileged role definition reset"),
    "pim.shared_added": _l("Shared account added"),
    "pim.shared_checkout": _l("Shared account password checked out"),
    "pim.shared_rotated": _l("Shared account password changed"),
    "pim.shared_rotation_queued": _l("Shared account password change queued"),
    "pim.dev_recheck": _l("Password re-checked (development)"),
    "pim.dev_recheck_failed": _l("Password re-check failed (development)"),
    "pim.out_of_band": _l("Privileged change made outside PIM"),
    # HR
    "hr.joiner": _l("Joiner: account prepared"),
    "hr.started": _l("Joiner started work"),
    "hr.mover": _l("Mover: access changed"),
    "hr.leaver": _l("Leaver: access ended"),
    "hr.rehire": _l("Rehired"),
    "hr.access_removed": _l("Access removed after a move"),
    "hr.purged": _l("Former employee's data reduced"),
    "hr.password_delivered": _l("Initial password delivered"),
    "hr.password_withdrawn": _l("Initial password withdrawn"),
    "hr.event.accepted": _l("HR event accepted"),
    "hr.event.dead": _l("HR event failed"),
    "hr.event.discarded": _l("HR event discarded"),
    "hr.event.replayed": _l("HR event replayed"),
    "hr.event.superseded": _l("HR event superseded"),
    "hr.reconciled": _l("Directory reconciled with HR"),
    "hr.reconcile.alert": _l("Directory differs from HR"),
    # access reviews
    "review.campaign_started": _l("Access review started"),
    "review.decided": _l("Access review decision"),
    "review.decision_refused": _l("Access review decision refused"),
    "review.auto_decided": _l("Access review decided automatically"),
    "review.delegated": _l("Access review delegated"),
    "review.escalated": _l("Access review escalated"),
    "review.extended": _l("Access review extended"),
    "review.reminded": _l("Access review reminder sent"),
    "review.apply": _l("Access review result applied"),
    "review.remediated": _l("Access removed after review"),
    "review.verified": _l("Access review result verified"),
    "review.report": _l("Access review report produced"),
    # the audit log itself, jobs
    "job.dead": _l("Background task gave up"),
    "siem.unreachable": _l("SIEM collector unreachable"),
    "siem.resumed": _l("SIEM collector reachable again"),
    "audit.archive_written": _l("Weekly audit archive written"),
    "audit.archive_missed": _l("Weekly audit archive missing"),
    "audit.archive_pruned": _l("Old audit archives deleted"),
    "audit.report": _l("Audit report produced"),
    "audit.review_signed": _l("Monthly audit review signed off"),
    "audit.review_overdue": _l("Monthly audit review overdue"),
    # administration console
    "admin.password_reset": _l("Password reset by the help desk"),
    "admin.refused": _l("Console action refused"),
    "admin.session_ended": _l("Session ended by an administrator"),
    "admin.sessions_ended": _l("All sessions ended by an administrator"),
    "audit.exported": _l("Audit log exported"),
    "audit.verify_failed": _l("Audit log verification failed"),
    "audit.verify_requested": _l("Audit log verification requested"),
    "job.discarded": _l("Job discarded"),
    "job.retried": _l("Job retried"),
    "user.unlocked": _l("Account unlocked by an administrator"),
    "client.credential_rotated": _l("Application secret or key replaced"),
    "client.portal_changed": _l("Application's portal entry or allowed groups changed"),
    "client.updated": _l("Application changed"),
    "pim.shared_rotation_requested": _l("Shared account password change requested"),
    # alerts and AD changes
    "alert.change_refused": _l("Alert change refused"),
    "directory.baseline": _l("AD change analysis started from a new baseline"),
    # portal, policy and languages
    "authorize.not_assigned": _l("Application refused: not assigned to the person"),
    "policy.accepted": _l("Security policy accepted"),
    "policy.report_refused": _l("Policy acceptance report refused"),
    "person.language_changed": _l("Language changed"),
    # access requests
    "request.decision_refused": _l("Access request decision refused"),
    "request.end_failed": _l("Ending a granted right failed"),
    "request.ended": _l("Granted right ended"),
    "request.escalated": _l("Access request escalated"),
    "request.fulfilment_failed": _l("Granting a right in the directory failed"),
    "request.granted": _l("Requested right granted"),
    "request.refused_submission": _l("Access request not accepted"),
    # backups and conformance
    "backup.created": _l("Backup created"),
    "backup.drill": _l("Restore drill"),
    "backup.drill_overdue": _l("Restore drill overdue"),
    "backup.restored": _l("Restored from a backup"),
    "conformance.report": _l("Conformance report made"),
}

SEVERITY_LABELS: dict[str, Any] = {
    "normal": _l("normal"),
    "significant": _l("significant"),
    "critical": _l("critical"),
}

OUTCOME_LABELS: dict[str, Any] = {"success": _l("success"), "failure": _l("failure")}


def event_label(code: str) -> str:
    """The event's readable name in the current language (a readable form of the code when
    the table has none)."""
    label = EVENT_LABELS.get(code)
    if label is not None:
        return str(label)
    return code.replace(".", ": ").replace("_", " ").capitalize()


def severity_label(code: str) -> str:
    return str(SEVERITY_LABELS.get(code, code))


def outcome_label(code: str) -> str:
    return str(OUTCOME_LABELS.get(code, code))
