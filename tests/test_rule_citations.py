"""Every dispatch rule R1.1-R10.2 is cited by at least one test, so a reader can go from a rule to its proof."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

TESTS = Path(__file__).resolve().parent

# The numbered rules of the coverage and dispatch part of domain-rules.md (R11/R12 are other areas').
RULE_COUNTS: Final = {1: 4, 2: 6, 3: 3, 4: 6, 5: 3, 6: 4, 7: 4, 8: 2, 9: 4, 10: 2}
RULE_IDS: Final = [f"R{group}.{item}" for group, count in RULE_COUNTS.items() for item in range(1, count + 1)]


def _test_sources() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in TESTS.rglob("*.py") if path.name != Path(__file__).name
    )


def test_every_rule_from_r1_1_to_r10_2_is_cited_by_a_test() -> None:
    sources = _test_sources()
    missing = [rule for rule in RULE_IDS if not re.search(re.escape(rule) + r"(?![0-9])", sources)]
    assert missing == [], f"rules without a citing test: {missing}"
    assert len(RULE_IDS) == 38
