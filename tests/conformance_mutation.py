"""Mutation testing of the conformance checks (``nox -s mutate``): how much of the check code
the suite's own tests would notice breaking.

Each mutant changes one spot of one module under ``conformance/checks/`` (a comparison
flipped, ``and``/``or`` swapped, a ``not`` dropped, a boolean or small integer constant
changed, a ``raise`` or a call statement such as ``_same(...)`` / ``validated(...)`` removed).
The mutated module is executed in place of the real one (its checks re-registered, dependants
re-bound) and the kill suite runs: the good toys and the good external adapter must pass the
mutated module's checks, and every broken toy, per-branch breaker and seeded defect of those
checks must fail them. A mutant is killed when any of these expectations breaks.

A site whose mutant is provably equivalent (no program can tell it from the original, e.g. a
message list truncated at 8 instead of 9 items) carries a pragma, on its line or on comment lines
directly above it: ``# mutation: equivalent: <reason>`` (every mutant of that line) or
``# mutation: equivalent[<what>]: <reason>`` (only the mutant described as ``<what>``, e.g.
``4 -> 5``). Such sites are not run; they are listed apart, with their reasons, and left out of
the kill rate.

Usage: ``python tests/conformance_mutation.py [--modules io,negative] [--limit N] [--json F]``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import re
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "conformance" / "checks"
PACKAGE = "worldflux.conformance.checks"
#: the modules mutated by default (spec.py holds spec/registry/parity checks, tested elsewhere)
DEFAULT_MODULES = ("common", "io", "negative", "behaviour", "clauses", "slots", "training")
SWAPS: dict[type, type] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


PRAGMA = re.compile(r"#\s*mutation:\s*equivalent(?:\[(?P<what>[^\]]+)\])?:\s*(?P<why>.+)$")


@dataclass
class Site:
    """One mutation: where (line) and what (a description), the check it sits in, and the
    reason it is equivalent (from a pragma; None for an ordinary site)."""

    index: int
    line: int
    what: str
    check_id: str | None
    equivalent: str | None = None


def _pragmas(lines: list[str]) -> dict[int, list[tuple[str | None, str]]]:
    """line number -> [(what or None for every mutant of the line, reason)] of the pragmas that
    apply to it: on the line itself or on the comment-only lines directly above it (a reason
    may go on over the comment lines that follow its pragma)."""
    out: dict[int, list[tuple[str | None, str]]] = {}
    pending: list[tuple[str | None, str]] = []
    for number, text in enumerate(lines, start=1):
        found = PRAGMA.search(text)
        comment = text.lstrip().startswith("#")
        if comment and not found and pending:  # the reason goes on
            what, why = pending[-1]
            pending[-1] = (what, f"{why} {text.lstrip().lstrip('#').strip()}")
            continue
        entry = [(found["what"], found["why"].strip())] if found else []
        if comment:
            pending += entry
            continue
        if pending or entry:
            out[number] = pending + entry
        pending = []
    return out


def _check_id(node: ast.FunctionDef) -> str | None:
    for deco in node.decorator_list:
        if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "check":
            first = deco.args[0] if deco.args else None
            if isinstance(first, ast.Constant):
                return str(first.value)
    return None


class _Mutator(ast.NodeTransformer):
    """Walks the tree; with ``target`` None it only lists sites, else it mutates that one."""

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.sites: list[Site] = []
        self.check: str | None = None

    def _site(self, node: ast.AST, what: str) -> bool:
        index = len(self.sites)
        self.sites.append(Site(index, getattr(node, "lineno", 0), what, self.check))
        return index == self.target

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        outer = self.check
        found = _check_id(node)
        if found is not None:
            self.check = found
        node.body = [self.visit(n) for n in node.body]  # decorators are never mutated
        self.check = outer
        return node

    def visit_Expr(self, node: ast.Expr) -> Any:
        if isinstance(node.value, ast.Constant):  # docstrings
            return node
        self.generic_visit(node)
        call = node.value
        name = getattr(getattr(call, "func", None), "id", None)
        # seeded(...) only makes runs reproducible: removing it is an equivalent mutant
        if isinstance(call, ast.Call) and name != "seeded" and self._site(node, "call removed"):
            return ast.Pass()
        return node

    def visit_Raise(self, node: ast.Raise) -> Any:
        self.generic_visit(node)
        if self._site(node, "raise removed"):
            return ast.Pass()
        return node

    def visit_Compare(self, node: ast.Compare) -> Any:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            swap = SWAPS.get(type(op))
            if swap and self._site(node, f"{type(op).__name__} -> {swap.__name__}"):
                node.ops[i] = swap()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        self.generic_visit(node)
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        if self._site(node, f"{type(node.op).__name__} -> {type(other).__name__}"):
            node.op = other
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._site(node, "not dropped"):
            return node.operand
        return node

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, bool):
            if self._site(node, f"{node.value} -> {not node.value}"):
                return ast.copy_location(ast.Constant(not node.value), node)
        elif isinstance(node.value, int) and 0 <= node.value <= 8:
            if self._site(node, f"{node.value} -> {node.value + 1}"):
                return ast.copy_location(ast.Constant(node.value + 1), node)
        return node


def sites(module: str) -> list[Site]:
    source = (CHECKS / f"{module}.py").read_text()
    finder = _Mutator()
    finder.visit(ast.parse(source))
    pragmas = _pragmas(source.splitlines())
    for site in finder.sites:
        for what, why in pragmas.get(site.line, []):
            if what is None or what == site.what:
                site.equivalent = why
    return finder.sites


def mutant_code(module: str, index: int) -> types.CodeType:
    path = CHECKS / f"{module}.py"
    tree = _Mutator(index).visit(ast.parse(path.read_text()))
    ast.fix_missing_locations(tree)
    return compile(tree, str(path), "exec")


@contextlib.contextmanager
def installed(module: str, code: types.CodeType, modules: tuple[str, ...]) -> Iterator[None]:
    """Run with ``module`` replaced by ``code`` (checks re-registered, dependants re-bound)."""
    from worldflux.conformance import registry

    registry._load()
    saved_checks = dict(registry._CHECKS)
    saved_modules = {m: sys.modules[f"{PACKAGE}.{m}"] for m in modules}
    try:
        order = [module] + [m for m in modules if m != module]
        for name in order:
            full = f"{PACKAGE}.{name}"
            for cid in [c for c, chk in registry._CHECKS.items() if chk.run.__module__ == full]:
                del registry._CHECKS[cid]
            fresh = types.ModuleType(full)
            fresh.__file__ = str(CHECKS / f"{name}.py")
            sys.modules[full] = fresh
            source = (
                code
                if name == module
                else compile((CHECKS / f"{name}.py").read_text(), fresh.__file__, "exec")
            )
            exec(source, fresh.__dict__)
        yield
    finally:
        registry._CHECKS.clear()
        registry._CHECKS.update(saved_checks)
        for name, mod in saved_modules.items():
            sys.modules[f"{PACKAGE}.{name}"] = mod


# -- the kill suite ------------------------------------------------------------------------------
Case = tuple[str, str, Callable[[], str]]  # (check id, description, run -> status expected)


def kill_suite(tmp: Path) -> list[tuple[str, str, Callable[[], bool]]]:
    """(check id, name, run) where ``run()`` is True when the expectation holds."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_conformance_branches as br
    import test_conformance_cases as tc
    import test_conformance_defects as de
    import test_conformance_meta as me
    from worldflux.conformance.engine import check_model
    from worldflux.conformance.toys import registered

    def toy(
        base: Any,
        check_id: str,
        expect: str,
        spec: Any = None,
        kw: Any = None,
        words: str = "",
        discrete: bool = False,
    ) -> Callable[[], bool]:
        def run() -> bool:
            cls = me._toy("wfc_mut", base, spec or me.good_spec(discrete=discrete), **(kw or {}))
            with registered(cls):
                result = me.run_one("wfc_mut", check_id, tmp, time_budget=10.0)
            return result.status == expect and words in (result.message or "")

        return run

    def external(cls: Any, check_id: str, expect: str, words: str = "") -> Callable[[], bool]:
        def run() -> bool:
            report = check_model(
                cls,
                profile="ci",
                seed=0,
                checks=[check_id],
                crash_dir=None,
                strict=True,
                time_budget=10.0,
            )
            checks = report.results[0].checks
            if expect == "fail":
                return any(c.status == "fail" and words in (c.message or "") for c in checks)
            return all(c.status in ("pass", "skip") for c in checks)

        return run

    cases: list[tuple[str, str, Callable[[], bool]]] = []
    skip = ("spec.", "registry.", "parity.")
    for cid, (base, changes, kw) in me.BROKEN.items():
        if cid.startswith(skip):
            continue
        cases.append((cid, f"good toy passes {cid}", toy(me.Planner, cid, "pass")))
        cases.append(
            (
                cid,
                f"{base.__name__} fails {cid}",
                toy(base, cid, "fail", me.spec_with(**changes), kw),
            )
        )
    for cid, base in br.NEW_BROKEN.items():
        cases.append((cid, f"good toy passes {cid}", toy(me.Planner, cid, "pass")))
        cases.append((cid, f"{base.__name__} fails {cid}", toy(base, cid, "fail")))
    for branch, words in br.ROLLOUT_BRANCHES.items():
        cases.append(
            (
                "rollout.consistency",
                f"branch {branch}",
                toy(br._rollout_breaker(branch), "rollout.consistency", "fail", words=words),
            )
        )
    for variant, (accept, repair) in br.CONTINUOUS_VARIANTS.items():
        cases.append(
            (
                "negative.action",
                f"continuous {variant}",
                toy(
                    br._lenient_transition(accept, repair), "negative.action", "fail", words=variant
                ),
            )
        )
    for variant, (accept, repair) in br.DISCRETE_VARIANTS.items():
        cases.append(
            (
                "negative.action",
                f"discrete {variant}",
                toy(
                    br._lenient_transition(accept, repair),
                    "negative.action",
                    "fail",
                    words=variant,
                    discrete=True,
                ),
            )
        )
    cases.append(
        (
            "negative.action",
            "good discrete toy",
            toy(me.Planner, "negative.action", "pass", discrete=True),
        )
    )
    for branch, words in br.OUTPUT_BRANCHES.items():
        check_id = "io.loss" if branch.startswith("loss") else "io.rollout.shapes"
        cases.append(
            (
                check_id,
                f"output branch {branch}",
                toy(br._output_breaker(branch), check_id, "fail", words=words),
            )
        )
    for what in ("grad mode", "default dtype", "thread", "reseeded"):
        cases.append(
            (
                "io.decode",
                f"guard {what}",
                toy(br._state_breaker(what), "io.decode", "fail", words=what),
            )
        )
    cases.append(
        (
            "serde.roundtrip",
            "buffer perturbation",
            toy(br.BufferNotLoaded, "serde.roundtrip", "fail"),
        )
    )
    for case in tc.CASES:

        def run_case(case: Any = case) -> bool:
            return tc.run_case(case, tmp, time_budget=10.0)

        cases.append((case[0], f"case {case[1].__name__} {case[2]} {case[3][:40]}", run_case))
    import test_conformance_protocol as pr

    protocol = [
        (pr.WithPolicy, "numeric.grad_flow", "pass"),
        (pr.WithPolicy, "numeric.learnability", "pass"),
        (pr.PolicyWithoutObjective, "numeric.grad_flow", "fail"),
        (pr.NoContinues, "io.rollout.shapes", "pass"),
        (pr.NoContinues, "rollout.consistency", "pass"),
        (pr.ActionReward, "io.decode", "pass"),
        (pr.ActionReward, "io.capability_outputs", "pass"),
        (pr.ActionReward, "rollout.consistency", "pass"),
        (pr.ActionReward, "batch.polymorphism", "pass"),
        (pr.ActionRewardFromNextState, "rollout.consistency", "fail"),
        (pr.ComposableWithoutSwap, "slots.swap", "fail", "has no swap_component"),
    ]
    for cls, cid, expect, *words in protocol:
        run = external(cls, cid, expect, *words)
        cases.append((cid, f"protocol {cls.__name__} {expect}", run))
    for cls, cid, expect, words in de.EXPECTATIONS:
        cases.append((cid, f"adapter {cls.__name__} {expect}", external(cls, cid, expect, words)))
    for cid, base in tc.REPLAYED.items():

        def replays(cid: str = cid, base: Any = base) -> bool:
            return tc.replays_its_inputs(cid, base, tmp)

        cases.append((cid, f"replay {base.__name__}", replays))
    for defect, cid in de.DEFECTS.items():
        cases.append((cid, f"defect {defect.__name__}", external(defect, cid, "fail")))
    for cid in sorted(set(de.DEFECTS.values())):
        cases.append((cid, f"good adapter passes {cid}", external(de.Good, cid, "pass")))
    return cases


