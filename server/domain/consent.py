# ruff: noqa: RUF001  (patient-facing Russian texts: Cyrillic letters are intended)
"""The patient's consents before a telemedicine consultation (checklist E1).

Two consents are needed before the first consultation, each in a versioned text (Russian and
English): the informed voluntary consent to medical care by telemedicine (Russian law: 323-FZ
art. 20 and 36.2) and the consent to processing health data (152-FZ art. 10). The record keeps
who, when, which version and from where; a new version of a text must be accepted again; a
withdrawn consent stops new consultations (an ongoing one may finish). HR never sees consents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from server.domain.errors import DomainError, InvalidInput

ERR_CONSENT_REQUIRED: Final = "consent_required"


class ConsentKind(StrEnum):
    """What the patient consents to."""

    TELEMEDICINE = "telemedicine"
    HEALTH_DATA = "health_data"


@dataclass(frozen=True, slots=True)
class ConsentText:
    """One version of a consent text, in Russian and English."""

    kind: ConsentKind
    version: str
    ru: str
    en: str


CURRENT_TEXTS: Final[dict[ConsentKind, ConsentText]] = {
    ConsentKind.TELEMEDICINE: ConsentText(
        ConsentKind.TELEMEDICINE,
        "2026-12-01",
        "Я даю информированное добровольное согласие на получение медицинской помощи с применением "
        "телемедицинских технологий (консультация врача по чату, аудио- или видеосвязи). Мне разъяснено, "
        "что дистанционная консультация не заменяет очный осмотр, что врач может рекомендовать очный приём "
        "или вызвать скорую помощь, и что при угрозе жизни я должен звонить 103 или 112. Я могу отозвать "
        "согласие в любой момент.",
        "I give my informed voluntary consent to medical care by telemedicine (a doctor's consultation by "
        "chat, audio or video). I understand that a remote consultation does not replace an in-person "
        "examination, that the doctor may refer me to an in-person visit or call an ambulance, and that in a "
        "life-threatening situation I must call 103 or 112. I may withdraw this consent at any time.",
    ),
    ConsentKind.HEALTH_DATA: ConsentText(
        ConsentKind.HEALTH_DATA,
        "2026-12-01",
        "Я даю согласие страховщику и врачам сервиса на обработку моих персональных данных о здоровье "
        "(жалобы, переписка с врачом, изображения, диагноз, рекомендации) в целях оказания медицинской помощи "
        "и исполнения договора ДМС. Данные не передаются работодателю. Согласие действует до его отзыва.",
        "I consent to the insurer and the service's doctors processing my health data (complaints, messages "
        "with the doctor, images, diagnosis, advice) to provide medical care and to perform the voluntary "
        "health insurance contract. The data are not given to my employer. The consent lasts until I withdraw it.",
    ),
}


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A consent as recorded: which version, when given, when withdrawn (if so)."""

    kind: ConsentKind
    version: str
    given_at: datetime
    withdrawn_at: datetime | None = None


class ConsentRequired(DomainError):
    """The patient has not given (or has withdrawn) a consent a consultation needs: 428, shown as the consent screen."""

    code = ERR_CONSENT_REQUIRED
    status = 428


def parse_kind(value: str) -> ConsentKind:
    """The consent kind named on the wire.

    Raises:
        InvalidInput: ``invalid_consent_kind``.
    """
    try:
        return ConsentKind(value)
    except ValueError:
        raise InvalidInput(
            "consent kind is telemedicine or health_data", code="invalid_consent_kind", details={"kind": value}
        ) from None


def check_version(kind: ConsentKind, version: str) -> ConsentText:
    """The current text of ``kind``, if ``version`` is it: a patient consents to the text they were shown.

    Raises:
        InvalidInput: ``consent_version_outdated`` when the version is not the current one.
    """
    text = CURRENT_TEXTS[kind]
    if version != text.version:
        raise InvalidInput(
            f"the {kind.value} consent text is now version {text.version}; read it and consent again",
            code="consent_version_outdated",
            details={"kind": kind.value, "current_version": text.version, "version": version},
        )
    return text


def missing_consents(records: Iterable[ConsentRecord]) -> list[ConsentKind]:
    """The kinds without a standing consent to the current text (given, not withdrawn), in a fixed order."""
    standing = {r.kind for r in records if r.withdrawn_at is None and r.version == CURRENT_TEXTS[r.kind].version}
    return [kind for kind in ConsentKind if kind not in standing]


def require_consents(records: Iterable[ConsentRecord]) -> None:
    """Refuse a new consultation without both consents (checklist E1).

    Raises:
        ConsentRequired: with ``details["missing"]`` and the texts to show.
    """
    missing = missing_consents(records)
    if missing:
        raise ConsentRequired(
            "give your consent before the consultation: " + ", ".join(k.value for k in missing),
            details={
                "missing": [k.value for k in missing],
                "texts": [texts_view(CURRENT_TEXTS[k]) for k in missing],
            },
        )


def texts_view(text: ConsentText) -> dict[str, str]:
    """A consent text as the browser app shows it."""
    return {"kind": text.kind.value, "version": text.version, "ru": text.ru, "en": text.en}
