"""Patients' consents to telemedicine care and to processing health data (checklist E1).

Given and withdrawn by the insured person only; each change is audited; the request for a
consultation checks them inside its own transaction (``require_txn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final

from pydantic import WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import PatientConsent
from server.db.repositories import clinical as repo
from server.domain import consent as rules
from server.domain.errors import InvalidInput
from server.services import audit
from server.services.context import ServiceContext
from server.services.identity import Principal

RESOURCE: Final = "consent"
LANGUAGES: Final = ("ru", "en")
MAX_ADDRESS_CHARS: Final = 64
MAX_USER_AGENT_CHARS: Final = 300


# A consent text as ``rules.texts_view`` gives it, with its schema for the OpenAPI document.
ConsentTextJson = Annotated[
    dict[str, str],
    WithJsonSchema(
        {
            "title": "ConsentText",
            "type": "object",
            "properties": {key: {"type": "string"} for key in ("kind", "version", "ru", "en")},
            "required": ["kind", "version", "ru", "en"],
            "additionalProperties": False,
        }
    ),
]


@dataclass(frozen=True, slots=True)
class ConsentView:
    """One consent record as the patient sees it."""

    id: int
    kind: str
    version: str
    language: str
    given_at: datetime
    given_from: str
    withdrawn_at: datetime | None


@dataclass(frozen=True, slots=True)
class ConsentStatus:
    """What the consent screen needs: the current texts, what is missing, the history."""

    texts: list[ConsentTextJson]
    missing: list[str]
    records: list[ConsentView]


def _view(row: PatientConsent) -> ConsentView:
    return ConsentView(row.id, row.kind, row.version, row.language, row.given_at, row.given_from, row.withdrawn_at)


def _domain(row: PatientConsent) -> rules.ConsentRecord:
    return rules.ConsentRecord(rules.ConsentKind(row.kind), row.version, row.given_at, row.withdrawn_at)


async def require_txn(session: AsyncSession, person_id: int) -> None:
    """Refuse a new consultation without both standing consents (raises ``ConsentRequired``, 428)."""
    rules.require_consents(_domain(r) for r in await repo.consents_of(session, person_id))


async def status(ctx: ServiceContext, principal: Principal) -> ConsentStatus:
    """The patient's consents and the texts to show."""
    async with ctx.uow() as uow:
        rows = await repo.consents_of(uow.session, principal.subject_id)
        return ConsentStatus(
            texts=[rules.texts_view(t) for t in rules.CURRENT_TEXTS.values()],
            missing=[k.value for k in rules.missing_consents(_domain(r) for r in rows)],
            records=[_view(r) for r in rows],
        )


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    text = "".join(ch for ch in value if ch.isprintable())[:limit]
    return text or None


async def give(
    ctx: ServiceContext,
    principal: Principal,
    *,
    kind: str,
    version: str,
    language: str,
    address: str,
    user_agent: str | None,
) -> ConsentView:
    """Record the patient's consent to the current text of ``kind``: who, when, which version, from where.

    Giving a standing consent again returns it unchanged.

    Raises:
        InvalidInput: unknown kind or language, or an outdated version (``consent_version_outdated``).
    """
    consent_kind = rules.parse_kind(kind)
    text = rules.check_version(consent_kind, version)
    if language not in LANGUAGES:
        raise InvalidInput("language is ru or en", code="invalid_language", details={"language": language})
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        for row in await repo.consents_of(session, principal.subject_id):
            if row.kind == consent_kind.value and row.version == text.version and row.withdrawn_at is None:
                return _view(row)
        row = PatientConsent(
            insured_person_id=principal.subject_id,
            kind=consent_kind.value,
            version=text.version,
            language=language,
            given_at=now,
            given_from=_clean(address, MAX_ADDRESS_CHARS) or "unknown",
            user_agent=_clean(user_agent, MAX_USER_AGENT_CHARS),
        )
        session.add(row)
        await session.flush()
        await audit.record_txn(
            ctx,
            session,
            principal,
            action=f"consent.give.{consent_kind.value}",
            resource_type=RESOURCE,
            resource_id=row.id,
            patient_id=principal.subject_id,
        )
        view = _view(row)
        await uow.commit()
    return view


async def withdraw(ctx: ServiceContext, principal: Principal, *, kind: str, address: str) -> list[int]:
    """Withdraw a consent: no new consultation until it is given again; audited even when nothing stood.

    Returns:
        The ids of the consent records withdrawn.
    """
    consent_kind = rules.parse_kind(kind)
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        ids = await repo.withdraw_consents(
            session, principal.subject_id, consent_kind.value, now, _clean(address, MAX_ADDRESS_CHARS) or "unknown"
        )
        await audit.record_txn(
            ctx,
            session,
            principal,
            action=f"consent.withdraw.{consent_kind.value}",
            resource_type=RESOURCE,
            resource_id=",".join(str(i) for i in ids)[:40] or "none",
            patient_id=principal.subject_id,
        )
        await uow.commit()
    return ids
