"""worldflux performance suite: calibrated, machine-normalised figures for every hot path.

Run ``python -m benchmarks`` (or ``nox -s bench``); ``python -m benchmarks --help`` lists the
options and docs/benchmarks.md explains the method. Each workload runs in its own worker process
(``python -m benchmarks.worker NAME``) with a fixed thread count, a matmul calibration taken next
to it, warm-ups, >= 5 timed runs and its peak RSS; the parent writes one JSON report and can
compare it with the committed baseline (``benchmarks/baseline.json``).

Importing this package (or any harness module) never imports a model family: workloads import
``worldflux`` inside their ``prepare`` functions only.
"""

from __future__ import annotations

__all__ = ["BenchmarkError", "Skipped"]


class BenchmarkError(Exception):
    """A usage or input error of the benchmark harness (bad pattern, unreadable report, ...)."""


class Skipped(Exception):
    """Raised by a workload's ``prepare`` when what it measures is not available yet."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
