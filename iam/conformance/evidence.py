"""Live evidence for one check of a rulebook article: met / not met / not configured.

Each check is a function registered under a name (``@evidence("password.age")``) that reads our
own records — settings, the database, the audit log, the directory — for the report's period
and returns an :class:`Evidence` with the items that decide it (accounts, events) and the
query that produced it, so an auditor can re-run it. The core's checks are here; feature
packages register theirs (``pim/conformance.py``, ``provisioning/conformance.py``). A check no
package registers is reported as *not configured*.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func, select

from iam import audit, clock
from iam.models import AuditEvent

if TYPE_CHECKING:
    from iam.services import Services

Status = Literal["met", "not met", "not configured"]
MET: Status = "met"
NOT_MET: Status = "not met"
NOT_CONFIGURED: Status = "not configured"
#: Items named per check at most (the count is always given).
MAX_ITEMS = 50


@dataclass
class Context:
    services: Services
    start: dt.datetime
    end: dt.datetime
    """The period: [start, end)."""
    language: str = "en"

    @property
    def now(self) -> dt.datetime:
        return min(clock.now(), self.end)


@dataclass
class Evidence:
    check: str
    status: Status
    summary: str
    items: list[str] = field(default_factory=list)
    query: str = ""
    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "summary": self.summary,
            "items": self.items[:MAX_ITEMS],
            "count": self.count or len(self.items),
            "query": self.query,
        }


EvidenceFn = Callable[[Context, dict[str, Any]], Evidence]
_registry: dict[str, EvidenceFn] = {}


def evidence(name: str) -> Callable[[EvidenceFn], EvidenceFn]:
    """Register the function that gives evidence for the check ``name``."""

    def deco(fn: EvidenceFn) -> EvidenceFn:
        _registry[name] = fn
        return fn

    return deco


def registered() -> list[str]:
    return sorted(_registry)


def gather(ctx: Context, name: str, params: dict[str, Any]) -> Evidence:
    fn = _registry.get(name)
    if fn is None:
        return Evidence(
            name,
            NOT_CONFIGURED,
            "No part of this installation gives evidence for it (the feature is not installed).",
        )
    try:
        return fn(ctx, params)
    except Exception as exc:  # a broken source must not hide the others: the report says so
        return Evidence(name, NOT_MET, f"The evidence could not be read: {type(exc).__name__}: {exc}")


# -- the core's checks --------------------------------------------------------------------------
CLASS_NAMES = {"lower": "lower", "upper": "upper", "digit": "digit", "special": "special"}


@evidence("password.profile")
def _password_profile(ctx: Context, p: dict[str, Any]) -> Evidence:
    """The effective password profile against the rulebook's numbers."""
    prof = ctx.services.password_profile
    gaps: list[str] = []
    have = [
        f"profile {prof.name}: minimum length {prof.min_length}",
        f"classes required {sorted(str(c) for c in prof.required_classes) or '-'}"
        + (
            f", {prof.min_classes} of {sorted(str(c) for c in prof.class_choice)}" if prof.min_classes else ""
        ),
        f"maximum age {prof.max_age_days or 'none'} days",
        f"history {prof.history_count} passwords / {prof.history_days} days",
        f"banned {sorted(prof.banned_identity_fields) or '-'}"
        + (", dictionary words" if prof.refuse_dictionary_words else ""),
    ]
    if prof.min_length < int(p.get("min_length", 0)):
        gaps.append(f"minimum length {prof.min_length} < {p['min_length']}")
    required = {str(c) for c in prof.required_classes}
    for cls in p.get("classes", []):
        if cls not in required and not (
            prof.min_classes >= len(p["classes"]) and cls in {str(c) for c in prof.class_choice}
        ):
            gaps.append(f"character class {cls} not required")
    for fieldname in p.get("banned", []):
        if fieldname not in prof.banned_identity_fields:
            gaps.append(f"{fieldname} not banned")
    if p.get("dictionary") and not prof.refuse_dictionary_words:
        gaps.append("dictionary words not refused")
    want_age = int(p.get("max_age_days", 0))
    if want_age and not (0 < prof.max_age_days <= want_age):
        gaps.append(f"maximum age {prof.max_age_days or 'none'} > {want_age} days")
    if int(p.get("history_days", 0)) > prof.history_days:
        gaps.append(f"time-based history {prof.history_days} < {p['history_days']} days")
    if int(p.get("history_count", 0)) > prof.history_count:
        gaps.append(f"history {prof.history_count} < {p['history_count']} passwords")
    return Evidence(
        "password.profile",
        NOT_MET if gaps else MET,
        "; ".join(gaps) if gaps else "The effective profile meets the article: " + "; ".join(have),
        items=have,
        query="iam policy show --json   # passwords.profile in iam.toml; policies/passwords/*.toml",
    )


