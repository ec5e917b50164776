"""The measuring core: workload definitions, timing, calibration, FLOP and memory accounting.

Vocabulary:
- an *op* is one call of a workload's closure (one rollout, one planning step, one update, ...);
- ``work_per_op`` is how many units of the workload's figure one op does (``B*H`` latent steps,
  one action, one update), so the figure is ``work / time`` (rates) or ``time / work`` (times);
- the *calibration* is the fp32 1024^3 matmul speed in GFLOP/s taken in the same process right
  before and after the timed runs; ``efficiency = FLOPs / (time * calibration)`` and the
  *calibrated time* ``time / work * calibration`` (GFLOP-equivalents per unit of work) compare
  across machines and load.

Nothing here imports worldflux; torch is imported lazily.
"""

from __future__ import annotations

import resource
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks import BenchmarkError, Skipped
from benchmarks.stats import Stats

__all__ = [
    "REFERENCE_GFLOPS",
    "UNITS",
    "Calibration",
    "Prepared",
    "RunSettings",
    "Target",
    "Workload",
    "calibrate",
    "count_flops",
    "figure",
    "measure",
    "peak_rss_mib",
    "run_workload",
    "summarize",
]

#: Matmul calibration (GFLOP/s) of the machine on which the issue's reference figures were taken.
REFERENCE_GFLOPS = 206.0

#: unit -> (higher is better, seconds-to-unit factor for time units)
UNITS: dict[str, tuple[bool, float]] = {
    "latent steps/s": (True, 1.0),
    "samples/s": (True, 1.0),
    "ms/action": (False, 1e3),
    "s/update": (False, 1.0),
    "s": (False, 1.0),
}


def _unit(unit: str) -> tuple[bool, float]:
    try:
        return UNITS[unit]
    except KeyError:
        raise BenchmarkError(
            f"unknown unit {unit!r}; expected one of {', '.join(sorted(UNITS))}"
        ) from None


def figure(unit: str, seconds_per_op: float, work_per_op: float) -> float:
    """The workload's figure in ``unit`` for one op of ``seconds_per_op`` doing ``work_per_op``.

    Rates (``.../s``) are ``work / seconds``; times are ``seconds / work`` in the unit's scale.
    """
    if not (seconds_per_op > 0 and work_per_op > 0):
        raise BenchmarkError(
            f"figure: expected positive time and work, found {seconds_per_op!r} s and "
            f"{work_per_op!r} units"
        )
    higher, scale = _unit(unit)
    return work_per_op / seconds_per_op if higher else seconds_per_op / work_per_op * scale


@dataclass(frozen=True)
class Target:
    """The issue's target for a workload, stated at :data:`REFERENCE_GFLOPS`.

    Attributes:
        value: the target figure, in the workload's unit.
        reference: the reference implementation's figure on the same kind of machine, if any.
        scales_with_calibration: compute-bound figures are rescaled by the run's calibration
            (rates by ``cal / 206``, times by ``206 / cal``); wall-clock ones (imports, CLI runs)
            are not.
    """

    value: float
    reference: float | None = None
    scales_with_calibration: bool = True

    def scale(self, unit: str, value: float, calibration_gflops: float) -> float:
        """``value`` (stated at :data:`REFERENCE_GFLOPS`) as expected at this calibration."""
        if not self.scales_with_calibration:
            return value
        higher, _ = _unit(unit)
        ratio = calibration_gflops / REFERENCE_GFLOPS
        return value * ratio if higher else value / ratio


@dataclass(frozen=True)
class RunSettings:
    """How a worker runs a workload."""

    threads: int = 2
    quick: bool = False
    runs: int | None = None
    warmup: int | None = None


