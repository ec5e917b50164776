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
from benchmarks.harness import RunSettings, run_workload

__all__ = ["RESULT_PREFIX", "main", "parse_result"]

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("name")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--warmup", type=int)
    args = parser.parse_args(argv)
    from benchmarks.workloads import get

    try:
        workload = get(args.name)
    except BenchmarkError as error:
        print(f"benchmarks.worker: error: {error}", file=sys.stderr)
        return 2
    settings = RunSettings(args.threads, args.quick, args.runs, args.warmup)
    record = run_workload(workload, settings)
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(record, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
