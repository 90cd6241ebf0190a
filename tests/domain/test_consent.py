"""Consents before a telemedicine consultation: versioned texts, withdrawal (checklist E1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from server.domain.consent import (
    CURRENT_TEXTS,
    ConsentKind,
    ConsentRecord,
    ConsentRequired,
    check_version,
    missing_consents,
    require_consents,
)
from server.domain.errors import InvalidInput

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _given(kind: ConsentKind, **fields: object) -> ConsentRecord:
    return ConsentRecord(kind, CURRENT_TEXTS[kind].version, NOW, **fields)  # type: ignore[arg-type]


def test_both_consents_are_needed_in_their_current_version() -> None:
    assert missing_consents([]) == [ConsentKind.TELEMEDICINE, ConsentKind.HEALTH_DATA]
    assert missing_consents([_given(ConsentKind.HEALTH_DATA)]) == [ConsentKind.TELEMEDICINE]
    assert missing_consents([_given(ConsentKind.TELEMEDICINE), _given(ConsentKind.HEALTH_DATA)]) == []
    old = ConsentRecord(ConsentKind.TELEMEDICINE, "2020-01-01", NOW)
    assert missing_consents([old, _given(ConsentKind.HEALTH_DATA)]) == [ConsentKind.TELEMEDICINE]


def test_a_withdrawn_consent_stops_new_consultations() -> None:
    records = [_given(ConsentKind.TELEMEDICINE, withdrawn_at=NOW), _given(ConsentKind.HEALTH_DATA)]
    with pytest.raises(ConsentRequired) as caught:
        require_consents(records)
    assert caught.value.status == 428 and caught.value.code == "consent_required"
    assert caught.value.details["missing"] == ["telemedicine"]
    assert caught.value.details["texts"][0]["ru"] and caught.value.details["texts"][0]["en"]


def test_consent_is_to_the_current_text_only() -> None:
    assert check_version(ConsentKind.HEALTH_DATA, CURRENT_TEXTS[ConsentKind.HEALTH_DATA].version)
    with pytest.raises(InvalidInput) as caught:
        check_version(ConsentKind.HEALTH_DATA, "1999-01-01")
    assert caught.value.code == "consent_version_outdated"
