"""``worldflux conformance`` run / list-checks / explain / replay (the parser is in
worldflux.conformance.cli; this module is imported only when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from worldflux.conformance.cache import cache_dir
from worldflux.conformance.crashes import DEFAULT_CRASH_DIR
from worldflux.conformance.engine import make_options, run_targets
from worldflux.conformance.registry import (
    LEVELS,
    Obligation,
    all_checks,
    get_check,
    select_checks,
)
from worldflux.conformance.replay import replay
from worldflux.conformance.report import render_scoreboard, write_reports
from worldflux.conformance.target import resolve_all, resolve_target

from worldflux.core.exceptions import ConfigurationError
from worldflux.core.spec import Capability, ModelMaturity

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    command = args.conformance_command
    if command == "list-checks":
        return _list_checks(args.level, args.target, args.spec)
    if command == "explain":
        return _explain(args.check_id)
    if command == "replay":
        return replay(args.file, target=args.target)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    if not args.targets and not args.all:
        raise ConfigurationError("conformance run: name at least one TARGET, or pass --all")
    if args.spec and (args.all or len(args.targets) != 1):
        raise ConfigurationError("--spec describes exactly one TARGET (not --all)")
    select_checks(args.checks, args.exclude_checks)  # usage errors before any work
    if args.isolate and args.in_process:
        raise ConfigurationError("--isolate and --in-process exclude each other")
    isolate = None if args.in_process else ("check" if args.isolate else "target")
    options = make_options(
        args.profile,
        args.seed,
        args.max_examples,
        args.time_budget,
        threads=args.threads or None,
        isolate=isolate,
        memory_limit=args.memory_limit,
    )
    targets = resolve_all() if args.all else []
    targets += [resolve_target(t, args.spec) for t in args.targets]
    report_dir = Path(args.report_dir) if args.report_dir else None
    crash_dir = report_dir / "crashes" if report_dir else DEFAULT_CRASH_DIR
    report = run_targets(
        targets,
        level=args.level,
        checks=args.checks,
        exclude_checks=args.exclude_checks,
        options=options,
        strict=args.strict,
        crash_dir=crash_dir,
    )
    print(render_scoreboard(report))
    if args.report:
        for path in write_reports(report, report_dir or cache_dir(), args.report):
            print(f"wrote {path}")
    return 0 if report.passed else 1


def _list_checks(level: str | None, target: str | None = None, spec: str | None = None) -> int:
    declared: set[Capability] | None = None
    if target is not None:
        resolved = resolve_target(target, spec)
        level = level or resolved.declared.value
        caps = (resolved.spec or {}).get("capabilities")
        if caps is None:
            caps = getattr(resolved.factory(), "capabilities", ())
        declared = {Capability(c) for c in caps or ()}
        print(f"{resolved.name}: declared {resolved.declared.value}, checked at {level}")
    rows: list[list[Any]] = []
    for c in all_checks():
        info = c.info
        if level is not None and info.obligation(ModelMaturity(level)) is Obligation.NA:
            continue
        if declared is not None and info.capability is not None:
            if info.capability not in declared:
                continue
        gate = info.capability.value if info.capability else "-"
        rows.append(
            [
                info.id,
                info.family,
                *(info.obligation(lv).value for lv in LEVELS),
                info.cost.value,
                gate,
                info.code,
            ]
        )
    header = ["id", "family", "skeleton", "experimental", "reference", "cost", "capability", "code"]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    print(f"\n{len(rows)} checks" + (f" apply at {level}" if level else ""))
    return 0


def _explain(check_id: str) -> int:
    info = get_check(check_id).info
    print(f"{info.id}  (family {info.family}, cost {info.cost.value}, code {info.code})")
    print(f"\nclause: {info.clause}")
    print("\nobligations: " + ", ".join(f"{lv.value}={info.obligation(lv).value}" for lv in LEVELS))
    if info.capability is not None:
        print(f"capability gate: {info.capability.value} (n/a when not declared)")
    print(f"since suite version {info.since}")
    if info.example:
        print("\npassing example:")
        print("\n".join("    " + line for line in info.example.splitlines()))
    return 0
