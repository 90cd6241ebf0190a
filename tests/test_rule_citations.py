"""Every dispatch rule R1.1-R10.3 (and R11.4, R11.5) is cited by at least one test, so a reader can go from a rule
to its proof."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

TESTS = Path(__file__).resolve().parent

# The numbered rules of the coverage and dispatch part of domain-rules.md (corrected 2026-12-01: R5.4, R7.5-R7.7,
# R9.5, R10.3 added), plus the telemedicine rules that decide coverage and money (R11.4, R11.5); the rest of R11
# and R12 are other areas'.
RULE_COUNTS: Final = {1: 4, 2: 6, 3: 3, 4: 6, 5: 4, 6: 4, 7: 7, 8: 2, 9: 5, 10: 3}
COVERAGE_RULES_OF_R11: Final = ["R11.4", "R11.5"]
RULE_IDS: Final = [
    *(f"R{group}.{item}" for group, count in RULE_COUNTS.items() for item in range(1, count + 1)),
    *COVERAGE_RULES_OF_R11,
]


def _test_sources() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in TESTS.rglob("*.py") if path.name != Path(__file__).name
    )


def test_every_rule_from_r1_1_to_r10_3_is_cited_by_a_test() -> None:
    sources = _test_sources()
    missing = [rule for rule in RULE_IDS if not re.search(re.escape(rule) + r"(?![0-9])", sources)]
    assert missing == [], f"rules without a citing test: {missing}"
    assert len(RULE_IDS) == 46
