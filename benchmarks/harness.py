"""The measuring core: workload definitions, timing, calibration, FLOP and memory accounting.

Vocabulary:
- an *op* is one call of a workload's closure (one rollout, one planning step, one update, ...);
- ``work_per_op`` is how many units of the workload's figure one op does (``B*H`` latent steps,
  one action, one update), so the figure is ``work / time`` (rates) or ``time / work`` (times);
- the *calibration* is the fp32 1024^3 matmul speed in GFLOP/s, taken in the same process
  around every timed run and paired with it; ``efficiency = FLOPs / (time * calibration)`` and
  the *calibrated time* ``time / work * calibration`` (GFLOP-equivalents per unit of work)
  compare across machines and load.

Nothing here imports worldflux; torch is imported lazily.
"""

from __future__ import annotations

import itertools
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
    "Calibrator",
    "Prepared",
    "RunSettings",
    "Target",
    "Workload",
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
    """One named benchmark: what it measures, in which unit, against which target.

    ``target`` is the issue's absolute figure (informational: kept in the JSON). Under
    ``--baseline REV``, ``compare_to`` names the workload run on REV (e.g. a compiled path against
    REV's eager one; None: the same) and ``speedup_target`` the speedup (REV's calibrated time /
    this tree's) that every round must reach.
    """

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
    compare_to: str | None = None
    speedup_target: float | None = None

    def __post_init__(self) -> None:
        _unit(self.unit)
        if self.runs < 1 or self.warmup < 0:
            raise BenchmarkError(
                f"workload {self.name}: expected runs >= 1 and warmup >= 0, found "
                f"{self.runs} and {self.warmup}"
            )
        wanted = self.speedup_target
        if wanted is not None and not wanted > 0:
            raise BenchmarkError(f"workload {self.name}: expected speedup_target > 0, not {wanted}")

    @property
    def baseline_name(self) -> str:
        """The workload run on the baseline revision for ``--baseline REV``."""
        return self.compare_to or self.name

    def plan(self, settings: RunSettings) -> tuple[int, int]:
        """(warm-up ops, timed ops) for these settings."""
        warmup = self.quick_warmup if settings.quick else self.warmup
        runs = self.quick_runs if settings.quick else self.runs
        if settings.warmup is not None:
            warmup = settings.warmup
        if settings.runs is not None:
            runs = settings.runs
        return warmup, runs


class Calibrator:
    """The fp32 ``size^3`` matmul speed, in GFLOP/s, measured on demand.

    Operands stay allocated between calls so each call is only ``reps`` timed matmuls (about
    40 ms at 200 GFLOP/s for the defaults) after one untimed one.
    """

    def __init__(self, size: int = 1024, reps: int = 4) -> None:
        import torch

        gen = torch.Generator().manual_seed(0)
        self.size, self.reps = size, reps
        self._a = torch.randn(size, size, generator=gen)
        self._b = torch.randn(size, size, generator=gen)
        self._out = torch.empty(size, size)
        self._mm = torch.mm

    def __call__(self) -> float:
        self._mm(self._a, self._b, out=self._out)
        start = time.perf_counter()
        for _ in range(self.reps):
            self._mm(self._a, self._b, out=self._out)
        return 2.0 * self.size**3 * self.reps / (time.perf_counter() - start) / 1e9


