"""Batch files from HR (CSV or JSON lines; a delta of events or a full snapshot), turned into the
same events as the API. The whole file is validated before anything is stored."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam.errors import ValidationFailed
from iam.i18n import N_
from provisioning.models import EventKind, HrPerson, PersonStatus, ReservedUsername
from provisioning.service.schemas import EventIn, PersonIn, errors_of

if TYPE_CHECKING:
    from iam.services import Services

EVENT_FIELDS = ("kind", "idempotency_key", "effective_at")
PERSON_FIELDS = tuple(PersonIn.model_fields)
MOVER_FIELDS = (
    "department",
    "title",
    "manager",
    "manager_email",
    "engagement",
    "end_date",
    "email",
    "given_name",
    "family_name",
    "personal_data",
    "personal_data_scope",
    "decision_number",
    "remarks",
)


@dataclass(frozen=True)
class Planned:
    line: int
    event: EventIn


def _rows(text: str, fmt: str) -> Iterable[tuple[int, dict[str, Any]]]:
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(
                    N_("line %(number)s: not valid JSON (%(msg)s)."), number=number, msg=exc.msg
                ) from None
            if not isinstance(value, dict):
                raise ValidationFailed(N_("line %(number)s: each line must be a JSON object."), number=number)
            yield number, value
        return
    reader = csv.DictReader(io.StringIO(text))
    unknown = set(reader.fieldnames or []) - set(EVENT_FIELDS) - set(PERSON_FIELDS)
    if unknown:
        raise ValidationFailed(f"line 1: unknown columns {', '.join(sorted(unknown))}.")
    for number, row in enumerate(reader, 2):
        if None in row:
            raise ValidationFailed(N_("line %(number)s: more cells than columns."), number=number)
        clean = {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
        yield (
            number,
            {
                **{k: v for k, v in clean.items() if k in EVENT_FIELDS},
                "person": {k: v for k, v in clean.items() if k in PERSON_FIELDS},
            },
        )


def derived_key(raw: dict[str, Any], prefix: str) -> str:
    body = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str).encode()
    return f"{prefix}:{hashlib.sha256(body).hexdigest()[:40]}"


def _validate(number: int, raw: dict[str, Any], errors: list[str]) -> EventIn | None:
    from pydantic import ValidationError

    try:
        return EventIn.model_validate(raw)
    except ValidationError as exc:
        errors += [f"line {number}: {e}" for e in errors_of(exc)]
        return None


def parse(text: str, fmt: str, session: Session, *, snapshot: bool) -> list[Planned]:
    """Every event of the file, or :class:`ValidationFailed` listing every bad line."""
    errors: list[str] = []
    planned: list[Planned] = []
    seen: dict[str, int] = {}
    for number, raw in _rows(text, fmt):
        person = raw.get("person") if isinstance(raw.get("person"), dict) else None
        if snapshot:
            if "kind" in raw and fmt == "csv":
                errors.append(f"line {number}: a snapshot has no kind column")
                continue
            raw = {"kind": "joiner", "idempotency_key": "snapshot", "person": person or raw}
        emp = str((person or {}).get("employee_number", ""))
        if emp and emp in seen and snapshot:
            errors.append(f"line {number}: employee number {emp} already on line {seen[emp]}")
        seen.setdefault(emp, number)
        if not snapshot and not raw.get("idempotency_key"):
            raw = {**raw, "idempotency_key": derived_key(raw, "batch")}
        event = _validate(number, raw, errors)
        if event is not None:
            planned.append(Planned(number, event))
    if errors:
        shown = errors[:20] + ([f"… and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise ValidationFailed("The file was refused, nothing was imported: " + "; ".join(shown))
    if snapshot:
        return _snapshot_delta(session, planned)
    return planned


def _snapshot_delta(session: Session, rows: list[Planned]) -> list[Planned]:
    """A full snapshot: new people join, changed ones move, returning ones are rehired, and the
    people no longer listed leave."""
    persons = {p.employee_number: p for p in session.scalars(select(HrPerson))}
    out: list[Planned] = []
    listed = set()
    for item in rows:
        p = item.event.person
        listed.add(p.employee_number)
        current = persons.get(p.employee_number)
        body = p.model_dump(mode="json", exclude_none=True)
        if current is None or current.status == PersonStatus.LEFT:
            kind = EventKind.JOINER if current is None else EventKind.REHIRE
            raw = {"kind": kind.value, "person": body}
        else:
            changed = {
                k: v
                for k, v in body.items()
                if k in MOVER_FIELDS
                and str(getattr(current, k) if getattr(current, k) is not None else "") != str(v)
            }
            if not changed:
                continue
            raw = {"kind": "mover", "person": {"employee_number": p.employee_number, **changed}}
        raw["idempotency_key"] = derived_key(raw, "snapshot")
        out.append(Planned(item.line, EventIn.model_validate(raw)))
    for emp, current in persons.items():
        if emp not in listed and current.status != PersonStatus.LEFT:
            raw = {"kind": "leaver", "person": {"employee_number": emp}}
            raw["idempotency_key"] = derived_key({**raw, "at": str(current.last_effective_at)}, "snapshot")
            out.append(Planned(0, EventIn.model_validate(raw)))
    return out


def plan(services: Services, session: Session, items: list[Planned]) -> list[dict[str, Any]]:
    """What the import would do (dry run): no directory writes, nothing stored."""
    from provisioning.service.engine import base_ou
    from provisioning.service.policies import birthright, naming

    rule, rights = naming(services), birthright(services)
    taken = {r.username for r in session.scalars(select(ReservedUsername))}
    persons = {p.employee_number: p for p in session.scalars(select(HrPerson))}
    out = []
    for item in items:
        ev, p = item.event, item.event.person
        current = persons.get(p.employee_number)
        row: dict[str, Any] = {
            "line": item.line,
            "kind": ev.kind.value,
            "employee_number": p.employee_number,
            "effective_at": ev.effective(
                services.settings.provisioning.timezone,
                joiner_lead_days=services.settings.provisioning.joiner_lead_days,
            ).isoformat(),
        }
        if ev.kind is EventKind.JOINER and current is None:
            assert p.given_name
            assert p.family_name
            username = next(
                c
                for c in rule.candidates(
                    given=p.given_name, family=p.family_name, employee_number=p.employee_number
                )
                if c.casefold() not in taken
            )
            taken.add(username.casefold())
            row["username"] = username
        elif current is not None:
            row["username"] = current.username
        department = p.department or (current.department if current else "")
        title = p.title or (current.title if current else "")
        engagement = (p.engagement.value if p.engagement else None) or (current.engagement if current else "")
        if ev.kind is not EventKind.LEAVER:
            row["groups"] = rights.groups_for(department=department, title=title, kind=engagement)
            row["ou"] = rights.ou_for(department, base_ou(services))
        else:
            row["groups"] = []
        out.append(row)
    return out