@dataclass
class Prepared:
    """A workload ready to time.

    Attributes:
        op: one operation. It may return its own duration in seconds (a float) when the harness
            clock would measure the wrong thing (e.g. interpreter start-up around an import).
        work_per_op: units of the figure one op does (e.g. ``B*H`` latent steps).
        flops_per_op: the analytic FLOPs of one op (the floor's work), or None.
        count_flops: also run one op under ``torch.utils.flop_counter`` (a cross-check).
        details: shapes, settings and anything else worth keeping in the report.
    """

    op: Callable[[], object]
    work_per_op: float = 1.0
    flops_per_op: float | None = None
    count_flops: bool = True
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """One named benchmark: what it measures, in which unit, against which target."""

    name: str
    description: str
    unit: str
    prepare: Callable[[RunSettings], Prepared]
    target: Target | None = None
    runs: int = 5
    warmup: int = 2
    quick_runs: int = 2
    quick_warmup: int = 1
    timeout_s: float = 900.0

    def __post_init__(self) -> None:
        _unit(self.unit)
        if self.runs < 1 or self.warmup < 0:
            raise BenchmarkError(
                f"workload {self.name}: expected runs >= 1 and warmup >= 0, found "
                f"{self.runs} and {self.warmup}"
            )

    def plan(self, settings: RunSettings) -> tuple[int, int]:
        """(warm-up ops, timed ops) for these settings."""
        warmup = self.quick_warmup if settings.quick else self.warmup
        runs = self.quick_runs if settings.quick else self.runs
        if settings.warmup is not None:
            warmup = settings.warmup
        if settings.runs is not None:
            runs = settings.runs
        return warmup, runs


