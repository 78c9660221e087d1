"""The accounts HR links to one person, for :mod:`iam.persons` (R-PIM-3): a person's own account
and the further accounts of their HR record (``hr_persons.linked_accounts``), in both directions."""

from __future__ import annotations

from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import Session

from iam import persons
from provisioning.models import HrPerson


@persons.resolver
def hr_linked_accounts(session: Session, sub: str) -> set[str]:
    # the JSON list as text: portable between SQLite and PostgreSQL; confirmed in Python
    pattern = '%"' + sub.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'
    rows = session.scalars(
        select(HrPerson).where(
            or_(HrPerson.sub == sub, cast(HrPerson.linked_accounts, String).like(pattern, escape="\\"))
        )
    ).all()
    out: set[str] = set()
    for person in rows:
        accounts = [s for s in [person.sub, *(person.linked_accounts or [])] if s]
        if sub in accounts:
            out.update(accounts)
    return out