@evidence("password.age")
def _password_age(ctx: Context, p: dict[str, Any]) -> Evidence:
    """Enabled accounts whose password is older than the rulebook's maximum age (from the directory)."""
    days = int(p.get("max_age_days") or ctx.services.password_profile.max_age_days or 0)
    if not days:
        return Evidence("password.age", NOT_CONFIGURED, "No maximum password age is set.")
    limit = ctx.now - dt.timedelta(days=days)
    old: list[str] = []
    total = 0
    for user in ctx.services.directory.search_users():
        if not user.enabled:
            continue
        total += 1
        if user.password_last_set is not None and user.password_last_set < limit:
            old.append(f"{user.username} (password set {user.password_last_set:%Y-%m-%d})")
    query = (
        f"(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
        f"(pwdLastSet<={_filetime(limit)}))   # in AD, under directory.users_ou"
        if ctx.services.settings.directory.kind == "ad"
        else "SELECT username, password_changed_at FROM local_users WHERE enabled"  # noqa: S608 — shown, never run
        f" AND password_changed_at < '{limit:%Y-%m-%d %H:%M}'"
    )
    return Evidence(
        "password.age",
        NOT_MET if old else MET,
        f"{len(old)} of {total} enabled accounts have a password older than {days} days"
        if old
        else f"All {total} enabled accounts changed their password within {days} days",
        items=sorted(old),
        count=len(old),
        query=query,
    )


def _filetime(when: dt.datetime) -> int:
    return int((when - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)).total_seconds() * 10_000_000)


@evidence("mfa.available")
def _mfa_available(ctx: Context, p: dict[str, Any]) -> Evidence:
    mfa = ctx.services.settings.mfa
    return Evidence(
        "mfa.available",
        MET,
        f"TOTP (RFC 6238, {mfa.digits} digits, {mfa.period} s) is offered as second factor;"
        " the level is in acr/amr",
        query="iam.toml [mfa]",
    )


@evidence("mfa.card")
def _mfa_card(ctx: Context, p: dict[str, Any]) -> Evidence:
    x = ctx.services.settings.x509
    if not x.enabled:
        return Evidence(
            "mfa.card",
            NOT_CONFIGURED,
            "Sign-in with a card (x509.enabled) is off.",
            query="iam.toml [x509] enabled",
        )
    return Evidence(
        "mfa.card",
        MET,
        f"Card sign-in is on; revocation {x.revocation}, fail_open={x.fail_open}",
        query="iam.toml [x509]",
    )


@evidence("sso.directory")
def _sso_directory(ctx: Context, p: dict[str, Any]) -> Evidence:
    kind = ctx.services.settings.directory.kind
    if kind != "ad":
        return Evidence(
            "sso.directory", NOT_CONFIGURED, "Accounts are in the built-in directory, not Active Directory."
        )
    return Evidence(
        "sso.directory",
        MET,
        f"Accounts are those of Active Directory ({ctx.services.settings.directory.url});"
        " disabled or locked accounts get no tokens",
    )


