"""Domain tests: an opt-in switch for mutation runs (``tools/mutation_score.py``).

With ``TELEMED_MUTATION_EXAMPLE_TESTS_ONLY=1`` the Hypothesis property tests are left out, so that
each mutant runs only the example tests (seconds instead of minutes on a shared two-core machine).
The score measured that way is a lower bound: a property test can only kill more mutants. Without
the variable nothing changes.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the property tests when a mutation run asks for example tests only."""
    if os.environ.get("TELEMED_MUTATION_EXAMPLE_TESTS_ONLY") != "1":
        return
    keep = [item for item in items if not getattr(getattr(item, "obj", None), "is_hypothesis_test", False)]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