def measure(
    op: Callable[[], object],
    warmup: int,
    runs: int,
    calibrate: Callable[[], float] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], list[float]]:
    """Time ``runs`` calls of ``op`` after ``warmup`` untimed ones, calibrating around each.

    A calibration is taken before the first timed run and after every run; run ``i`` is paired
    with the mean of the calibrations on either side of it, so a load change during the suite
    moves the run and its calibration together.

    Returns:
        (seconds per timed op, GFLOP/s paired with each op). An op that returns a float
        supplies its own duration (see :class:`Prepared`). Without ``calibrate`` the paired
        values are all 1.0.
    """
    if runs < 1:
        raise BenchmarkError(f"measure: expected runs >= 1, found {runs}")
    cal = calibrate if calibrate is not None else (lambda: 1.0)
    for _ in range(warmup):
        op()
    edges = [cal()]
    times = []
    for _ in range(runs):
        start = clock()
        returned = op()
        elapsed = clock() - start
        times.append(float(returned) if isinstance(returned, float) else elapsed)
        edges.append(cal())
    return times, [(a + b) / 2 for a, b in itertools.pairwise(edges)]


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
    calibrations: Sequence[float],
    work_per_op: float,
    flops_per_op: float | None,
) -> dict[str, Any]:
    """The figures of a measured workload (a pure function of its inputs).

    Args:
        times: seconds per op of each timed run.
        calibrations: the GFLOP/s paired with each run (see :func:`measure`).

    Returns a dict with:
        ``time_s``: Stats of the raw seconds per op;
        ``value``: the raw figure in the workload's unit (median, best, worst run);
        ``calibration_gflops`` (median) and ``calibration_samples``;
        ``calibrated_time``: median over runs of seconds x paired GFLOP/s, per unit of work (the
        GFLOP-equivalents one unit costs; what ``--compare`` compares) and
        ``calibrated_time_runs`` (each run's; ``--compare``'s band);
        ``value_at_reference``: the figure implied at 206 GFLOP/s (informational);
        with FLOPs: ``achieved_gflops`` (raw), ``efficiency`` (FLOPs / calibrated seconds) and
        ``floor`` (the figure at efficiency 1, at the median calibration);
        with a target: the target and reference, raw and scaled to the median calibration, and
        ``met`` (compute-bound targets judged on ``value_at_reference``, wall-clock ones raw):
        reference figures kept in the JSON, which no table or exit status uses (``--baseline
        REV`` judges speed, with ``speedup_target``).
    """
    if len(calibrations) != len(times):
        raise BenchmarkError(
            f"summarize: expected one calibration per run ({len(times)}), found {len(calibrations)}"
        )
    stats = Stats.of(times)
    cal = Stats.of(calibrations)
    if not cal.min > 0:
        raise BenchmarkError(f"summarize: expected positive calibrations, found {cal.min!r}")
    normalised = Stats.of([t * c for t, c in zip(times, calibrations, strict=True)])
    higher, _ = _unit(workload.unit)
    unit = workload.unit
    value = {
        "median": figure(unit, stats.median, work_per_op),
        "best": figure(unit, stats.min, work_per_op),
        "worst": figure(unit, stats.max, work_per_op),
    }
    at_reference = figure(unit, normalised.median / REFERENCE_GFLOPS, work_per_op)
    out: dict[str, Any] = {
        "time_s": stats.as_dict(),
        "value": value,
        "work_per_op": work_per_op,
        "calibration_gflops": cal.median,
        "calibration_samples": list(calibrations),
        "calibrated_time": normalised.median / work_per_op,
        "calibrated_time_runs": [
            t * c / work_per_op for t, c in zip(times, calibrations, strict=True)
        ],
        "value_at_reference": at_reference,
        "flops_per_op": flops_per_op,
        "achieved_gflops": None,
        "efficiency": None,
        "floor": None,
        "target": None,
    }
    if flops_per_op is not None and flops_per_op > 0:
        out["achieved_gflops"] = flops_per_op / stats.median / 1e9
        out["efficiency"] = flops_per_op / (normalised.median * 1e9)
        out["floor"] = figure(unit, flops_per_op / (cal.median * 1e9), work_per_op)
    target = workload.target
    if target is not None:
        judged = at_reference if target.scales_with_calibration else value["median"]
        reference = target.reference
        out["target"] = {
            "value": target.value,
            "reference": reference,
            "scales_with_calibration": target.scales_with_calibration,
            "scaled_value": target.scale(unit, target.value, cal.median),
            "scaled_reference": (
                None if reference is None else target.scale(unit, reference, cal.median)
            ),
            "met": judged >= target.value if higher else judged <= target.value,
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
        times, calibrations = measure(prepared.op, warmup, runs, Calibrator())
        counted = count_flops(prepared.op) if prepared.count_flops else None
    except Skipped as skip:
        record.update(status="skipped", reason=skip.reason)
        return record
    except Exception as error:
        record.update(status="error", reason=_describe(error))
        return record
    record.update(
        summarize(workload, times, calibrations, prepared.work_per_op, prepared.flops_per_op)
    )
    record["flops_counted_per_op"] = counted
    record["peak_rss_mib"] = peak_rss_mib()
    record["peak_rss_children_mib"] = peak_rss_mib(children=True)
    record["details"] = prepared.details
    return record


def _describe(error: BaseException) -> str:
    tail = traceback.format_exception(error)[-6:]
    return f"{type(error).__name__}: {error}\n{''.join(tail)}".strip()
