"""Medical secrecy towards employers: forbidden fields (R12.5)."""

from __future__ import annotations

import pytest

from server.domain.errors import Forbidden
from server.domain.privacy import HR_FORBIDDEN_FIELDS, ensure_hr_safe


def test_hr_never_sees_clinical_fields_r12_5() -> None:
    assert {"diagnosis", "icd10_code", "complaints", "notes", "messages"} <= HR_FORBIDDEN_FIELDS
    ensure_hr_safe(["department", "channel", "specialty", "consultations"])
    with pytest.raises(Forbidden) as caught:
        ensure_hr_safe(["department", "notes", "icd10_code"])
    assert caught.value.code == "medical_secrecy"
    assert caught.value.rules == ("R12.5",)
    assert caught.value.details == {"fields": ["icd10_code", "notes"]}
