"""Mutation testing of the pure domain rules: mutmut over server/domain, module by module, score per module.

    .venv/bin/python tools/mutation_score.py approval attachment routing   # some modules
    .venv/bin/python tools/mutation_score.py                               # every module of server/domain
    .venv/bin/python tools/mutation_score.py --report-only approval        # scores of the last run
    .venv/bin/python tools/mutation_score.py --report-only --survivors approval   # and the surviving decision mutants

The configuration is ``[tool.mutmut]`` in pyproject.toml (only server/domain is mutated, only
tests/domain runs). Each module is one ``mutmut run`` bounded by ``--minutes`` (the mutants not reached
in time are reported as "not checked"); ``--max-children`` (default 1) is mutmut's parallelism, kept low
because the machine's two cores are shared. By default each mutant runs the example tests of
tests/domain only, not the Hypothesis property tests (tests/domain/conftest.py leaves them out when
the script asks): minutes instead of an hour per module, and a lower bound of the score, since a
property test can only kill more (``--with-properties`` runs them too).

A mutant is *killed* when a test fails on it; the score is killed / (killed + survived), timeouts
counted as killed and mutants with no covering test as survived. Each mutant is also classified by
what it changes, comparing the mutated function with the original one in ``mutants/``:

- **message**: the only difference lies in the text of a reason: a string constant with a space in
  it (prose, never a rule id, a status value or a fact key), the message argument of ``Reason(...)``,
  the message argument of an error of ``server.domain.errors`` (``InvalidInput("...")``), or the value
  assigned to a name ending in ``message``, ``_text`` or ``why`` (the sentence shown to a person);
- **decision**: anything else: a comparison, a constant, a rule id, a fact, a returned flag.

The aim (issue 9) is about the decision score: at least 90 % of the decision mutants killed in every
module. The survivors' names are printed so that each can be looked at with ``mutmut show NAME``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ROOT / "server" / "domain"
MUTANTS = ROOT / "mutants" / "server" / "domain"
MUTMUT = Path(sys.executable).parent / "mutmut"

KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # test failure, pytest error, timeouts, type check
SURVIVED = {0, 5, 33}  # tests passed, or no test ran the mutated code
MESSAGE_NAMES = ("message", "_text", "why")  # assignments whose value is only the sentence a person reads
ERRORS = {"DomainError", "InvalidInput", "NotFound", "Forbidden", "Unauthorized", "RuleViolation", "Conflict"}
ERRORS |= {"RateLimited", "Unavailable"}  # server.domain.errors: their first argument is the message
_PLACEHOLDER = "<message>"


def modules(names: list[str]) -> list[str]:
    """The domain modules asked for (all of them when none is named)."""
    if not names:
        return sorted(p.stem for p in DOMAIN.glob("*.py") if p.stem != "__init__")
    unknown = [n for n in names if not (DOMAIN / f"{n}.py").is_file()]
    if unknown:
        raise SystemExit(f"no such domain module: {', '.join(unknown)}")
    return names


def run(module: str, max_children: int, minutes: float, *, properties: bool) -> bool:
    """Run mutmut over the mutants of one module (named ``server.domain.<module>.x_...``), at most ``minutes``.

    Returns False when the time ran out (mutmut and its workers are stopped; the verdicts reached so
    far are kept in mutmut's result file).
    """
    proc = subprocess.Popen(  # noqa: S603 - our own venv's mutmut, with a module name checked against server/domain
        [str(MUTMUT), "run", "--max-children", str(max_children), f"server.domain.{module}.*"],
        cwd=ROOT,
        env={**os.environ, "TELEMED_MUTATION_EXAMPLE_TESTS_ONLY": "0" if properties else "1"},
        start_new_session=True,  # its own process group, so that the workers can be stopped with it
    )
    try:
        proc.wait(timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        print(f"{module}: stopped after {minutes:g} minutes")
        return False
    return True


class _Messages(ast.NodeTransformer):
    """Replaces every part of a function that is only message text by one placeholder."""

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str) and " " in node.value:
            return ast.Constant(_PLACEHOLDER)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return ast.Constant(_PLACEHOLDER)  # an f-string is always a sentence here (never a key or an id)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        position = 1 if name == "Reason" else 0 if name in ERRORS else None
        if position is not None:
            if len(node.args) > position:
                node.args[position] = ast.Constant(_PLACEHOLDER)
            for kw in node.keywords:
                if kw.arg == "message":
                    kw.value = ast.Constant(_PLACEHOLDER)
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        self.generic_visit(node)
        if all(isinstance(t, ast.Name) and t.id.endswith(MESSAGE_NAMES) for t in node.targets):
            node.value = ast.Constant(_PLACEHOLDER)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        if isinstance(node.target, ast.Name) and node.target.id.endswith(MESSAGE_NAMES):
            node.value = ast.Constant(_PLACEHOLDER)
        return node


def _functions(module: str) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions of mutmut's copy of a module (originals and mutants), by their generated name."""
    path = MUTANTS / f"{module}.py"
    if not path.is_file():
        return {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name:
            found[node.name] = node
    return found


def _normalized(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    copy = ast.parse(ast.unparse(node)).body[0]
    assert isinstance(copy, ast.FunctionDef | ast.AsyncFunctionDef)
    copy.name = "f"
    return ast.dump(_Messages().visit(copy))


def kind(key: str, functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]) -> str:
    """Whether the mutant only changes the text of a reason ("message") or anything else ("decision")."""
    name = key.rpartition(".")[2]
    mutant = functions.get(name)
    original = functions.get(name.partition("__mutmut_")[0] + "__mutmut_orig")
    if mutant is None or original is None:
        return "decision"
    return "message" if _normalized(mutant) == _normalized(original) else "decision"


def score(module: str) -> tuple[Counter[str], list[str]]:
    """Counts by outcome and kind (``killed``, ``survived:decision``...) and the surviving decision mutants."""
    meta = MUTANTS / f"{module}.py.meta"
    counts: Counter[str] = Counter()
    survivors: list[str] = []
    if not meta.is_file():
        return counts, survivors
    data = json.loads(meta.read_text(encoding="utf-8"))
    functions = _functions(module)
    for name, code in sorted(data.get("exit_code_by_key", {}).items()):
        what = kind(name, functions)
        if code in KILLED:
            outcome = "killed"
        elif code in SURVIVED:
            outcome = "survived"
            if what == "decision":
                survivors.append(name)
        elif code is None:
            outcome = "not checked"
        else:
            outcome = "other"
        counts[outcome] += 1
        counts[f"{outcome}:{what}"] += 1
    return counts, survivors


def _pct(killed: int, survived: int) -> str:
    return f"{100 * killed / (killed + survived):.1f}%" if killed + survived else "-"


def main() -> None:
    """Parse arguments, run, print a table and the survivors."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="domain modules (file names without .py)")
    parser.add_argument("--report-only", action="store_true", help="do not run, only print the last results")
    parser.add_argument("--max-children", type=int, default=1, help="parallel test processes (default 1)")
    parser.add_argument("--minutes", type=float, default=20.0, help="time limit of each module's run (default 20)")
    parser.add_argument(
        "--with-properties", action="store_true", help="also run the Hypothesis property tests (much slower)"
    )
    parser.add_argument("--survivors", action="store_true", help="list every surviving decision mutant")
    args = parser.parse_args()
    chosen = modules(args.modules)
    if not args.report_only:
        for module in chosen:
            run(module, args.max_children, args.minutes, properties=args.with_properties)
    print(
        f"{'module':<24} {'mutants':>7} {'unchecked':>9} {'killed':>7} {'survived':>8} {'score':>7}"
        f" {'decision':>9} {'dec.surv':>8} {'dec.score':>9} {'msg.score':>9}"
    )
    for module in chosen:
        c, survivors = score(module)
        decisions = c["killed:decision"] + c["survived:decision"]
        print(
            f"{module:<24} {sum(v for k, v in c.items() if ':' not in k):>7} {c['not checked']:>9}"
            f" {c['killed']:>7} {c['survived']:>8} {_pct(c['killed'], c['survived']):>7}"
            f" {decisions:>9} {c['survived:decision']:>8} {_pct(c['killed:decision'], c['survived:decision']):>9}"
            f" {_pct(c['killed:message'], c['survived:message']):>9}"
        )
        if args.survivors:
            for name in survivors:
                print(f"    survived: {name}")


if __name__ == "__main__":
    main()