def _module_checks(module: str) -> set[str]:
    from worldflux.conformance import registry

    registry._load()
    full = f"{PACKAGE}.{module}"
    return {c for c, chk in registry._CHECKS.items() if chk.run.__module__ == full}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default=",".join(DEFAULT_MODULES))
    parser.add_argument("--limit", type=int, default=0, help="at most N mutants per module")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--min-rate", type=float, default=0.0, help="fail below this kill rate")
    args = parser.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(1)
    modules = tuple(m for m in args.modules.split(",") if m)
    every = tuple(DEFAULT_MODULES)
    tmp = Path(tempfile.mkdtemp(prefix="wf-mutate-"))
    suite = kill_suite(tmp)
    all_ids = set().union(*(_module_checks(m) for m in every))
    totals: dict[str, list[int]] = {}
    survivors: list[str] = []
    equivalents: list[dict[str, str]] = []
    killers: dict[str, str] = {}  # killed mutant -> the first expectation it broke
    start = time.perf_counter()
    for module in modules:
        found = sites(module)
        if args.limit:
            found = found[:: max(1, len(found) // args.limit)][: args.limit]
        own = _module_checks(module)
        killed = run_sites = 0
        for site in found:
            where = f"{module}.py:{site.line} {site.what} [{site.check_id}]"
            if site.equivalent is not None:
                equivalents.append({"site": where, "reason": site.equivalent})
                continue
            run_sites += 1
            wanted = {site.check_id} if site.check_id else (own if module != "common" else all_ids)
            relevant = [c for c in suite if c[0] in wanted]
            code = mutant_code(module, site.index)
            dead = False
            with installed(module, code, every):
                for _, name, run in relevant:
                    try:
                        ok = run()
                    except Exception:
                        ok = False
                    if not ok:
                        dead = True
                        killers[where] = name
                        break
            killed += dead
            if not dead:
                survivors.append(where)
        totals[module] = [killed, run_sites]
        print(f"{module}: {killed}/{run_sites} mutants killed", flush=True)
    done = sum(k for k, _ in totals.values())
    total = sum(n for _, n in totals.values())
    rate = done / total if total else 1.0
    elapsed = time.perf_counter() - start
    print(f"kill rate: {rate:.1%} ({done}/{total}) in {elapsed:.0f} s")
    print(f"equivalent (pragma, not counted): {len(equivalents)}")
    for item in equivalents:
        print(f"  equivalent: {item['site']}: {item['reason']}")
    for line in survivors:
        print("  survived:", line)
    if args.json:
        report = {
            "modules": totals,
            "rate": rate,
            "seconds": round(elapsed),
            "survivors": survivors,
            "equivalent": {"count": len(equivalents), "sites": equivalents},
            "killed_by": killers,
        }
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if rate >= args.min_rate else 1


if __name__ == "__main__":
    sys.exit(main())
