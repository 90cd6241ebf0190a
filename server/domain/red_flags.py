# ruff: noqa: RUF001  (patient-facing Russian texts: Cyrillic letters are intended)
"""The red-flag checklist a patient answers before a request joins the queue (R11.6).

Red flags first: a patient with chest pain or signs of a stroke must not wait behind a mild
cough. Any "yes" means the patient is told at once to call 103/112; if they still make the
request, it is urgent (ahead of the queue, offered to every on-duty doctor of the specialty at
once, shown live to the dispatchers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from server.domain.errors import InvalidInput

EMERGENCY_PHONES: Final = ("103", "112")
ERR_RED_FLAGS_REQUIRED: Final = "red_flags_required"
ERR_INVALID_RED_FLAGS: Final = "invalid_red_flags"
ERR_CALL_EMERGENCY: Final = "red_flags_call_emergency"


@dataclass(frozen=True, slots=True)
class RedFlag:
    """One question of the checklist, in Russian and English."""

    code: str
    ru: str
    en: str


CHECKLIST: Final[tuple[RedFlag, ...]] = (
    RedFlag("chest_pain", "Боль или давление в груди", "Chest pain or pressure"),
    RedFlag("breathing", "Затруднённое дыхание, удушье", "Trouble breathing"),
    RedFlag(
        "stroke_signs",
        "Признаки инсульта: перекос лица, слабость руки или ноги, нарушение речи",
        "Signs of a stroke: face drooping, arm or leg weakness, speech difficulty",
    ),
    RedFlag("heavy_bleeding", "Сильное кровотечение", "Heavy bleeding"),
    RedFlag("loss_of_consciousness", "Потеря сознания", "Loss of consciousness"),
    RedFlag("self_harm", "Мысли о причинении себе вреда", "Thoughts of self-harm"),
)
CODES: Final[tuple[str, ...]] = tuple(flag.code for flag in CHECKLIST)

INSTRUCTION_EN: Final = (
    "Your answers suggest an emergency. Call an ambulance now: 103, or 112 from any phone. "
    "You may still ask for an urgent online consultation, but do not wait for it."
)
INSTRUCTION_RU: Final = (
    "Ваши ответы указывают на неотложное состояние. Немедленно вызовите скорую помощь: 103 "
    "или 112 с любого телефона. Срочную онлайн-консультацию можно запросить, но не ждите её."
)


@dataclass(frozen=True, slots=True)
class RedFlagAssessment:
    """What the checklist answers mean for the request.

    Attributes:
        answers: Every checklist code with the patient's yes/no.
        flags: The codes answered "yes", in checklist order.
    """

    answers: Mapping[str, bool]
    flags: tuple[str, ...]

    @property
    def urgent(self) -> bool:
        """Any "yes" makes the request urgent (R11.6)."""
        return bool(self.flags)

    def as_dict(self) -> dict[str, bool]:
        """The answers as stored with the consultation, in checklist order."""
        return {code: self.answers[code] for code in CODES}


def assess_red_flags(answers: Mapping[str, object] | None) -> RedFlagAssessment:
    """Check the checklist answers: every question answered with true or false, nothing else (R11.6).

    Args:
        answers: ``{code: bool}`` for every code of ``CHECKLIST``.

    Raises:
        InvalidInput: ``red_flags_required`` when the checklist is missing or incomplete (the
            missing codes are in ``details``), ``invalid_red_flags`` for unknown codes or non-boolean answers.
    """
    if answers is None:
        raise InvalidInput(
            "answer the red-flag checklist before the request joins the queue (R11.6)",
            code=ERR_RED_FLAGS_REQUIRED,
            details={"missing": list(CODES), "checklist": checklist_view()},
        )
    unknown = sorted(set(answers) - set(CODES))
    if unknown:
        raise InvalidInput(
            f"unknown red-flag questions: {', '.join(unknown)}",
            code=ERR_INVALID_RED_FLAGS,
            details={"unknown": unknown},
        )
    missing = [code for code in CODES if code not in answers]
    if missing:
        raise InvalidInput(
            f"answer every red-flag question (R11.6); missing: {', '.join(missing)}",
            code=ERR_RED_FLAGS_REQUIRED,
            details={"missing": missing, "checklist": checklist_view()},
        )
    not_bool = [code for code in CODES if not isinstance(answers[code], bool)]
    if not_bool:
        raise InvalidInput(
            f"red-flag answers are true or false: {', '.join(not_bool)}",
            code=ERR_INVALID_RED_FLAGS,
            details={"not_boolean": not_bool},
        )
    checked = {code: bool(answers[code]) for code in CODES}
    return RedFlagAssessment(checked, tuple(code for code in CODES if checked[code]))


def checklist_view() -> list[dict[str, str]]:
    """The checklist as the browser app shows it."""
    return [{"code": f.code, "ru": f.ru, "en": f.en} for f in CHECKLIST]


def emergency_instruction() -> dict[str, object]:
    """The 103/112 instruction shown at once when any answer is "yes" (R11.6)."""
    return {"phones": list(EMERGENCY_PHONES), "en": INSTRUCTION_EN, "ru": INSTRUCTION_RU}
