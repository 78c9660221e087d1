"""``iam doctor``: one line per check of what this installation depends on, each with a fix.

Checks: settings for production, secrets, the database (reachable, writable, migrations
current, TLS), clocks against the database and AD, the directory (reachable, TLS, what the
service account may do), the mail relay, the worker (jobs waiting too long), backups and
restore drills. Features add their own with :func:`check` (e.g. sso: signing keys).
"""

from __future__ import annotations

import datetime as dt
import smtplib
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import click
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from iam import clock
from iam.clitools import Ctx, emit, json_option, pass_ctx

if TYPE_CHECKING:
    from iam.services import Services

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[self.status]
        return f"{mark}  {self.name}: {self.detail}" + (
            f" — fix: {self.fix}" if self.fix and self.status != "ok" else ""
        )


CheckFn = Callable[["Services"], Iterator[Finding]]
_checks: dict[str, CheckFn] = {}

#: Clock skew that is worth a warning / that breaks Kerberos, token lifetimes and TOTP windows.
SKEW_WARN = dt.timedelta(seconds=2)
SKEW_FAIL = dt.timedelta(seconds=30)
#: A due job older than this means no worker is running.
STALE_JOB = dt.timedelta(minutes=5)


def check(name: str) -> Callable[[CheckFn], CheckFn]:
    """Register a check: a function of the services yielding :class:`Finding`s."""

    def deco(fn: CheckFn) -> CheckFn:
        _checks[name] = fn
        return fn

    return deco


def _skew(name: str, theirs: dt.datetime, fix: str) -> Finding:
    skew = abs(clock.now() - theirs)
    detail = f"{skew.total_seconds():.1f} s apart"
    if skew > SKEW_FAIL:
        return Finding(name, "fail", detail, fix)
    if skew > SKEW_WARN:
        return Finding(name, "warn", detail, fix)
    return Finding(name, "ok", detail)


@check("settings")
def _settings(services: Services) -> Iterator[Finding]:
    s = services.settings
    if s.dev_mode:
        yield Finding(
            "settings",
            "warn",
            "dev mode is on (generated secrets, demo allowed)",
            "set dev_mode = false for production",
        )
    if not s.issuer.startswith("https://"):
        yield Finding(
            "issuer", "warn", f"{s.issuer} is not https", 'serve behind TLS and set issuer = "https://…"'
        )
    else:
        yield Finding("issuer", "ok", s.issuer)


@check("secrets")
def _secrets(services: Services) -> Iterator[Finding]:
    s = services.settings
    for name, filename in (("secret_key", "secret_key.txt"), ("encryption_key", "encryption.key")):
        if getattr(s, name).get_secret_value():
            yield Finding(name, "ok", "configured")
            continue
        path = s.var_dir / filename
        if not path.is_file():
            yield Finding(name, "fail", "neither configured nor generated", f"set IAM_{name.upper()}")
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            yield Finding(name, "fail", f"{path} is readable by others (mode {mode:o})", f"chmod 600 {path}")
        else:
            yield Finding(name, "ok", f"generated in {path} (mode {mode:o})")


