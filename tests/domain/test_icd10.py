"""ICD-10 codes: canonical form and validation against the WHO list (completion of a consultation, R11.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.errors import InvalidInput, RuleViolation
from server.domain.icd10 import Icd10Code, is_valid_icd10, normalize_icd10, validate_icd10


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("J06.9", "J06.9"),
        ("j06.9", "J06.9"),
        ("  J069 ", "J06.9"),
        ("J06", "J06"),
        ("J06.", "J06"),
        ("J06,9", "J06.9"),  # Russian decimal comma
        ("\u041009.0", "A09.0"),  # Cyrillic A typed on a Russian layout
        ("\u0421 34.1", "C34.1"),  # Cyrillic Es, stray space
        ("G01*", "G01"),  # asterisk (manifestation) mark
        ("A17.0\u2020", "A17.0"),  # dagger (cause) mark
        ("J00-J06", "J00-J06"),
        ("x", "X"),
    ],
)
def test_normalize_puts_codes_in_canonical_form(typed: str, canonical: str) -> None:
    assert normalize_icd10(typed) == canonical


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=12) | st.from_regex(r"\s*[A-Za-z][0-9]{2}[.,]?[0-9A-Za-z]?[.*]?\s*", fullmatch=True))
def test_normalize_is_idempotent(typed: str) -> None:
    once = normalize_icd10(typed)
    assert normalize_icd10(once) == once


@pytest.mark.parametrize(
    ("typed", "code", "description"),
    [
        ("J06.9", "J06.9", "Acute upper respiratory infection, unspecified"),
        ("j069", "J06.9", "Acute upper respiratory infection, unspecified"),
        ("R51", "R51", "Headache"),  # a category without subcategories
        ("U07.1", "U07.1", "COVID-19, virus identified"),
    ],
)
def test_leaf_categories_and_subcategories_are_accepted_with_the_who_description(
    typed: str, code: str, description: str
) -> None:
    assert validate_icd10(typed) == Icd10Code(code, description)
    assert is_valid_icd10(typed)


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "X",  # a chapter
        "I",  # a chapter
        "J00-J06",  # a block
        "J06.90",  # 5 characters: not in the WHO list
        "F32.A",  # ICD-10-CM, not WHO
        "Z99.99",
        "J99.9",  # well-formed but not a code
        "headache",
    ],
)
def test_chapters_blocks_and_unknown_codes_are_refused(typed: str) -> None:
    assert not is_valid_icd10(typed)
    with pytest.raises(InvalidInput) as caught:
        validate_icd10(typed)
    assert caught.value.code == "invalid_icd10"
    assert caught.value.details == {"icd10_code": typed}


@pytest.mark.parametrize(
    ("typed", "first", "count"),
    [("I21", "I21.0", 6), ("J06", "J06.0", 3), ("e11", "E11.0", 10), ("C50", "C50.0", 9), ("S72", "S72.0", 8)],
)
def test_r11_9_categories_with_sub_codes_are_refused_and_the_sub_codes_offered(
    typed: str, first: str, count: int
) -> None:
    """R11.9: the diagnosis is a leaf of the classification; the error lists the sub-codes to choose from."""
    with pytest.raises(RuleViolation) as caught:
        validate_icd10(typed)
    assert caught.value.code == "icd10_not_specific"
    assert caught.value.rules == ("R11.9",)
    suggestions = caught.value.details["suggestions"]
    assert len(suggestions) == count
    assert suggestions[0]["code"] == first and suggestions[0]["description"]
    assert all(validate_icd10(s["code"]).code == s["code"] for s in suggestions)


def test_search_by_code_prefix_offers_only_codes_a_diagnosis_can_carry_r11_9() -> None:
    from server.domain.icd10 import search_icd10

    codes = [c.code for c in search_icd10("J06")]
    assert "J06" not in codes and "J06.9" in codes and all(c.startswith("J06.") for c in codes)
    assert all(validate_icd10(code).code == code for code in codes)
    assert [c.code for c in search_icd10("j06,9")] == ["J06.9"]  # Russian decimal comma


def test_search_by_words_needs_every_word() -> None:
    from server.domain.icd10 import search_icd10

    found = search_icd10("acute pharyngitis")
    assert found and all("acute" in c.description.lower() and "pharyngitis" in c.description.lower() for c in found)
    assert search_icd10("   ") == [] and search_icd10("no such disease zzz") == []
