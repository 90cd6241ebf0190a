"""Who takes part in a consultation and who may write to its chat (checklist B4, C1, C5), as pure rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from server.domain.errors import Conflict, NotFound
from server.domain.participation import (
    ERR_CONSULTATION_CLOSED,
    ERR_CONSULTATION_NOT_ACTIVE,
    ConsultationAccess,
    participant_of,
    write_refusal,
)


@dataclass(frozen=True)
class Caller:
    subject_type: str
    subject_id: int
    role: str


PATIENT = Caller("insured", 7, "insured")
DOCTOR = Caller("staff", 3, "doctor")


def _access(status: str = "active", *, doctor_id: int | None = 3) -> ConsultationAccess:
    return ConsultationAccess(id=1, status=status, insured_person_id=7, doctor_id=doctor_id, last_seq=0)


def test_the_patient_and_the_assigned_doctor_take_part_c1() -> None:
    assert participant_of(_access(), PATIENT) == "patient"
    assert participant_of(_access(), DOCTOR) == "doctor"


@pytest.mark.parametrize(
    "caller",
    [
        Caller("insured", 8, "insured"),  # another patient
        Caller("staff", 4, "doctor"),  # another doctor
        Caller("staff", 3, "admin"),  # the doctor's id but not a doctor's role
        Caller("staff", 7, "admin"),  # an admin: no exception for chat (B4)
        Caller("insured", 3, "insured"),  # the doctor's id as an insured person
    ],
)
def test_nobody_else_takes_part_not_even_an_admin_b4(caller: Caller) -> None:
    assert participant_of(_access(), caller) is None
    assert isinstance(write_refusal(_access(), caller), NotFound)


def test_an_unassigned_consultation_has_no_doctor_and_an_unknown_one_no_participant() -> None:
    assert participant_of(_access("queued", doctor_id=None), DOCTOR) is None
    assert participant_of(None, PATIENT) is None
    assert isinstance(write_refusal(None, PATIENT), NotFound)


@pytest.mark.parametrize("status", ["queued", "offered", "active"])
def test_the_patient_writes_while_waiting_and_during_the_consultation_c5(status: str) -> None:
    assert write_refusal(_access(status), PATIENT) is None


def test_the_doctor_writes_only_while_active_c5() -> None:
    assert write_refusal(_access("active"), DOCTOR) is None
    refusal = write_refusal(_access("offered"), DOCTOR)
    assert isinstance(refusal, Conflict) and refusal.code == ERR_CONSULTATION_NOT_ACTIVE


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_nobody_writes_once_it_has_ended_c5(status: str) -> None:
    for caller in (PATIENT, DOCTOR):
        refusal = write_refusal(_access(status), caller)
        assert isinstance(refusal, Conflict) and refusal.code == ERR_CONSULTATION_CLOSED
