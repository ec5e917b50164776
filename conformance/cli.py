"""``worldflux conformance``: run, list-checks, explain, replay.

Exit codes: 0 every target conformant at its declared (or ``--level``) maturity; 1 a conformance
failure (a MUST failed, declared > achieved, a SHOULD under ``--strict``, a replayed failure);
2 a usage, spec or import error. ``configure`` is cheap: the engine is imported inside ``run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from worldflux.core.exceptions import ConfigurationError

LEVEL_CHOICES = ("skeleton", "experimental", "reference")
PROFILE_CHOICES = ("dev", "ci", "thorough")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _size(text: str) -> int:
    """``8G`` / ``512M`` / ``1000000`` -> bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.strip().upper().removesuffix("B")
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        return int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8G, 512M)") from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``run`` / ``list-checks`` / ``explain`` / ``replay`` subcommands."""
    sub = parser.add_subparsers(dest="conformance_command", required=True, metavar="ACTION")
    run_p = sub.add_parser(
        "run",
        help="check targets against their contract and maturity",
        description="Check registered models (id or alias), or external ones "
        "(package.module:attr naming a WorldModel class, a factory or an instance).",
    )
    run_p.add_argument("targets", nargs="*", metavar="TARGET", help="id, alias or module:attr")
    run_p.add_argument("--all", action="store_true", help="every registered model type")
    run_p.add_argument("--spec", metavar="FILE", help="contract and maturity of an external target")
    run_p.add_argument("--level", choices=LEVEL_CHOICES, help="check against this level")
    run_p.add_argument("--checks", type=_csv, metavar="IDS", help="only these ids/prefixes")
    run_p.add_argument("--exclude-checks", type=_csv, metavar="IDS", help="skip these ids/prefixes")
    run_p.add_argument("--profile", choices=PROFILE_CHOICES, default="dev")
    run_p.add_argument("--seed", type=int, help="run seed (random for dev/thorough; reported)")
    run_p.add_argument("--max-examples", type=int, metavar="N", help="examples of a cheap check")
    run_p.add_argument("--time-budget", type=float, metavar="S", help="seconds per cheap check")
    run_p.add_argument("--report", type=_csv, default=[], metavar="FMTS", help="json,junit,md")
    run_p.add_argument("--report-dir", metavar="DIR", help="where reports and crash files go")
    run_p.add_argument("--strict", action="store_true", help="SHOULD failures are errors")
    run_p.add_argument(
        "--isolate",
        action="store_true",
        help="one subprocess per check (untrusted targets); default: one per target",
    )
    run_p.add_argument(
        "--in-process", action="store_true", help="no subprocesses (debuggers, profilers)"
    )
    run_p.add_argument(
        "--memory-limit",
        type=_size,
        metavar="SIZE",
        help="address-space limit of each subprocess, e.g. 8G (exceeding it fails the check)",
    )
    run_p.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="intra-op torch threads during the run (default 1; 0 keeps torch's default)",
    )
    listing = sub.add_parser("list-checks", help="print the check x maturity obligation matrix")
    listing.add_argument("--level", choices=LEVEL_CHOICES, help="only checks that apply here")
    listing.add_argument(
        "--target", help="the effective matrix of one target (its level, capability gates)"
    )
    listing.add_argument("--spec", metavar="FILE", help="spec of an external --target")
    explain = sub.add_parser("explain", help="the clause, obligations and a passing example")
    explain.add_argument("check_id", metavar="ID")
    replay = sub.add_parser("replay", help="re-run a saved falsifying input")
    replay.add_argument("file", metavar="FILE", help="a crash file printed by a failed run")
    replay.add_argument("--target", help="re-resolve the target by this id / import path")


def run(args: argparse.Namespace) -> int:
    command = args.conformance_command
    if command == "list-checks":
        return _list_checks(args.level, args.target, args.spec)
    if command == "explain":
        return _explain(args.check_id)
    if command == "replay":
        # deferred: keeps "worldflux conformance --help" cheap (torch, hypothesis load on use)
        from worldflux.conformance.replay import replay

        return replay(args.file, target=args.target)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    # deferred: keeps "worldflux conformance --help" cheap (torch, hypothesis load on use)
    from worldflux.conformance.cache import cache_dir
    from worldflux.conformance.crashes import DEFAULT_CRASH_DIR
    from worldflux.conformance.engine import make_options, run_targets
    from worldflux.conformance.registry import select_checks
    from worldflux.conformance.report import render_scoreboard, write_reports
    from worldflux.conformance.target import resolve_all, resolve_target

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
    # deferred: keeps "worldflux conformance --help" cheap (torch, hypothesis load on use)
    from worldflux.conformance.registry import LEVELS, Obligation, all_checks

    from worldflux.core.spec import Capability, ModelMaturity

    declared: set[Capability] | None = None
    if target is not None:
        # deferred: keeps "worldflux conformance --help" cheap (torch loads on use)
        from worldflux.conformance.target import resolve_target

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
    # deferred: keeps "worldflux conformance --help" cheap (torch, hypothesis load on use)
    from worldflux.conformance.registry import LEVELS, get_check

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
