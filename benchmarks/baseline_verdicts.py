"""Verdicts of ``--baseline REV`` from the per-round ratios, their JSON records and the table.

Pure functions of the numbers (no processes, no git), so they are tested directly.

- ``ratio`` = this tree's calibrated time / REV's, per round (< 1 is faster);
- ``speedup`` = 1 / ratio (REV / this, > 1 is faster);
- ``faster``/``slower`` only when *every* round is outside the tolerance, else ``same``;
- a speedup target is ``met`` only when every round's speedup reaches it, ``missed`` when no
  round does, ``undecided`` when the band straddles it;
- ``memory higher`` when every round's peak RSS ratio (this / REV) is above
  :data:`MEMORY_TOLERANCE`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MEMORY_TOLERANCE",
    "VERDICTS",
    "Ratio",
    "format_ratios",
    "judge",
    "target_verdict",
]

#: peak RSS this / REV above which every round must be for ``memory higher``
MEMORY_TOLERANCE = 1.1
VERDICTS = ("faster", "slower", "same", "not compared")


def target_verdict(speedups: Sequence[float], target: float) -> str:
    """``met`` (every round >= target), ``missed`` (every round below) or ``undecided``."""
    if min(speedups) >= target:
        return "met"
    if max(speedups) < target:
        return "missed"
    return "undecided"


@dataclass(frozen=True)
class Ratio:
    """``this / baseline`` calibrated time of one workload over the rounds (< 1 is faster).

    Attributes:
        verdict: ``faster``, ``slower``, ``same`` (the band straddles the tolerance) or
            ``not compared`` (``note`` says why).
        baseline: the workload run on REV (``compare_to``, or the same name).
        ratios, rss_ratios: per round, this / REV (calibrated time; peak RSS).
        target: the speedup target's verdict (None without a target or a comparison).
    """

    name: str
    verdict: str
    baseline: str = ""
    ratios: tuple[float, ...] = ()
    rss_ratios: tuple[float, ...] = ()
    speedup_target: float | None = None
    target: str | None = None
    note: str = ""
    memory_higher: bool = field(default=False)

    @property
    def rounds(self) -> int:
        return len(self.ratios)

    @property
    def median(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def low(self) -> float | None:
        return min(self.ratios) if self.ratios else None

    @property
    def high(self) -> float | None:
        return max(self.ratios) if self.ratios else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON record (``benchmarks.report`` schema ``baseline.ratios[]``)."""

        def band(values: Sequence[float]) -> dict[str, Any] | None:
            if not values:
                return None
            return {
                "median": statistics.median(values),
                "low": min(values),
                "high": max(values),
                "rounds": list(values),
            }

        return {
            "name": self.name,
            "baseline_workload": self.baseline or self.name,
            "verdict": self.verdict,
            "rounds": self.rounds,
            "ratio": band(self.ratios),
            "speedup": band([1.0 / r for r in self.ratios]),
            "speedup_target": self.speedup_target,
            "target": self.target,
            "rss_ratio": band(self.rss_ratios),
            "memory_higher": self.memory_higher,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Ratio:
        """The inverse of :meth:`as_dict` (for ``--from REPORT``)."""
        ratio, rss = record.get("ratio") or {}, record.get("rss_ratio") or {}
        return cls(
            name=record["name"],
            verdict=record["verdict"],
            baseline=record.get("baseline_workload", record["name"]),
            ratios=tuple(ratio.get("rounds", ())),
            rss_ratios=tuple(rss.get("rounds", ())),
            speedup_target=record.get("speedup_target"),
            target=record.get("target"),
            note=record.get("note", ""),
            memory_higher=bool(record.get("memory_higher")),
        )


def judge(
    name: str,
    ratios: Sequence[float],
    tolerance: float,
    *,
    speedup_target: float | None = None,
    rss_ratios: Sequence[float] = (),
    baseline: str = "",
) -> Ratio:
    """The verdicts of per-round ratios: outside the tolerance in every round, or ``same``; the
    speedup target on every round's speedup; memory higher when every round's RSS ratio is."""
    if not ratios:
        raise ValueError("judge: expected at least one round")
    low, high = min(ratios), max(ratios)
    if low > 1 + tolerance:
        verdict = "slower"
    elif high < 1 / (1 + tolerance):
        verdict = "faster"
    else:
        verdict = "same"
    target = None
    if speedup_target is not None:
        target = target_verdict([1.0 / r for r in ratios], speedup_target)
    return Ratio(
        name,
        verdict,
        baseline=baseline or name,
        ratios=tuple(ratios),
        rss_ratios=tuple(rss_ratios),
        speedup_target=speedup_target,
        target=target,
        memory_higher=bool(rss_ratios) and min(rss_ratios) > MEMORY_TOLERANCE,
    )


def _band(low: float, high: float, digits: int) -> str:
    return f"{low:.{digits}f}..{high:.{digits}f}"


def format_ratios(ratios: Sequence[Ratio], rev: str, tolerance: float) -> str:
    """The ratio table: per workload the median ratio and its band, the speedup and its band,
    the speedup target's verdict, the peak RSS ratio, the rounds and the verdict."""
    lines = [
        f"this tree vs {rev}, calibrated time per unit of work: ratio = this / {rev} (< 1 is "
        f"faster), speedup = {rev} / this (> 1 is faster)",
        f"a verdict needs every round outside {tolerance:.0%}; a speedup target is met when "
        "every round reaches it, missed when none does",
        f"  {'workload':<26} {'ratio':>6} {'band':>13} {'speedup':>7} {'band':>11} "
        f"{'target':>15} {'rss x':>5} {'rounds':>6}  verdict",
    ]
    for r in ratios:
        wanted = "" if r.speedup_target is None else f"{r.speedup_target:g}x"
        if r.median is None or r.low is None or r.high is None:
            target = f"{wanted} -" if wanted else "-"
            lines.append(
                f"  {r.name:<26} {'-':>6} {'-':>13} {'-':>7} {'-':>11} {target:>15} {'-':>5} "
                f"{0:>6}  {r.verdict} ({r.note})"
            )
            continue
        target = f"{wanted} {r.target}" if wanted else "-"
        rss = "-" if not r.rss_ratios else f"{statistics.median(r.rss_ratios):.2f}"
        verdict = r.verdict + (", memory higher" if r.memory_higher else "")
        if r.baseline and r.baseline != r.name:
            verdict += f" (vs {rev}'s {r.baseline})"
        lines.append(
            f"  {r.name:<26} {r.median:>6.3f} {_band(r.low, r.high, 3):>13} "
            f"{1 / r.median:>6.2f}x {_band(1 / r.high, 1 / r.low, 2):>11} {target:>15} "
            f"{rss:>5} {r.rounds:>6}  {verdict}"
        )
    return "\n".join(lines)
