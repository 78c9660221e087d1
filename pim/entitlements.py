"""What PIM contributes to access reviews through the core's registry (``iam.entitlements``):
eligibilities and permanent assignments, shared-account eligibility, the admin accounts that
belong to a person, and the groups PIM roles grant (privileged)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iam.directory import MembershipGraph
from iam.entitlements import (
    Account,
    Entitlement,
    Origin,
    register_links,
    register_privileged,
    register_source,
)
from pim.models import AdminAccount, ElevationRequest, Eligibility, SharedAccount
from pim.roles import all_roles
from pim.service.accounts import remove_eligibility
from pim.service.common import Actor

if TYPE_CHECKING:
    from iam.services import Services


class PimEntitlements:
    name = "pim"

    def entitlements(
        self, services: Services, session: Session, accounts: Sequence[Account], graph: MembershipGraph
    ) -> Iterable[Entitlement]:
        wanted = {a.id for a in accounts}
        rows = [r for r in session.scalars(select(Eligibility).order_by(Eligibility.id)) if r.sub in wanted]
        last = dict(
            session.execute(
                select(
                    ElevationRequest.requester_sub + ":" + ElevationRequest.role,
                    func.max(ElevationRequest.starts_at),
                ).group_by(ElevationRequest.requester_sub, ElevationRequest.role)
            ).all()
        )
        shared = session.scalars(select(SharedAccount)).all()
        for row in rows:
            assert row.sub is not None
            activated = last.get(f"{row.sub}:{row.role}")
            extra = {"last_activation": activated.isoformat()} if activated else {}
            yield Entitlement(
                source=self.name,
                kind="pim_permanent" if row.permanent else "pim_eligibility",
                account_id=row.sub,
                resource=row.role,
                origin=Origin.PIM_DECISION,
                origin_ref=f"eligibility #{row.id}",
                granted_at=row.created_at,
                granted_by=row.created_by,
                privileged=True,
                extra=extra,
            )
            for account in shared:
                if row.role in account.roles:
                    yield Entitlement(
                        source=self.name,
                        kind="shared_account",
                        account_id=row.sub,
                        resource=account.username,
                        via=(row.role,),
                        origin=Origin.PIM_DECISION,
                        origin_ref=f"eligibility #{row.id}",
                        granted_at=row.created_at,
                        granted_by=row.created_by,
                        privileged=True,
                    )

    def revoke(
        self,
        services: Services,
        session: Session,
        *,
        account_id: str,
        kind: str,
        resource: str,
        actor: str,
        reason: str,
        reference: str,
    ) -> None:
        officer = Actor.operator(actor)
        if kind == "shared_account":
            account = session.get(SharedAccount, resource)
            roles = set(account.roles) if account else set()
        else:
            roles = {resource}
        for row in session.scalars(
            select(Eligibility).where(Eligibility.sub == account_id, Eligibility.role.in_(roles))
        ).all():
            # Live elevations end, shared accounts of the role rotate, the removal is audited.
            remove_eligibility(session, services, actor=officer, role=row.role, username=row.username)

    def holds(
        self, services: Services, session: Session, *, account_id: str, kind: str, resource: str
    ) -> bool:
        if kind == "shared_account":
            account = session.get(SharedAccount, resource)
            roles = list(account.roles) if account else []
        else:
            roles = [resource]
        found = session.scalar(
            select(Eligibility.id).where(Eligibility.sub == account_id, Eligibility.role.in_(roles)).limit(1)
        )
        return found is not None


def _admin_accounts(services: Services, session: Session) -> Iterable[tuple[str, str, str]]:
    for account_id, person in session.execute(
        select(AdminAccount.account_id, AdminAccount.person_sub).where(AdminAccount.account_id.is_not(None))
    ):
        if account_id:
            yield account_id, person, "admin"


def _role_groups(services: Services, session: Session) -> Iterable[str]:
    for role in all_roles(session, services).values():
        yield from role.groups


def register() -> None:
    register_source(PimEntitlements())
    register_links("pim", _admin_accounts)
    register_privileged("pim", _role_groups)
