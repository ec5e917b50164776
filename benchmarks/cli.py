"""``python -m benchmarks``: run workloads in worker processes, write JSON, compare to a baseline.

Exit status: 0 fine; 1 a workload errored in this tree, ``--baseline REV`` found a workload
``slower`` in every round, or ``--compare`` found a ``possible regression`` (every run slower than
the baseline report by more than ``--tolerance``); 2 a usage error (including a ``--baseline``
worker that imported the wrong tree's code). Speedup targets and memory are reported, never
turned into an exit status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import BenchmarkError
from benchmarks.baseline_verdicts import Ratio, format_ratios
from benchmarks.harness import UNITS, RunSettings, Workload
from benchmarks.report import (
    POSSIBLE_REGRESSION,
    build_report,
    compare,
    format_comparison,
    format_table,
    load_report,
    merge_baseline,
    write_report,
)
from benchmarks.worker import parse_result
from benchmarks.workloads import select
from benchmarks.workloads.commands import child_env

__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_OUTPUT",
    "build_parser",
    "main",
    "median_record",
    "run_in_worker",
]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "reports" / "bench.json"
DEFAULT_BASELINE = ROOT / "benchmarks" / "baseline.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Calibrated worldflux benchmarks (see docs/benchmarks.md).",
    )
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument(
        "--only",
        action="append",
        metavar="GLOB",
        help="run workloads matching a name or shell glob (repeatable, comma-separated)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer runs, same sizes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--runs", type=int, help="timed runs per workload (overrides defaults)")
    parser.add_argument("--warmup", type=int, help="warm-up runs per workload")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="worker processes per workload; the one with the median calibrated time is kept "
        "(small-op workloads vary by up to ~20%% between processes)",
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="report path (reports/bench.json)"
    )
    parser.add_argument(
        "--compare",
        nargs="?",
        type=Path,
        const=DEFAULT_BASELINE,
        metavar="BASELINE",
        help="compare with a baseline report (default benchmarks/baseline.json)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="run this tree's workload definitions on git revision REV's worldflux (a temporary "
        "worktree) interleaved with this tree, --rounds times, and print per-workload ratios, "
        "speedups and speedup targets with their band (exit 1 when a workload is slower in "
        "every round by more than --tolerance); the report holds this tree's median round",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (--baseline)")
    parser.add_argument(
        "--from",
        dest="from_report",
        type=Path,
        metavar="REPORT",
        help="do not run: load REPORT (to compare or print it)",
    )
    parser.add_argument(
        "--write-baseline",
        action="store_true",
        help="also merge this run's workloads into benchmarks/baseline.json",
    )
    parser.add_argument(
        "--tolerance", type=float, default=0.2, help="allowed calibrated slow-down (0.2 = 20%%)"
    )
    parser.add_argument(
        "--no-allocator-tuning",
        action="store_true",
        help="run with glibc's default malloc thresholds (see worldflux.runtime); the default "
        "tunes them in every worker, as the worldflux command line does",
    )
    return parser


def _error_record(workload: Workload, reason: str) -> dict[str, Any]:
    return {
        "name": workload.name,
        "description": workload.description,
        "unit": workload.unit,
        "higher_is_better": UNITS[workload.unit][0],
        "status": "error",
        "reason": reason,
    }


def run_in_worker(workload: Workload, settings: RunSettings) -> dict[str, Any]:
    """Run ``workload`` in ``python -m benchmarks.worker`` and return its record (never raises)."""
    argv = [sys.executable, "-m", "benchmarks.worker", workload.name]
    argv += ["--threads", str(settings.threads)]
    if settings.quick:
        argv.append("--quick")
    if settings.runs is not None:
        argv += ["--runs", str(settings.runs)]
    if settings.warmup is not None:
        argv += ["--warmup", str(settings.warmup)]
    try:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=child_env(settings.threads),
            capture_output=True,
            text=True,
            timeout=workload.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _error_record(workload, f"worker timed out after {workload.timeout_s:.0f} s")
    try:
        return parse_result(done.stdout)
    except BenchmarkError as error:
        tail = (done.stdout + done.stderr)[-1500:]
        return _error_record(workload, f"{error} (exit status {done.returncode})\n{tail}")


def median_record(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``ok`` record with the median calibrated time (the lower middle one of an even
    count), with every process's calibrated time in ``details["process_calibrated_times"]``;
    the first record when none is ``ok``."""
    ok = sorted((r for r in records if r.get("status") == "ok"), key=lambda r: r["calibrated_time"])
    if not ok:
        return records[0]
    chosen = dict(ok[(len(ok) - 1) // 2])
    if len(records) > 1:
        chosen["details"] = {
            **chosen.get("details", {}),
            "process_calibrated_times": [r["calibrated_time"] for r in ok],
            "processes": len(records),
        }
    return chosen


def _list(workloads: Sequence[Workload]) -> None:
    for w in workloads:
        extra = "" if w.target is None else f"  reference target {w.target.value:g} {w.unit}"
        if w.speedup_target is not None:
            extra += f"  speedup target {w.speedup_target:g}x"
        if w.compare_to is not None:
            extra += f"  (vs REV's {w.compare_to})"
        print(f"{w.name:<26} {w.description}{extra}")


def _settings(args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    return {
        "threads": args.threads,
        "quick": bool(args.quick),
        "runs": args.runs,
        "warmup": args.warmup,
        "only": args.only,
        "repeat": repeat,
        "allocator_tuning": not args.no_allocator_tuning,
        "baseline": args.baseline,
        "rounds": args.rounds if args.baseline is not None else None,
    }


def _run(args: argparse.Namespace, workloads: Sequence[Workload]) -> dict[str, Any]:
    settings = RunSettings(args.threads, args.quick, args.runs, args.warmup)
    repeat = max(1, args.repeat)
    records = []
    for workload in workloads:
        print(f"[bench] {workload.name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        record = median_record([run_in_worker(workload, settings) for _ in range(repeat)])
        took = time.perf_counter() - start
        first = (record.get("reason") or "").splitlines()[:1]
        print(
            f"[bench] {workload.name}: {record['status']} ({took:.1f} s)"
            + (f" {first[0]}" if first else ""),
            file=sys.stderr,
            flush=True,
        )
        records.append(record)
    return build_report(records, _settings(args, repeat))


def _run_against(args: argparse.Namespace, workloads: Sequence[Workload]) -> dict[str, Any]:
    """``--baseline REV``: the interleaved rounds; the report holds this tree's median round of
    every workload and the ratio records under ``baseline``."""
    from benchmarks.baseline_rev import ROOT as TREE
    from benchmarks.baseline_rev import Side, interleaved, resolve, snapshot, worktree

    settings = RunSettings(args.threads, args.quick, args.runs, args.warmup)
    with snapshot() as code, worktree(args.baseline) as tree:
        this = Side("this tree", TREE, code, isolated=False)
        sides = (this, Side(f"baseline {args.baseline}", tree, code))
        ratios, mine = interleaved(workloads, sides, settings, args.rounds, args.tolerance)
    report = build_report([median_record(mine[w.name]) for w in workloads], _settings(args, 1))
    report["baseline"] = {
        "rev": args.baseline,
        "commit": resolve(args.baseline),
        "rounds": args.rounds,
        "tolerance": args.tolerance,
        "ratios": [r.as_dict() for r in ratios],
    }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.no_allocator_tuning:
        from worldflux.runtime import OPT_OUT_ENV

        os.environ[OPT_OUT_ENV] = "0"  # inherited by every worker and timed command
    try:
        if args.threads < 1:
            raise BenchmarkError(f"--threads: expected >= 1, found {args.threads}")
        workloads = select(args.only)
        if args.list:
            _list(workloads)
            return 0
        if args.from_report is not None and args.baseline is not None:
            raise BenchmarkError("--baseline runs both trees; it cannot read --from a report")
        if args.from_report is not None:
            report = load_report(args.from_report)
        else:
            report = _run_against(args, workloads) if args.baseline else _run(args, workloads)
            write_report(report, args.output)
            print(f"[bench] wrote {args.output}", file=sys.stderr)
            if args.write_baseline:
                base = (
                    merge_baseline(load_report(DEFAULT_BASELINE), report)
                    if DEFAULT_BASELINE.exists()
                    else report
                )
                write_report(base, DEFAULT_BASELINE)
                print(f"[bench] updated {DEFAULT_BASELINE}", file=sys.stderr)
        print(format_table(report))
        failed = report["summary"]["error"] > 0
        if "baseline" in report:
            section = report["baseline"]
            ratios = [Ratio.from_dict(r) for r in section["ratios"]]
            print(format_ratios(ratios, section["rev"], section["tolerance"]))
            failed = failed or any(r.verdict == "slower" for r in ratios)
        if args.compare is not None:
            comparisons = compare(report, load_report(args.compare), args.tolerance)
            print(format_comparison(comparisons, args.tolerance))
            failed = failed or any(c.verdict == POSSIBLE_REGRESSION for c in comparisons)
        return 1 if failed else 0
    except BenchmarkError as error:
        print(f"python -m benchmarks: error: {error}", file=sys.stderr)
        return 2
