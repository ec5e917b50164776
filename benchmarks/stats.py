"""Summary statistics of repeated timings."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import BenchmarkError

__all__ = ["Stats"]


@dataclass(frozen=True)
class Stats:
    """Median, extremes, mean and standard deviation of ``n`` samples (same unit as the input)."""

    n: int
    median: float
    min: float
    max: float
    mean: float
    stdev: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarise ``samples``.

        Raises:
            BenchmarkError: no samples, or a sample that is not a finite number.
        """
        values = [float(s) for s in samples]
        if not values:
            raise BenchmarkError("Stats.of: expected at least 1 sample, found 0")
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            raise BenchmarkError(f"Stats.of: expected finite samples, found {bad[0]!r}")
        return cls(
            n=len(values),
            median=statistics.median(values),
            min=min(values),
            max=max(values),
            mean=statistics.fmean(values),
            stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        )

    def scaled(self, factor: float) -> Stats:
        """The same statistics of every sample multiplied by a positive ``factor``."""
        if not factor > 0:
            raise BenchmarkError(f"Stats.scaled: expected a positive factor, found {factor!r}")
        return Stats(
            n=self.n,
            median=self.median * factor,
            min=self.min * factor,
            max=self.max * factor,
            mean=self.mean * factor,
            stdev=self.stdev * factor,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
