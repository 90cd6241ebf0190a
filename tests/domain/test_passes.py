"""Clinic passes: photo required for clinics with an access system, and the photo format (R6.4)."""

from __future__ import annotations

import pytest

from server.domain.passes import PASS_PHOTO_RULES, check_pass_photo, validate_photo_facts
from tests.domain.coverage_facts import CLINIC_CAT2, CLINIC_PASS, CLINICS, dispatcher

MIB = 1024 * 1024


def test_clinic_without_access_system_needs_no_pass_R6_4() -> None:
    decision = check_pass_photo(CLINICS[CLINIC_CAT2], dispatcher())
    assert decision.allowed
    assert decision.rules == ("R6.4",)


def test_access_system_clinic_without_photo_asks_for_one_R6_4() -> None:
    decision = check_pass_photo(CLINICS[CLINIC_PASS], dispatcher())
    assert not decision.allowed
    assert decision.rules == ("R6.4",)
    assert "JPEG or PNG" in decision.reasons[0].message


def test_access_system_clinic_with_photo_on_file_is_fine_R6_4() -> None:
    assert check_pass_photo(CLINICS[CLINIC_PASS], dispatcher(photo=True)).allowed


@pytest.mark.parametrize("mime", ["image/jpeg", "image/png", "IMAGE/PNG"])
def test_portrait_jpeg_or_png_of_the_right_size_is_accepted_R6_4(mime: str) -> None:
    decision = validate_photo_facts(mime, 500_000, 600, 800)
    assert decision.allowed
    assert decision.rules == ("R6.4",)


@pytest.mark.parametrize(
    ("mime", "size", "width", "height", "words"),
    [
        ("image/gif", 1000, 600, 800, "not accepted"),
        ("image/jpeg", 2 * MIB + 1, 600, 800, "larger than 2 MiB"),
        ("image/jpeg", 0, 600, 800, "empty"),
        ("image/jpeg", 1000, 299, 800, "at least 300x400"),
        ("image/jpeg", 1000, 300, 399, "at least 300x400"),
        ("image/jpeg", 1000, 800, 600, "portrait"),
        ("image/jpeg", 1000, 600, 600, "portrait"),
        ("image/png", 1000, 4000, 7000, "exceed 6000"),
    ],
)
def test_photo_outside_the_format_is_refused_with_the_reason_R6_4(
    mime: str, size: int, width: int, height: int, words: str
) -> None:
    decision = validate_photo_facts(mime, size, width, height)
    assert not decision.allowed
    assert set(decision.rules) == {"R6.4"}
    assert any(words in r.message for r in decision.reasons)


def test_every_problem_of_a_photo_is_listed_at_once_R6_4() -> None:
    decision = validate_photo_facts("image/webp", 3 * MIB, 100, 50)
    assert len(decision.reasons) == 4  # type, size, dimensions, orientation


def test_photo_rules_describe_themselves_R6_4() -> None:
    assert PASS_PHOTO_RULES.describe() == "JPEG or PNG, at most 2 MiB, at least 300x400 px, portrait"
