"""The security-policy text, its version, and who accepted which version (R-SSO-6).

The text is data: one Markdown file per language in ``policy.dir`` (``en.md``, ``sr-Latn.md``).
The version is the SHA-256 of every file together, so any change — in any language — is a new
version that everyone accepts again at their next sign-in. Markdown is rendered with raw HTML
off (markdown-it-py's ``js-default`` preset: HTML in the file is shown as text, links are
checked against ``javascript:`` and the like), so the file cannot inject script into the page.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markdown_it import MarkdownIt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.errors import ConfigError
from iam.models.identity import Identity
from sso.models import PolicyAcceptance

if TYPE_CHECKING:
    import datetime as dt

    from iam.config import Settings


@dataclass(frozen=True)
class Policy:
    """The current policy in one language."""

    version: str
    language: str
    markdown: str

    @property
    def short_version(self) -> str:
        return self.version[:12]

    def html(self) -> str:
        return render(self.markdown)


def render(markdown: str) -> str:
    """Markdown → HTML, raw HTML escaped (never passed through)."""
    md = MarkdownIt("js-default", {"html": False, "linkify": False, "typographer": False})
    return str(md.render(markdown))


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ConfigError(f"The security-policy folder {folder} does not exist (policy.dir).")
    files = {p.stem: p for p in sorted(folder.glob("*.md")) if p.is_file()}
    if not files:
        raise ConfigError(f"The security-policy folder {folder} holds no <language>.md file (policy.dir).")
    return files


def version_of(folder: Path) -> str:
    """SHA-256 over every language's file (name and content)."""
    digest = hashlib.sha256()
    for lang, path in sorted(_files(folder).items()):
        digest.update(lang.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _tag(value: str) -> str:
    return value.replace("_", "-").casefold()


def load(settings: Settings, language: str | None = None) -> Policy:
    """The current policy in ``language`` (a BCP 47 tag), else in the first configured language
    with a file, else in any. Raises ConfigError when the folder has no text."""
    files = {_tag(k): (k, v) for k, v in _files(settings.policy.dir).items()}
    wanted = [language or "", *(language or "").split("-")[:1], *settings.languages]
    choice = next((files[_tag(w)] for w in wanted if w and _tag(w) in files), None)
    if choice is None:
        choice = files[sorted(files)[0]]
    lang, path = choice
    return Policy(version=version_of(settings.policy.dir), language=lang, markdown=path.read_text("utf-8"))


def accepted(session: Session, sub: str, version: str) -> PolicyAcceptance | None:
    return session.scalar(
        select(PolicyAcceptance).where(PolicyAcceptance.sub == sub, PolicyAcceptance.version == version)
    )


def pending(session: Session, settings: Settings, sub: str) -> bool:
    """Whether ``sub`` must accept the current policy before going on."""
    if not settings.policy.required:
        return False
    return accepted(session, sub, version_of(settings.policy.dir)) is None


def accept(
    session: Session,
    *,
    sub: str,
    username: str,
    policy: Policy,
    ip: str | None,
    user_agent: str | None,
) -> PolicyAcceptance:
    """Record that ``sub`` accepted ``policy`` (idempotent per version), with an audit event."""
    existing = accepted(session, sub, policy.version)
    if existing is not None:
        return existing
    row = PolicyAcceptance(
        sub=sub,
        username=username,
        version=policy.version,
        language=policy.language,
        accepted_at=clock.now(),
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a second tab accepted at the same moment
        found = accepted(session, sub, policy.version)
        assert found is not None
        return found
    audit.record(
        session,
        "policy.accepted",
        severity=audit.Severity.SIGNIFICANT,
        actor=sub,
        subject=sub,
        ip=ip,
        user_agent=user_agent,
        details={"version": policy.version, "language": policy.language, "username": username},
    )
    return row


@dataclass(frozen=True)
class ReportRow:
    sub: str
    username: str
    display_name: str | None
    accepted_current: bool
    version: str | None
    """The latest version this person accepted (None: never)."""
    language: str | None
    accepted_at: dt.datetime | None
    ip: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "username": self.username,
            "display_name": self.display_name,
            "accepted_current": self.accepted_current,
            "version": self.version,
            "language": self.language,
            "accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
            "ip": self.ip,
        }


def report(session: Session, settings: Settings) -> tuple[str, list[ReportRow]]:
    """(current version, one row per known identity): their latest acceptance and whether it is
    of the current version. Known identities are every account that signed in through the
    provider or was provisioned (the ``identities`` table); disabled ones are left out."""
    current = version_of(settings.policy.dir)
    latest: dict[str, PolicyAcceptance] = {}
    for row in session.scalars(select(PolicyAcceptance).order_by(PolicyAcceptance.accepted_at)):
        if latest.get(row.sub) is None or latest[row.sub].version != current:
            latest[row.sub] = row
    rows = []
    for ident in session.scalars(
        select(Identity).where(Identity.disabled.is_(False)).order_by(Identity.username)
    ):
        acc = latest.get(ident.sub)
        rows.append(
            ReportRow(
                sub=ident.sub,
                username=ident.username,
                display_name=ident.display_name,
                accepted_current=acc is not None and acc.version == current,
                version=acc.version if acc else None,
                language=acc.language if acc else None,
                accepted_at=acc.accepted_at if acc else None,
                ip=acc.ip if acc else None,
            )
        )
    return current, rows


CSV_COLUMNS = (
    "username",
    "display_name",
    "accepted_current",
    "version",
    "language",
    "accepted_at",
    "ip",
    "sub",
)


def report_csv(current: str, rows: list[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["# current version", current])
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        d = r.as_dict()
        writer.writerow([_cell(d[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas in a spreadsheet