@check("database")
def _database(services: Services) -> Iterator[Finding]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from iam.migrate import alembic_config

    engine = services.engine
    url = make_url(services.settings.database.url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE iam_doctor_probe (x INTEGER)"))
            conn.execute(text("INSERT INTO iam_doctor_probe VALUES (1)"))
            conn.execute(text("DROP TABLE iam_doctor_probe"))
            current = MigrationContext.configure(conn).get_current_revision()
            theirs = (
                conn.execute(text("SELECT now()")).scalar() if engine.dialect.name == "postgresql" else None
            )
    except Exception as exc:
        yield Finding(
            "database",
            "fail",
            f"{url.render_as_string(hide_password=True)}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "check database.url, that the server runs and the user may write",
        )
        return
    yield Finding("database", "ok", f"{engine.dialect.name} reachable and writable")
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    if current != head:
        yield Finding(
            "migrations", "fail", f"database at {current}, this version needs {head}", "run `iam db upgrade`"
        )
    else:
        yield Finding("migrations", "ok", f"current ({head})")
    if engine.dialect.name == "postgresql":
        host = url.host or ""
        sslmode = url.query.get("sslmode", "")
        local = host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("/")
        if not local and sslmode != "verify-full":
            yield Finding(
                "database TLS",
                "warn",
                f"sslmode={sslmode or 'prefer (default)'} to {host}",
                "add ?sslmode=verify-full&sslrootcert=/path/ca.pem to database.url",
            )
        else:
            yield Finding("database TLS", "ok", f"sslmode={sslmode or 'n/a (local)'}")
        if isinstance(theirs, dt.datetime):
            yield _skew(
                "clock vs database", theirs.astimezone(dt.UTC), "run an NTP client (chrony) on both hosts"
            )


@check("directory")
def _directory(services: Services) -> Iterator[Finding]:
    s = services.settings.directory
    if s.kind != "ad":
        yield Finding("directory", "ok", "built-in directory (in the database)")
        return
    directory: Any = services.directory
    try:
        facts = directory.server_facts()
    except Exception as exc:
        yield Finding(
            "directory",
            "fail",
            f"{s.url}: {exc}",
            "check directory.url, bind_dn, bind_password and that the DC answers",
        )
        return
    yield Finding("directory", "ok", f"{s.url} answers; the service account binds")
    if not facts.get("tls") and not s.allow_plain:
        yield Finding(
            "directory TLS",
            "fail",
            "no TLS on the connection",
            "use ldaps:// or StartTLS with directory.ca_file",
        )
    elif not facts.get("tls"):
        yield Finding(
            "directory TLS",
            "warn",
            "plain LDAP (allow_plain = true)",
            "use ldaps:// with directory.ca_file; never plain LDAP in production",
        )
    else:
        yield Finding("directory TLS", "ok", "encrypted" + (f", CA {s.ca_file}" if s.ca_file else ""))
    raw = facts.get("current_time")
    if raw:
        theirs = dt.datetime.strptime(raw[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
        yield _skew(
            "clock vs AD",
            theirs,
            "synchronise this host with the domain's time (chrony against the PDC emulator)",
        )
    creatable = {c.lower() for c in facts.get("may_create", [])}
    where = s.users_ou or s.base_dn
    if "user" not in creatable:
        yield Finding(
            "AD rights: create users",
            "warn",
            f"the service account may not create users in {where}",
            f'delegate "Create user objects" on {where} to {s.bind_dn}',
        )
    else:
        yield Finding("AD rights: create users", "ok", f"in {where}")
    writable = {a.lower() for a in facts.get("may_write_user", [])}
    needed = {"unicodepwd", "useraccountcontrol", "pwdlastset", "lockouttime"}
    if facts.get("may_write_user") is None:
        yield Finding("AD rights: write users", "warn", f"no user under {where} to check", "")
    elif needed - writable:
        yield Finding(
            "AD rights: write users",
            "warn",
            f"may not write {', '.join(sorted(needed - writable))}",
            f'delegate "Reset password" and "Write userAccountControl/lockoutTime/pwdLastSet" on {where}',
        )
    else:
        yield Finding("AD rights: write users", "ok", "password, account control, lockout")


@check("mail")
def _mail(services: Services) -> Iterator[Finding]:
    m = services.settings.mail
    if not m.host:
        yield Finding(
            "mail relay", "warn", "not configured: expiry warnings and alerts are not mailed", "set mail.host"
        )
        return
    try:
        with smtplib.SMTP(m.host, m.port, timeout=5) as smtp:
            smtp.ehlo()
            if m.starttls:
                smtp.starttls()
    except (OSError, smtplib.SMTPException) as exc:
        yield Finding(
            "mail relay", "fail", f"{m.host}:{m.port}: {exc}", "check mail.host/port and the firewall"
        )
        return
    yield Finding("mail relay", "ok", f"{m.host}:{m.port} answers" + (" (STARTTLS)" if m.starttls else ""))


@check("worker")
def _worker(services: Services) -> Iterator[Finding]:
    from iam.models import Job, JobStatus

    with services.reader() as session:
        oldest = session.scalar(
            select(func.min(Job.run_at)).where(Job.status == JobStatus.PENDING, Job.run_at <= clock.now())
        )
        dead = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.DEAD)) or 0
    if oldest is not None and clock.now() - oldest > STALE_JOB:
        yield Finding(
            "worker",
            "fail",
            f"a job has waited since {oldest:%Y-%m-%d %H:%M} UTC",
            "start `iam worker` (systemd unit iam-worker)",
        )
    else:
        yield Finding("worker", "ok", "no job waits too long")
    if dead:
        yield Finding(
            "dead jobs",
            "warn",
            f"{dead} job(s) gave up",
            "see `iam jobs list --status dead`, then `iam jobs retry`",
        )


@check("backup")
def _backup(services: Services) -> Iterator[Finding]:
    from iam.backup.service import last_drill
    from iam.models import BackupRecord

    s = services.settings.backup
    if not s.recipients:
        yield Finding(
            "backup",
            "warn",
            "no backup.recipients: backups cannot be made",
            "`iam backup keygen`, then set backup.recipients",
        )
    with services.reader() as session:
        made = session.scalar(select(func.max(BackupRecord.at)).where(BackupRecord.kind == "created"))
        drill = last_drill(session)
    now = clock.now()
    if made is None or now - made > dt.timedelta(days=2):
        yield Finding(
            "last backup",
            "warn",
            f"{made:%Y-%m-%d}" if made else "never",
            "schedule `iam backup create` daily",
        )
    else:
        yield Finding("last backup", "ok", f"{made:%Y-%m-%d %H:%M} UTC")
    if drill is None or now - drill.at > dt.timedelta(days=s.drill_interval_days):
        yield Finding(
            "restore drill",
            "warn",
            f"last {drill.at:%Y-%m-%d}" if drill else "never recorded",
            "run `iam backup drill FILE --identity …`",
        )
    else:
        yield Finding("restore drill", "ok", f"{drill.at:%Y-%m-%d}")


def run(services: Services) -> list[Finding]:
    from iam.app import load_feature_jobs

    load_feature_jobs()
    out: list[Finding] = []
    for name, fn in _checks.items():
        try:
            out.extend(fn(services))
        except Exception as exc:  # one broken check must not hide the others
            out.append(Finding(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}"))
    return out


@click.command("doctor")
@json_option
@pass_ctx
def doctor(ctx: Ctx, as_json: bool) -> None:
    """Check configuration, secrets, database, clocks, AD, mail, worker and backups; one line per
    check with a fix. Exit code 1 when a check fails (warnings do not fail)."""
    try:
        findings = run(ctx.services)
    except Exception as exc:
        findings = [Finding("settings", "fail", str(exc), "see `iam --help` and README.md")]
    emit(as_json, [f.__dict__ for f in findings], [f.line() for f in findings])
    if any(f.status == "fail" for f in findings):
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    cli.add_command(doctor)


__all__ = ["Finding", "check", "register", "run"]
