"""Who am I: the caller's identity and the few details their own screens start from (``GET /api/me``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ConfigDict

from server.db.repositories import accounts as accounts_repo
from server.db.repositories import coverage as coverage_repo
from server.domain.errors import NotFound
from server.domain.insured_number import format_insured_number
from server.domain.roles import ROLE_DOCTOR
from server.security.otp import mask_phone
from server.services.context import ServiceContext
from server.services.identity import Principal


@dataclass(frozen=True, slots=True)
class MeView:
    """The caller as they see themselves: an insured person's policy, or a staff account."""

    # Published in the OpenAPI document under the name clients already know.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(title="MeResponse")

    role: str
    subject_type: str
    id: int
    display_name: str
    details: dict[str, Any]


async def who_am_i(ctx: ServiceContext, principal: Principal) -> MeView:
    """Insured persons see their policy (the phone only masked); staff see their account.

    Raises:
        NotFound: the person or account no longer exists.
    """
    async with ctx.uow() as uow:
        session = uow.session
        if principal.subject_type == "insured":
            person = await coverage_repo.get_person(session, principal.subject_id)
            if person is None:
                raise NotFound("no such person")
            policy = await coverage_repo.get_policy(session, person.policy_id)
            assert policy is not None  # foreign keys guarantee policy, program and policyholder
            program = await coverage_repo.get_program(session, policy.program_id)
            assert program is not None
            holder = await coverage_repo.policyholder_name(session, policy.policyholder_id)
            return MeView(
                role=principal.role,
                subject_type="insured",
                id=person.id,
                display_name=person.full_name,
                details={
                    "policy_number": policy.number,
                    "insured_number": format_insured_number(person.insured_number),
                    "policy_starts_on": policy.starts_on.isoformat(),
                    "policy_ends_on": policy.ends_on.isoformat(),
                    "program": program.name,
                    "policyholder": holder,
                    "service_type": person.service_type,
                    "city": person.city,
                    "phone_hint": mask_phone(person.phone),
                },
            )
        account = await accounts_repo.get_staff(session, principal.subject_id)
        if account is None:
            raise NotFound("no such account")
        details: dict[str, Any] = {"username": account.username}
        if account.role == ROLE_DOCTOR:
            details["specialties"] = list(account.specialties)
        if account.hr_policyholder_id is not None:
            details["policyholder_id"] = account.hr_policyholder_id
        return MeView(
            role=principal.role, subject_type="staff", id=account.id, display_name=account.full_name, details=details
        )
