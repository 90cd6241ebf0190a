"""A consultation's service date, the policy-year allowance and the doctor's event link (R11.4, R11.5)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from server.domain.consultation import check_allowance
from server.domain.consultation_coverage import (
    EventCandidate,
    PolicyYear,
    check_event_link,
    icd10_category,
    policy_year,
    service_date,
    suggest_open_event,
)
from server.domain.errors import InvalidInput

MSK = ZoneInfo("Europe/Moscow")


def test_service_date_is_the_day_the_consultation_started_R11_4() -> None:
    """Accepted 2026-12-31 23:50 Moscow, completed 00:10: counted on 2026-12-31."""
    assert service_date(datetime(2026, 12, 31, 23, 50, tzinfo=MSK), "Europe/Moscow") == date(2026, 12, 31)
    assert service_date(datetime(2026, 12, 31, 21, 0, tzinfo=UTC), "Europe/Moscow") == date(2027, 1, 1)
    assert service_date(datetime(2026, 12, 31, 20, 59, tzinfo=UTC), "Europe/Moscow") == date(2026, 12, 31)
    with pytest.raises(InvalidInput):
        service_date(datetime(2026, 12, 31, 23, 50), "Europe/Moscow")


def test_allowance_is_per_policy_year_not_per_calendar_year_R11_4() -> None:
    """Policy 2026-07-01..2027-06-30: 12 of 12 used in December are not available again on 2027-01-05."""
    year = policy_year(date(2026, 7, 1), date(2027, 6, 30), date(2027, 1, 5))
    assert year == PolicyYear(date(2026, 7, 1), date(2027, 6, 30))
    assert year == policy_year(date(2026, 7, 1), date(2027, 6, 30), date(2026, 12, 20))
    decision = check_allowance(12, 12, period=year)
    assert not decision.allowed
    assert decision.rules == ("R10.2", "R11.3")
    assert decision.reasons[0].facts["policy_year"] == {"starts_on": "2026-07-01", "ends_on": "2027-06-30"}
    assert "2026-07-01 to 2027-06-30" in decision.reasons[0].message
    assert check_allowance(11, 12, period=year).allowed


def test_policy_years_of_a_longer_policy_split_at_each_anniversary_R11_4() -> None:
    start, end = date(2026, 3, 1), date(2028, 5, 31)
    assert policy_year(start, end, date(2027, 2, 28)) == PolicyYear(date(2026, 3, 1), date(2027, 2, 28))
    assert policy_year(start, end, date(2027, 3, 1)) == PolicyYear(date(2027, 3, 1), date(2028, 2, 29))
    assert policy_year(start, end, date(2028, 3, 1)) == PolicyYear(date(2028, 3, 1), date(2028, 5, 31))
    assert policy_year(start, end, start).contains(start)
    assert not policy_year(start, end, start).contains(date(2027, 3, 1))
    with pytest.raises(InvalidInput):
        policy_year(start, end, date(2028, 6, 1))
    with pytest.raises(InvalidInput):
        policy_year(start, end, date(2026, 2, 28))
    with pytest.raises(ValueError):
        check_allowance(0, 1)


OPENED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
STOMACH = EventCandidate(1, "Stomach pain", OPENED, frozenset({"K29.7"}))
THROAT = EventCandidate(2, "Боль в горле", datetime(2026, 11, 5, tzinfo=UTC), frozenset({"J02.9"}))
THROAT_LATER = EventCandidate(3, "Sore throat again", datetime(2026, 11, 20, tzinfo=UTC), frozenset({"J02.0"}))


def test_suggestion_is_by_icd10_category_never_by_words_R11_5() -> None:
    """ "Chest pain" shares a word with "Stomach pain" but not a category: nothing is suggested."""
    assert suggest_open_event([STOMACH, THROAT], "I20.9") is None  # angina: no open cardiac event
    assert suggest_open_event([STOMACH, THROAT], "K29.1") == STOMACH
    assert suggest_open_event([STOMACH, THROAT, THROAT_LATER], "J02.8") == THROAT_LATER
    assert suggest_open_event([EventCandidate(4, "Stomach pain", OPENED)], "K29.7") is None
    assert icd10_category(" j06.9 ") == "J06"


def test_the_doctor_links_the_consultation_or_opens_a_new_event_R11_5() -> None:
    new = check_event_link([STOMACH, THROAT], None)
    assert new.rule == "R11.5" and new.facts == {"insured_event_id": None, "open_events": [1, 2]}
    linked = check_event_link([STOMACH, THROAT], 2)
    assert linked.rule == "R11.5" and linked.facts == {"insured_event_id": 2}
    with pytest.raises(InvalidInput) as err:
        check_event_link([STOMACH], 2)
    assert err.value.code == "unknown_insured_event"


# ------------------------------------------------------------------ the referral says why (R11.3, R7.2, R6.1)

from server.domain.attachment import attachment_effective  # noqa: E402
from server.domain.consultation import RouteKind, referral_route  # noqa: E402
from server.domain.coverage_types import AttachmentLetterFacts  # noqa: E402

PENDING = AttachmentLetterFacts(
    "AL-2026-000007", 15, date(2026, 12, 4), date(2026, 12, 7), date(2026, 12, 7), date(2026, 12, 31)
)


def test_referral_for_a_letter_still_on_its_way_says_so_R11_3_R7_2() -> None:
    """Not "an installment is unpaid": the letter reaches the clinic on 12-07."""
    attachment = attachment_effective([PENDING], date(2026, 12, 5), clinic_id=15)
    route = referral_route("registry", 15, attachment_effective=False, attachment_reasons=attachment.reasons)
    assert route.kind is RouteKind.DISPATCHER_REQUEST
    assert route.rules == ("R7.2", "R11.3", "R3.2")
    assert route.reasons[0].facts["send_on"] == "2026-12-07"
    assert "unpaid" not in route.reasons[0].message


def test_referral_without_any_attachment_letter_says_so_R11_3_R6_1() -> None:
    attachment = attachment_effective([], date(2026, 12, 5), clinic_id=15)
    route = referral_route("registry", 15, attachment_effective=False, attachment_reasons=attachment.reasons)
    assert route.rules == ("R6.1", "R11.3", "R3.2")
    assert "no attachment letter" in route.reasons[0].message


def test_referral_after_a_lapse_names_the_letter_that_ended_R11_3_R7_4() -> None:
    attachment = attachment_effective([PENDING], date(2027, 1, 5), clinic_id=15)
    route = referral_route("registry", 15, attachment_effective=False, attachment_reasons=attachment.reasons)
    assert route.rules == ("R7.4", "R11.3", "R3.2")
    assert route.reasons[0].facts["attachment_letter"] == "AL-2026-000007"
