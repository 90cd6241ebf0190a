"""Choosing a clinic: the program's list (R2.3), the price category for attachment (R5.3), passes (R6.4)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.clinics import ClinicPurpose, allowed_clinics, check_clinic_choice
from server.domain.coverage_types import ClinicFacts, ServiceType
from tests.domain.coverage_facts import (
    CLINIC_CAT1,
    CLINIC_CAT2,
    CLINIC_CAT2_OTHER,
    CLINIC_CAT3,
    CLINIC_OFF_LIST,
    CLINIC_PASS,
    CLINICS,
    dispatcher,
    make_clinic,
    make_program,
)


def test_visit_clinics_are_the_programs_list_in_any_category_R2_3() -> None:
    ids = [c.id for c in allowed_clinics(make_program(), CLINICS.values())]
    assert sorted(ids) == sorted([CLINIC_CAT2, CLINIC_CAT2_OTHER, CLINIC_CAT1, CLINIC_CAT3, CLINIC_PASS])
    assert CLINIC_OFF_LIST not in ids


def test_attachment_clinics_are_only_of_the_programs_category_R5_3() -> None:
    ids = {c.id for c in allowed_clinics(make_program(), CLINICS.values(), ServiceType.REGISTRY)}
    assert ids == {CLINIC_CAT2, CLINIC_CAT2_OTHER, CLINIC_PASS}


def test_allowed_clinics_are_sorted_and_deduplicated_R2_3() -> None:
    b = make_clinic(CLINIC_CAT2, city="Kazan")
    a = make_clinic(CLINIC_CAT2_OTHER, city="Ekaterinburg")
    assert [c.id for c in allowed_clinics(make_program(), [b, a, b])] == [CLINIC_CAT2_OTHER, CLINIC_CAT2]


def test_clinic_off_the_list_is_refused_for_a_visit_R2_3() -> None:
    choice = check_clinic_choice(make_program(), CLINICS[CLINIC_OFF_LIST], ClinicPurpose.VISIT)
    assert not choice.allowed
    assert choice.rules == ("R2.3",)
    assert "not on the list" in choice.reasons[0].message


def test_clinic_of_other_category_is_fine_for_a_visit_R2_3() -> None:
    choice = check_clinic_choice(make_program(), CLINICS[CLINIC_CAT1], "visit")
    assert choice.allowed
    assert choice.rules == ("R2.3",)


def test_category_1_clinic_cannot_be_attached_with_category_2_R5_3() -> None:
    choice = check_clinic_choice(make_program(), CLINICS[CLINIC_CAT1], ClinicPurpose.ATTACHMENT)
    assert not choice.allowed
    assert choice.rules == ("R5.3",)
    assert choice.reasons[0].facts == {"clinic_id": CLINIC_CAT1, "clinic_category": 1, "program_category": 2}


def test_off_list_clinic_of_wrong_category_lists_both_failures_R2_3_R5_3() -> None:
    program = make_program(price_category=3)
    choice = check_clinic_choice(program, CLINICS[CLINIC_OFF_LIST], ClinicPurpose.ATTACHMENT)
    assert choice.rules == ("R2.3", "R5.3")


def test_access_system_clinic_asks_for_a_pass_photo_without_refusing_R6_4() -> None:
    choice = check_clinic_choice(make_program(), CLINICS[CLINIC_PASS], ClinicPurpose.ATTACHMENT, dispatcher())
    assert choice.allowed
    assert choice.needs_pass_photo
    assert choice.rules[-1] == "R6.4"
    assert choice.as_dict()["needs_pass_photo"] is True


def test_access_system_clinic_with_photo_on_file_needs_nothing_more_R6_4() -> None:
    choice = check_clinic_choice(make_program(), CLINICS[CLINIC_PASS], ClinicPurpose.VISIT, dispatcher(photo=True))
    assert choice.allowed
    assert not choice.needs_pass_photo


def test_clinic_without_access_system_never_needs_a_photo_R6_4() -> None:
    assert not check_clinic_choice(make_program(), CLINICS[CLINIC_CAT2], "visit").needs_pass_photo


@settings(deadline=None, max_examples=200)
@given(
    program_category=st.integers(1, 3),
    clinics=st.lists(
        st.builds(
            ClinicFacts,
            id=st.integers(1, 30),
            name=st.just("C"),
            city=st.sampled_from(["Moscow", "Kazan"]),
            price_category=st.integers(1, 3),
            has_access_system=st.booleans(),
        ),
        max_size=12,
    ),
    listed=st.frozensets(st.integers(1, 30)),
)
def test_no_attachment_outside_the_programs_category_property_R5_3(
    program_category: int, clinics: list[ClinicFacts], listed: frozenset[int]
) -> None:
    program = make_program(price_category=program_category, clinic_ids=listed)
    for clinic in allowed_clinics(program, clinics, ServiceType.REGISTRY):
        assert clinic.price_category == program_category
        assert clinic.id in listed
    for clinic in clinics:
        choice = check_clinic_choice(program, clinic, ClinicPurpose.ATTACHMENT)
        assert choice.allowed == (clinic.price_category == program_category and clinic.id in listed)
        assert choice.reasons
