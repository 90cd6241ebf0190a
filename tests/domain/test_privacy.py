"""Medical secrecy towards employers: small-group suppression and forbidden fields (R12.5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.errors import Forbidden
from server.domain.privacy import (
    HR_FORBIDDEN_FIELDS,
    MIN_GROUP_SIZE,
    ensure_hr_safe,
    suppress_small_groups,
    suppressed_total,
)


def test_the_threshold_is_five_r12_5() -> None:
    assert MIN_GROUP_SIZE == 5


def test_large_groups_are_shown_unchanged_r12_5() -> None:
    counts = {"sales": 12, "it": 7, "hr": 5}
    assert suppress_small_groups(counts) == counts


def test_a_small_group_and_the_next_smallest_are_hidden_r12_5() -> None:
    """Hiding only 'legal' would let the total minus the rest give its 2 people away."""
    counts = {"sales": 40, "legal": 2, "it": 9, "ops": 15}
    assert suppress_small_groups(counts) == {"sales": 40, "legal": None, "it": None, "ops": 15}


def test_hidden_groups_that_add_up_to_a_small_number_pull_in_another_r12_5() -> None:
    counts = {"a": 1, "b": 2, "c": 30, "d": 20}
    assert suppress_small_groups(counts) == {"a": None, "b": None, "c": 30, "d": None}


def test_zero_is_hidden_too_r12_5() -> None:
    """'Nobody in the department consulted a psychotherapist' is a statement about each member."""
    assert suppress_small_groups({"a": 0, "b": 10, "c": 11}) == {"a": None, "b": None, "c": 11}


def test_ties_for_the_complementary_cell_go_to_the_first_key() -> None:
    assert suppress_small_groups({"z": 3, "b": 8, "a": 8}) == {"z": None, "b": 8, "a": None}


def test_a_single_small_group_hides_the_total_too_r12_5() -> None:
    assert suppress_small_groups({"only": 3}) == {"only": None}
    assert suppressed_total({"only": 3}) is None
    assert suppressed_total({"a": 3, "b": 4}) == 7
    assert suppressed_total({}) is None


def test_key_order_is_kept_and_min_size_is_configurable() -> None:
    assert list(suppress_small_groups({"b": 50, "a": 60})) == ["b", "a"]
    assert suppress_small_groups({"a": 9, "b": 12, "c": 20}, min_size=10) == {"a": None, "b": None, "c": 20}


def test_bad_inputs_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        suppress_small_groups({"a": -1})
    with pytest.raises(ValueError):
        suppress_small_groups({"a": 1}, min_size=0)


@settings(deadline=None, max_examples=400)
@given(
    counts=st.dictionaries(st.text(min_size=1, max_size=3), st.integers(min_value=0, max_value=40), max_size=8),
    min_size=st.integers(min_value=1, max_value=10),
)
def test_no_shown_figure_singles_anyone_out_r12_5(counts: dict[str, int], min_size: int) -> None:
    """Shown counts are exact and >= min_size; a hidden cell is never alone nor recoverable from the total."""
    shown = suppress_small_groups(counts, min_size)
    assert shown.keys() == counts.keys()
    hidden = [key for key, value in shown.items() if value is None]
    for key, value in shown.items():
        if value is not None:
            assert value == counts[key] >= min_size
        else:
            assert key in hidden
    assert all(counts[key] >= min_size for key in counts if key not in hidden)
    if hidden:
        # total - visible = the hidden sum: it must be neither a single cell nor a small group.
        hidden_sum = sum(counts[key] for key in hidden)
        total = suppressed_total(counts, min_size)
        if total is not None:
            assert len(hidden) >= 2
            assert hidden_sum >= min_size
        else:
            assert len(hidden) == len(counts)  # everything hidden and the total too


def test_hr_never_sees_clinical_fields_r12_5() -> None:
    assert {"diagnosis", "icd10_code", "complaints", "notes", "messages"} <= HR_FORBIDDEN_FIELDS
    ensure_hr_safe(["department", "channel", "specialty", "consultations"])
    with pytest.raises(Forbidden) as caught:
        ensure_hr_safe(["department", "notes", "icd10_code"])
    assert caught.value.code == "medical_secrecy"
    assert caught.value.rules == ("R12.5",)
    assert caught.value.details == {"fields": ["icd10_code", "notes"]}