def measure(
    op: Callable[[], object],
    warmup: int,
    runs: int,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Seconds per op of ``runs`` timed calls after ``warmup`` untimed ones.

    An op that returns a float supplies its own duration (see :class:`Prepared`).
    """
    if runs < 1:
        raise BenchmarkError(f"measure: expected runs >= 1, found {runs}")
    for _ in range(warmup):
        op()
    times = []
    for _ in range(runs):
        start = clock()
        returned = op()
        elapsed = clock() - start
        times.append(float(returned) if isinstance(returned, float) else elapsed)
    return times


@dataclass(frozen=True)
class Calibration:
    """fp32 ``size^3`` matmul speed: the median of ``samples`` (GFLOP/s, one per timing block)."""

    gflops: float
    samples: tuple[float, ...]
    size: int = 1024

    @classmethod
    def combine(cls, *parts: Calibration) -> Calibration:
        """One calibration from several (e.g. before and after the timed runs)."""
        samples = tuple(s for part in parts for s in part.samples)
        return cls(gflops=Stats.of(samples).median, samples=samples, size=parts[0].size)


def calibrate(size: int = 1024, blocks: int = 5, reps: int = 4) -> Calibration:
    """Time ``blocks`` blocks of ``reps`` fp32 ``size^3`` matmuls (after warm-up) in GFLOP/s."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    out = torch.empty(size, size)
    for _ in range(3):
        torch.mm(a, b, out=out)
    flops = 2.0 * size**3 * reps
    samples = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        samples.append(flops / (time.perf_counter() - start) / 1e9)
    return Calibration(gflops=Stats.of(samples).median, samples=tuple(samples), size=size)


def count_flops(op: Callable[[], object]) -> float | None:
    """FLOPs torch's flop counter sees in one call of ``op`` (matmuls/convs; None if it fails)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            op()
        return float(counter.get_total_flops())
    except Exception:  # the counter is a cross-check; never let it sink a measurement
        return None


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident set size of this process (or of its reaped children), in MiB."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    per_unit = 1.0 if sys.platform == "darwin" else 1024.0  # macOS reports bytes, Linux KiB
    return usage.ru_maxrss * per_unit / 2**20


def summarize(
    workload: Workload,
    times: Sequence[float],
    calibration: Calibration,
    work_per_op: float,
    flops_per_op: float | None,
) -> dict[str, Any]:
    """The figures of a measured workload (a pure function of its inputs).

    Returns a dict with ``time_s`` (per-op Stats), ``value`` (the figure in the workload's unit:
    median, best, worst), ``calibrated_time`` (median seconds per unit of work x GFLOP/s: the
    GFLOP-equivalents one unit costs on this machine), and, when FLOPs are
    known, ``achieved_gflops``, ``efficiency`` (median) and ``floor`` (the figure at efficiency
    1); with a target, ``target`` holds the raw and calibration-scaled target and reference and
    whether the median meets the scaled target.
    """
    stats = Stats.of(times)
    higher, _ = _unit(workload.unit)
    value = {
        "median": figure(workload.unit, stats.median, work_per_op),
        "best": figure(workload.unit, stats.min, work_per_op),
        "worst": figure(workload.unit, stats.max, work_per_op),
    }
    out: dict[str, Any] = {
        "time_s": stats.as_dict(),
        "value": value,
        "work_per_op": work_per_op,
        "calibration_gflops": calibration.gflops,
        "calibration_samples": list(calibration.samples),
        "calibrated_time": stats.median / work_per_op * calibration.gflops,
        "flops_per_op": flops_per_op,
        "achieved_gflops": None,
        "efficiency": None,
        "floor": None,
        "target": None,
    }
    if flops_per_op is not None and flops_per_op > 0:
        out["achieved_gflops"] = flops_per_op / stats.median / 1e9
        out["efficiency"] = flops_per_op / (stats.median * calibration.gflops * 1e9)
        out["floor"] = figure(workload.unit, flops_per_op / (calibration.gflops * 1e9), work_per_op)
    target = workload.target
    if target is not None:
        scaled = target.scale(workload.unit, target.value, calibration.gflops)
        reference = target.reference
        met = value["median"] >= scaled if higher else value["median"] <= scaled
        out["target"] = {
            "value": target.value,
            "reference": reference,
            "scales_with_calibration": target.scales_with_calibration,
            "scaled_value": scaled,
            "scaled_reference": (
                None
                if reference is None
                else target.scale(workload.unit, reference, calibration.gflops)
            ),
            "met": met,
        }
    return out


def _record(workload: Workload, status: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "name": workload.name,
        "description": workload.description,
        "unit": workload.unit,
        "higher_is_better": _unit(workload.unit)[0],
        "status": status,
        "reason": reason,
    }


def run_workload(workload: Workload, settings: RunSettings) -> dict[str, Any]:
    """Prepare, calibrate, time and summarise one workload in this process.

    A workload whose ``prepare`` raises :class:`Skipped` gives ``status: "skipped"``; any other
    exception gives ``status: "error"`` with the message and traceback tail. Never raises.
    """
    import torch

    torch.set_num_threads(settings.threads)
    warmup, runs = workload.plan(settings)
    record = _record(workload, "ok")
    record.update({"threads": torch.get_num_threads(), "warmup": warmup, "runs": runs})
    try:
        prepared = workload.prepare(settings)
    except Skipped as skip:
        record.update(status="skipped", reason=skip.reason)
        return record
    except Exception as error:  # a broken workload is a result, not a crash of the suite
        record.update(status="error", reason=_describe(error))
        return record
    try:
        before = calibrate()
        times = measure(prepared.op, warmup, runs)
        after = calibrate()
        counted = count_flops(prepared.op) if prepared.count_flops else None
    except Skipped as skip:
        record.update(status="skipped", reason=skip.reason)
        return record
    except Exception as error:
        record.update(status="error", reason=_describe(error))
        return record
    record.update(
        summarize(
            workload,
            times,
            Calibration.combine(before, after),
            prepared.work_per_op,
            prepared.flops_per_op,
        )
    )
    record["flops_counted_per_op"] = counted
    record["peak_rss_mib"] = peak_rss_mib()
    record["peak_rss_children_mib"] = peak_rss_mib(children=True)
    record["details"] = prepared.details
    return record


def _describe(error: BaseException) -> str:
    tail = traceback.format_exception(error)[-6:]
    return f"{type(error).__name__}: {error}\n{''.join(tail)}".strip()
