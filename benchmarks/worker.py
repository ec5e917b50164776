"""``python -m benchmarks.worker NAME``: run one workload in this process, print its record.

The record is one JSON line prefixed with :data:`RESULT_PREFIX` on stdout (the workload may print
other lines). Running each workload in its own process makes peak RSS (``getrusage``) per
workload and keeps one workload's allocator and thread-pool state out of the next.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from benchmarks import BenchmarkError
from benchmarks.harness import RunSettings, Workload, run_workload

__all__ = ["RESULT_PREFIX", "main", "parse_result", "profile_workload"]

RESULT_PREFIX = "BENCH_RESULT "


def parse_result(stdout: str) -> dict[str, object]:
    """The record a worker printed.

    Raises:
        BenchmarkError: no (or an unparsable) result line.
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                record = json.loads(line[len(RESULT_PREFIX) :])
            except json.JSONDecodeError as error:
                raise BenchmarkError(f"worker result line is not JSON ({error})") from None
            if not isinstance(record, dict):
                raise BenchmarkError(
                    f"worker result: expected a JSON object, found {type(record).__name__}"
                )
            return record
    raise BenchmarkError("worker printed no result line")


def profile_workload(workload: Workload, settings: RunSettings, rows: int = 25) -> str:
    """Warm ``workload`` up, then profile one op: the top ``rows`` ops by self CPU time, and how
    much of the op's wall time the operators account for (the rest is Python and dispatch)."""
    import time

    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(settings.threads)
    prepared = workload.prepare(settings)
    warmup, _ = workload.plan(settings)
    for _ in range(max(warmup, 1)):
        prepared.op()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        prepared.op()
        wall = time.perf_counter() - start
    averages = prof.key_averages()
    ops_s = sum(e.self_cpu_time_total for e in averages) / 1e6
    table = averages.table(sort_by="self_cpu_time_total", row_limit=rows)
    return (
        f"{workload.name}: one op {wall * 1e3:.1f} ms under the profiler; operators' self time "
        f"{ops_s * 1e3:.1f} ms ({ops_s / wall:.0%} of wall, all threads' CPU time)\n{table}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("name")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument(
        "--profile",
        type=int,
        metavar="ROWS",
        help="instead of timing: profile one op (torch.profiler) and print the top ROWS ops",
    )
    args = parser.parse_args(argv)
    from benchmarks.workloads import get

    try:
        workload = get(args.name)
    except BenchmarkError as error:
        print(f"benchmarks.worker: error: {error}", file=sys.stderr)
        return 2
    settings = RunSettings(args.threads, args.quick, args.runs, args.warmup)
    from worldflux.runtime import tune_cpu_allocator

    allocator = tune_cpu_allocator()  # as the worldflux CLI does; WORLDFLUX_ALLOCATOR_TUNING=0
    if args.profile is not None:
        print(profile_workload(workload, settings, args.profile))
        return 0
    record = run_workload(workload, settings)
    record["details"] = {**record.get("details", {}), "allocator": allocator.as_dict()}
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(record, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
