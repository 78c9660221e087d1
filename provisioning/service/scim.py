"""SCIM 2.0 (RFC 7643/7644) for HR systems, on ``scim2-server`` and ``scim2-models``: Users with
the enterprise extension and our HR extension, stored in ``hr_scim_users``. Every change that
matters to the person's accounts becomes an HR event (``active=false`` = leaver); a repeated
delivery that changes nothing is recognised and makes no event."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Union

from pydantic import Field
from scim2_models import (
    URN,
    EnterpriseUser,
    Extension,
    Meta,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimProvider,
    SearchRequest,
    UniquenessException,
    User,
)
from scim2_server.memory import _page
from scim2_server.storage import ScimStorage, SearchPage
from scim2_server.utils import load_default_service_provider_config
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import clock
from iam.errors import Conflict, ValidationFailed
from provisioning.models import Engagement, HrEvent, ScimUser
from provisioning.service import events as event_service
from provisioning.service.schemas import REQUIRED_FOR_NEW, parse_event

if TYPE_CHECKING:
    from iam.config import ProvisioningSettings


class HrUser(Extension):
    """What HR knows beyond the enterprise extension."""

    __schema__ = URN("urn:iam:params:scim:schemas:extension:hr:2.0:User")

    engagement: str | None = Field(None, examples=[e.value for e in Engagement])
    """Kind of engagement (default: userType when it names one, else staff)."""
    start_date: str | None = Field(None, examples=["2026-01-05", "2026-03-01"])
    """ISO date; the account stays disabled until then."""
    end_date: str | None = Field(None, examples=["2027-12-31"])
    birth_date: str | None = Field(None, examples=["1980-02-29", "1991-07-14"])
    personal_data: str | None = Field(None, examples=["none", "limited", "full"])
    """Whether and how far the person processes personal data (PABIANICE §1)."""
    personal_data_scope: str | None = None
    decision_number: str | None = None


UserModel = User[Union[EnterpriseUser, HrUser]]  # noqa: UP007 — scim2-models reads the Union


def provider(settings: ProvisioningSettings) -> ScimProvider:
    config = load_default_service_provider_config()
    config.filter.max_results = settings.scim_max_results  # type: ignore[union-attr]
    return ScimProvider(
        models=[User, EnterpriseUser, HrUser],
        resource_types=[ResourceType.from_resource(UserModel)],
        config=config,
    )


def _version(n: int) -> str:
    return f'W/"{n}"'


def _person(resource: dict[str, Any], session: Session, timezone: str) -> dict[str, Any] | None:
    """The HR record a SCIM User describes, or None when it names no employee number."""
    ent = resource.get(str(EnterpriseUser.__schema__)) or {}
    hr = resource.get(str(HrUser.__schema__)) or {}
    emp = ent.get("employeeNumber")
    if not emp:
        return None
    name = resource.get("name") or {}
    emails = resource.get("emails") or []
    primary = next((e for e in emails if e.get("primary")), emails[0] if emails else {})
    manager_emp = None
    manager = ent.get("manager") or {}
    if manager.get("value"):
        row = session.get(ScimUser, str(manager["value"]))
        manager_emp = row.employee_number if row else None
    kinds = {e.value for e in Engagement}
    user_type = str(resource.get("userType") or "").lower().replace(" ", "_")
    engagement = hr.get("engagement") or (user_type if user_type in kinds else "staff")
    today = clock.now().astimezone(_zone(timezone)).date().isoformat()
    person = {
        "employee_number": emp,
        "given_name": name.get("givenName"),
        "family_name": name.get("familyName"),
        "email": primary.get("value"),
        "department": ent.get("department"),
        "title": resource.get("title"),
        "manager": manager_emp,
        "engagement": engagement,
        "start_date": hr.get("startDate") or today,
        "end_date": hr.get("endDate"),
        "birth_date": hr.get("birthDate"),
        "personal_data": hr.get("personalData"),
        "personal_data_scope": hr.get("personalDataScope"),
        "decision_number": hr.get("decisionNumber"),
    }
    return {k: v for k, v in person.items() if v is not None}


def _zone(name: str) -> Any:
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


MOVER_KEYS = (
    "department",
    "title",
    "manager",
    "engagement",
    "end_date",
    "email",
    "given_name",
    "family_name",
    "personal_data",
    "personal_data_scope",
    "decision_number",
)


class DbStorage(ScimStorage):
    """SCIM Users in our database; writes become HR events in the same transaction."""

    def __init__(self, session: Session, settings: ProvisioningSettings, actor: str) -> None:
        self.session = session
        self.settings = settings
        self.actor = actor
        self.accepted: list[str] = []
        """Employee numbers with new events (the view applies due leavers at once)."""

    @contextmanager
    def operation(self) -> Generator[None]:
        with self.session.begin_nested():
            yield

    def _load(self, row: ScimUser) -> Resource[Any]:
        resource = UserModel.model_validate(row.resource)
        resource.id = row.id
        resource.meta = Meta(
            resource_type="User",
            created=row.created_at,
            last_modified=row.updated_at,
            version=_version(row.version),
        )
        return resource

    def _row(self, resource_id: str) -> ScimUser:
        row = self.session.get(ScimUser, resource_id)
        if row is None:
            raise NotFoundException(detail=f"Resource {resource_id} not found")
        return row

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        return self._load(self._row(resource_id))

    def search(
        self, resource_types: list[ResourceType], search_request: SearchRequest[Any], *, position: Any = None
    ) -> SearchPage:
        rows = self.session.scalars(select(ScimUser).order_by(ScimUser.created_at, ScimUser.id))
        resources = [self._load(r) for r in rows]
        scim_filter = search_request.filter
        found = [r for r in resources if scim_filter is None or scim_filter.match(r)]
        return _page(search_request, position, found)

    @staticmethod
    def _body(resource: Resource[Any]) -> dict[str, Any]:
        body: dict[str, Any] = resource.model_dump(mode="json", exclude={"id", "meta"}, by_alias=True)
        body.pop("password", None)  # HR does not set passwords: initial passwords are ours
        body.pop("id", None)
        body.pop("meta", None)
        return body

    def _unique(self, user_name: str, external: str | None, own: str | None) -> None:
        clash = self.session.scalar(select(ScimUser).where(ScimUser.user_name == user_name.casefold()))
        if clash is not None and clash.id != own:
            raise UniquenessException(detail="userName is already taken")

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        body = self._body(resource)
        user_name = str(body.get("userName") or "")
        self._unique(user_name, body.get("externalId"), None)
        now = clock.now()
        row = ScimUser(
            user_name=user_name.casefold(),
            external_id=body.get("externalId"),
            version=1,
            resource=body,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self.session.flush()
        person = _person(body, self.session, self.settings.timezone)
        if person is not None:
            self._claim_employee(row, str(person["employee_number"]))
            if body.get("active", True) is not False:
                self._event("joiner", f"scim:{row.id}:1", person)
        return self._load(row)

    def _claim_employee(self, row: ScimUser, emp: str) -> None:
        other = self.session.scalar(
            select(ScimUser).where(ScimUser.employee_number == emp, ScimUser.id != row.id)
        )
        if other is not None:
            raise UniquenessException(detail="employeeNumber is already taken")
        row.employee_number = emp

    def _event(self, kind: str, key: str, person: dict[str, Any]) -> None:
        from scim2_models import InvalidValueException

        data = {"idempotency_key": key, "kind": kind, "person": person}
        if kind in ("joiner", "rehire") and any(not person.get(f) for f in REQUIRED_FOR_NEW):
            return  # not yet a complete HR record: the event follows when it is
        try:
            event = parse_event(data)
            event_service.accept(self.session, event, source="scim", actor=self.actor, settings=self.settings)
        except ValidationFailed as exc:
            raise InvalidValueException(detail=str(exc)) from None
        except Conflict as exc:
            raise UniquenessException(detail=str(exc)) from None
        self.accepted.append(event.person.employee_number)

    def update(
        self, resource_type: ResourceType, resource: Resource[Any], *, expected_version: str | None = None
    ) -> Resource[Any]:
        row = self._row(str(resource.id))
        if expected_version is not None and expected_version != _version(row.version):
            raise PreconditionFailedException()
        body = self._body(resource)
        if body == row.resource:
            return self._load(row)  # a repeated delivery: nothing changes, no event
        self._unique(str(body.get("userName") or ""), body.get("externalId"), row.id)
        old = _person(row.resource, self.session, self.settings.timezone)
        old_active = row.resource.get("active", True) is not False
        new = _person(body, self.session, self.settings.timezone)
        row.version += 1
        row.resource = body
        row.user_name = str(body.get("userName") or "").casefold()
        row.external_id = body.get("externalId")
        row.updated_at = clock.now()
        if new is not None:
            self._claim_employee(row, str(new["employee_number"]))
            self._changed(row, old, new, old_active=old_active, body=body)
        self.session.flush()
        return self._load(row)

    def _changed(
        self,
        row: ScimUser,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        *,
        old_active: bool,
        body: dict[str, Any],
    ) -> None:
        key = f"scim:{row.id}:{row.version}"
        active = body.get("active", True) is not False
        emp = str(new["employee_number"])
        joined = self.session.scalar(
            select(HrEvent.id).where(HrEvent.employee_number == emp, HrEvent.kind.in_(("joiner", "rehire")))
        )
        left = self.session.scalar(
            select(HrEvent.id).where(HrEvent.employee_number == emp, HrEvent.kind == "leaver").limit(1)
        )
        if joined is None:
            if active:
                self._event("joiner", key, new)
        elif old_active and not active:
            self._event("leaver", key, {"employee_number": emp})
        elif not old_active and active and left is not None:
            self._event("rehire", key, new)
        elif active and old is not None:
            changed = {
                k: new.get(k) for k in MOVER_KEYS if new.get(k) != old.get(k) and new.get(k) is not None
            }
            if changed:
                self._event("mover", key, {"employee_number": emp, **changed})

    def delete(
        self, resource_type: ResourceType, resource_id: str, *, expected_version: str | None = None
    ) -> None:
        row = self._row(resource_id)
        if expected_version is not None and expected_version != _version(row.version):
            raise PreconditionFailedException()
        person = _person(row.resource, self.session, self.settings.timezone)
        if person is not None and row.resource.get("active", True) is not False:
            self._event("leaver", f"scim:{row.id}:deleted", {"employee_number": person["employee_number"]})
        self.session.delete(row)
        self.session.flush()
