"""The accounts PIM links to a person (R-PIM-3), for :mod:`iam.persons`:

- a person's separate admin account, and back (``pim_admin_accounts``);
- a shared administrator account → everyone shown its current password (checked out since its
  last rotation). Only in that direction: two holders of one shared account are not one person.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from iam import persons
from iam.models.identity import Identity
from pim.models import AdminAccount, SharedAccount, SharedCheckout


@persons.resolver
def admin_accounts(session: Session, sub: str) -> set[str]:
    rows = session.execute(
        select(AdminAccount.person_sub, AdminAccount.account_id).where(
            or_(AdminAccount.person_sub == sub, AdminAccount.account_id == sub)
        )
    ).all()
    return {s for row in rows for s in row if s}


@persons.resolver
def shared_account_holders(session: Session, sub: str) -> set[str]:
    identity = session.get(Identity, sub)
    if identity is None:
        return set()
    shared = session.scalar(
        select(SharedAccount).where(func.lower(SharedAccount.username) == identity.username.lower())
    )
    if shared is None:
        return set()
    held = select(SharedCheckout.person_sub).where(SharedCheckout.username == shared.username)
    if shared.rotated_at is not None:
        held = held.where(SharedCheckout.at >= shared.rotated_at)
    return set(session.scalars(held))
