"""Mutation testing of the pure domain rules: runs mutmut over server/domain and prints the score per module.

    .venv/bin/python tools/mutation_score.py approval attachment routing   # some modules
    .venv/bin/python tools/mutation_score.py                               # every module of server/domain
    .venv/bin/python tools/mutation_score.py --report-only approval        # scores of the last run

The configuration is ``[tool.mutmut]`` in pyproject.toml (only server/domain is mutated, only
tests/domain runs). A mutant is *killed* when a test fails on it; the score is killed / (killed +
survived), timeouts counted as killed and mutants with no covering test as survived. The survivors'
names are printed so that each can be looked at with ``mutmut show NAME``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ROOT / "server" / "domain"
MUTMUT = Path(sys.executable).parent / "mutmut"

KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # test failure, pytest error, timeouts, type check
SURVIVED = {0, 5, 33}  # tests passed, or no test ran the mutated code


def modules(names: list[str]) -> list[str]:
    """The domain modules asked for (all of them when none is named)."""
    if not names:
        return sorted(p.stem for p in DOMAIN.glob("*.py") if p.stem != "__init__")
    unknown = [n for n in names if not (DOMAIN / f"{n}.py").is_file()]
    if unknown:
        raise SystemExit(f"no such domain module: {', '.join(unknown)}")
    return names


def run(module: str, max_children: int) -> None:
    """Run mutmut over the mutants of one module (they are named ``server.domain.<module>.x_...``)."""
    subprocess.run(  # noqa: S603 - our own venv's mutmut, with a module name checked against server/domain
        [str(MUTMUT), "run", "--max-children", str(max_children), f"server.domain.{module}.*"],
        cwd=ROOT,
        check=False,
    )


def score(module: str) -> tuple[Counter[str], list[str]]:
    """Counts by outcome and the surviving mutants of one module, from mutmut's result file."""
    meta = ROOT / "mutants" / "server" / "domain" / f"{module}.py.meta"
    counts: Counter[str] = Counter()
    survivors: list[str] = []
    if not meta.is_file():
        return counts, survivors
    data = json.loads(meta.read_text(encoding="utf-8"))
    for name, code in sorted(data.get("exit_code_by_key", {}).items()):
        if code in KILLED:
            counts["killed"] += 1
        elif code in SURVIVED:
            counts["survived"] += 1
            survivors.append(name)
        elif code is None:
            counts["not checked"] += 1
        else:
            counts["other"] += 1
    return counts, survivors


def main() -> None:
    """Parse arguments, run, print a table and the survivors."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="domain modules (file names without .py)")
    parser.add_argument("--report-only", action="store_true", help="do not run, only print the last results")
    parser.add_argument("--max-children", type=int, default=2, help="parallel test processes (default 2)")
    parser.add_argument("--survivors", action="store_true", help="list every surviving mutant")
    args = parser.parse_args()
    chosen = modules(args.modules)
    if not args.report_only:
        for module in chosen:
            run(module, args.max_children)
    print(f"{'module':<22} {'mutants':>7} {'killed':>7} {'survived':>8} {'score':>7}")
    for module in chosen:
        counts, survivors = score(module)
        judged = counts["killed"] + counts["survived"]
        pct = f"{100 * counts['killed'] / judged:.1f}%" if judged else "-"
        print(f"{module:<22} {sum(counts.values()):>7} {counts['killed']:>7} {counts['survived']:>8} {pct:>7}")
        if args.survivors:
            for name in survivors:
                print(f"    survived: {name}")


if __name__ == "__main__":
    main()
