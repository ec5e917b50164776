"""``python -m benchmarks.worker NAME``: run one workload in this process, print its record.

The record is one JSON line prefixed with :data:`RESULT_PREFIX` on stdout (the workload may print
other lines). Running each workload in its own process makes peak RSS (``getrusage``) per
workload and keeps one workload's allocator and thread-pool state out of the next.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import BenchmarkError
from benchmarks.harness import RunSettings, Workload, run_workload

__all__ = [
    "ISOLATE_ENV",
    "RESULT_PREFIX",
    "code_paths",
    "isolate_from_editable_install",
    "main",
    "parse_result",
    "profile_workload",
]

RESULT_PREFIX = "BENCH_RESULT "
#: set to "1" by ``--baseline`` for its workers (see :func:`isolate_from_editable_install`)
ISOLATE_ENV = "WORLDFLUX_BENCH_ISOLATED"


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


def code_paths() -> dict[str, object]:
    """Where this worker's ``benchmarks`` and ``worldflux`` packages were imported from (their
    directories), and the ``worldflux.*`` modules loaded from outside the tree that holds
    ``worldflux`` (first 10): ``--baseline REV`` checks them, so a baseline round that imported
    this tree's code (or REV's benchmarks) fails instead of comparing a tree with itself."""
    import benchmarks
    import worldflux  # lazy: no torch, no model code

    package = Path(worldflux.__file__).resolve().parent
    foreign = []
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if name.split(".")[0] == "worldflux" and where is not None:
            if not Path(where).resolve().is_relative_to(package.parent):
                foreign.append(f"{name} ({where})")
    return {
        "benchmarks_path": str(Path(benchmarks.__file__).resolve().parent),
        "worldflux_path": str(package),
        "worldflux_foreign_modules": sorted(foreign)[:10],
    }


def isolate_from_editable_install() -> None:
    """Drop editable-install finders (setuptools' ``__editable__`` hooks) from ``sys.meta_path``
    when :data:`ISOLATE_ENV` is set: ``--baseline`` workers import ``worldflux`` from
    ``PYTHONPATH`` only, and such a finder would otherwise serve a module the revision lacks
    from this tree."""
    if os.environ.get(ISOLATE_ENV) == "1":
        sys.meta_path[:] = [
            f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable")
        ]


def _tune_allocator() -> dict[str, object] | None:
    """Tune glibc malloc as the worldflux CLI does (``WORLDFLUX_ALLOCATOR_TUNING=0`` opts out);
    None for a worldflux without ``runtime.tune_cpu_allocator`` (an older ``--baseline``)."""
    try:
        from worldflux.runtime import tune_cpu_allocator
    except ImportError:
        return None
    return dict(tune_cpu_allocator().as_dict())


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
    isolate_from_editable_install()
    from benchmarks.workloads import get

    try:
        workload = get(args.name)
    except BenchmarkError as error:
        print(f"benchmarks.worker: error: {error}", file=sys.stderr)
        return 2
    settings = RunSettings(args.threads, args.quick, args.runs, args.warmup)
    allocator = _tune_allocator()
    if args.profile is not None:
        print(profile_workload(workload, settings, args.profile))
        return 0
    record = run_workload(workload, settings)
    record["details"] = {
        **(record.get("details") or {}),
        "allocator": allocator,
        **code_paths(),
    }
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(record, allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