@evidence("audit.chain")
def _audit_chain(ctx: Context, p: dict[str, Any]) -> Evidence:
    with ctx.services.reader() as session:
        result = audit.verify(session)
        anchor = ctx.services.audit_anchor.latest_seal()
        events = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.at >= ctx.start, AuditEvent.at < ctx.end)
        )
    items = [f"{events} events in the period"]
    if ctx.end > clock.now():  # a running period: the chain as it stands (a past one stays reproducible)
        items.append(f"{result.checked} sealed events verified; {result.unsealed} not yet sealed")
        if anchor:
            items.append(f"last anchor: seq {anchor.get('seq')} at {anchor.get('at')}")
    return Evidence(
        "audit.chain",
        MET if result.ok else NOT_MET,
        "The audit log's hash chain verifies against its external anchor"
        if result.ok
        else f"The audit log does not verify: {result.problem}",
        items=items,
        query="iam audit verify --json",
    )


@evidence("backup.recent")
def _backup_recent(ctx: Context, p: dict[str, Any]) -> Evidence:
    from iam.models import BackupRecord

    if not ctx.services.settings.backup.recipients:
        return Evidence(
            "backup.recent", NOT_CONFIGURED, "No backup recipient is configured (backup.recipients)."
        )
    days = int(p.get("max_days", 1))
    with ctx.services.reader() as session:
        last = session.scalar(
            select(func.max(BackupRecord.at)).where(BackupRecord.kind == "created", BackupRecord.at < ctx.end)
        )
        n = session.scalar(
            select(func.count())
            .select_from(BackupRecord)
            .where(BackupRecord.kind == "created", BackupRecord.at >= ctx.start, BackupRecord.at < ctx.end)
        )
    ok = last is not None and ctx.now - last <= dt.timedelta(days=days, hours=6)
    return Evidence(
        "backup.recent",
        MET if ok else NOT_MET,
        f"{n} backups in the period; last {last:%Y-%m-%d %H:%M} UTC" if last else "No backup has been made",
        query="iam backup list --json",
    )


@evidence("backup.drill")
def _backup_drill(ctx: Context, p: dict[str, Any]) -> Evidence:
    from iam.models import BackupRecord

    days = int(p.get("max_days", ctx.services.settings.backup.drill_interval_days))
    with ctx.services.reader() as session:
        last = session.scalars(
            select(BackupRecord)
            .where(BackupRecord.kind == "drill", BackupRecord.ok.is_(True), BackupRecord.at < ctx.end)
            .order_by(BackupRecord.at.desc())
            .limit(1)
        ).first()
    if last is None and not ctx.services.settings.backup.recipients:
        return Evidence("backup.drill", NOT_CONFIGURED, "Backups are not configured (backup.recipients).")
    ok = last is not None and ctx.now - last.at <= dt.timedelta(days=days)
    return Evidence(
        "backup.drill",
        MET if ok else NOT_MET,
        f"Last successful restore drill {last.at:%Y-%m-%d}"
        f" ({last.details.get('rows')} rows, {last.details.get('seconds')} s)"
        if last
        else "No restore drill has been recorded",
        query="iam backup list --json   # kind = drill",
    )


@evidence("ops.encryption")
def _encryption(ctx: Context, p: dict[str, Any]) -> Evidence:
    """R-OPS-1: TLS to the database and to AD; secrets at rest encrypted; backups encrypted."""
    from sqlalchemy.engine import make_url

    s = ctx.services.settings
    gaps, have = (
        [],
        ["signing keys, TOTP seeds and client secrets encrypted at rest (AES-GCM, encryption_key)"],
    )
    url = make_url(s.database.url)
    if url.get_backend_name() == "postgresql":
        local = (url.host or "") in ("", "localhost", "127.0.0.1", "::1")
        if url.query.get("sslmode") == "verify-full":
            have.append("database connection: TLS, verify-full")
        elif not local:
            gaps.append(f"database connection to {url.host} without sslmode=verify-full")
    if s.directory.kind == "ad":
        if s.directory.url.startswith("ldaps://") or (s.directory.start_tls and not s.directory.allow_plain):
            have.append("directory connection: TLS")
        else:
            gaps.append("directory connection without TLS")
    if s.backup.recipients:
        have.append("backups encrypted to an age recipient")
    else:
        gaps.append("backups are not configured (backup.recipients)")
    return Evidence(
        "ops.encryption",
        NOT_MET if gaps else MET,
        "; ".join(gaps) if gaps else "; ".join(have),
        items=have,
        query="iam doctor --json",
    )
