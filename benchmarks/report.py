"""The JSON report (schema: :mod:`benchmarks.schema`): environment facts, baseline merging,
comparison with a baseline report and a text table.

Comparison uses the *calibrated time*: seconds per unit of work times the matmul calibration
(GFLOP/s) measured next to it, i.e. how many GFLOP-equivalents of this machine one unit costs.
It is stable across load changes that slow matmuls and the workload alike, but a committed
baseline was taken on another day (often another machine), so ``--compare`` only says
``possible regression`` (confirm with ``--baseline REV``, interleaved in one run), and only when
every timed run of this report is slower than the baseline's median by more than the tolerance:
a load spike in one run cannot make it.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import BenchmarkError
from benchmarks.schema import REPORT_SCHEMA, SCHEMA_VERSION, validate_report
from benchmarks.stats import Stats

__all__ = [
    "DEPRESSED_GFLOPS",
    "POSSIBLE_REGRESSION",
    "REPORT_SCHEMA",
    "SCHEMA_VERSION",
    "Comparison",
    "build_report",
    "compare",
    "environment",
    "format_comparison",
    "format_table",
    "load_report",
    "merge_baseline",
    "validate_report",
    "write_report",
]

#: Below this calibration (GFLOP/s) the machine is busy enough that figures are suspect.
DEPRESSED_GFLOPS = 150.0


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def environment() -> dict[str, Any]:
    """``git``, ``machine`` and ``versions`` sections of a report (no torch import)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "git": {
            "commit": _git("rev-parse", "HEAD"),
            "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": None if status is None else bool(status),
        },
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "logical_cpus": os.cpu_count(),
            "usable_cpus": affinity,
            "memory_gib": _memory_gib(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": _version("torch"),
            "worldflux": _version("worldflux"),
            "numpy": _version("numpy"),
        },
    }


def _summary(workloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ok = [w for w in workloads if w.get("status") == "ok"]
    cal = [float(w["calibration_gflops"]) for w in ok]
    cal_stats = Stats.of(cal).as_dict() if cal else None
    return {
        "ok": len(ok),
        "skipped": sum(w.get("status") == "skipped" for w in workloads),
        "error": sum(w.get("status") == "error" for w in workloads),
        "calibration_gflops": cal_stats,
        "depressed_calibration": bool(cal_stats and cal_stats["median"] < DEPRESSED_GFLOPS),
    }


def build_report(
    workloads: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    env: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a report from worker records and run settings (``threads``, ``quick``, ...)."""
    env = environment() if env is None else env
    return {
        "schema_version": SCHEMA_VERSION,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": dict(env["git"]),
        "machine": dict(env["machine"]),
        "versions": dict(env["versions"]),
        "settings": dict(settings),
        "summary": _summary(workloads),
        "workloads": [dict(w) for w in workloads],
    }


def merge_baseline(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` with the workloads it did not run carried over from ``old`` (same order as old,
    new workloads appended); the summary is recomputed."""
    fresh = {w["name"]: w for w in new["workloads"]}
    merged = [fresh.pop(w["name"], w) for w in old["workloads"]]
    merged.extend(fresh.values())
    out = dict(new)
    out.pop("baseline", None)  # ratios against a revision belong to their run, not the baseline
    out["workloads"] = merged
    out["summary"] = _summary(merged)
    return out


def write_report(report: Mapping[str, Any], path: Path) -> None:
    """Validate and write ``report`` as indented JSON (directories created)."""
    validate_report(report, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")


def load_report(path: Path) -> dict[str, Any]:
    """Read and validate a report.

    Raises:
        BenchmarkError: a missing, unreadable or invalid file (naming it).
    """
    try:
        report: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchmarkError(f"{path}: no such report") from None
    except (OSError, json.JSONDecodeError) as error:
        raise BenchmarkError(f"{path}: cannot read the report ({error})") from None
    validate_report(report, str(path))
    return report


#: ``--compare``'s verdict when every run is slower than the baseline by more than the tolerance
POSSIBLE_REGRESSION = "possible regression"


@dataclass(frozen=True)
class Comparison:
    """One workload against the baseline report.

    Attributes:
        verdict: ``possible regression`` (every timed run's calibrated time worse than the
            baseline's median by more than the tolerance), ``improved`` (every run better by
            more than it), ``same``, or ``not compared`` (see ``note``).
        ratio: new median calibrated time / baseline's (> 1 is slower).
        low, high: the band of the runs' ratios (the median's without per-run figures).
    """

    name: str
    verdict: str
    ratio: float | None = None
    note: str = ""
    low: float | None = None
    high: float | None = None


def compare(
    report: Mapping[str, Any], baseline: Mapping[str, Any], tolerance: float = 0.2
) -> list[Comparison]:
    """Compare every workload of ``report`` with the same-named one in ``baseline``."""
    if not tolerance >= 0:
        raise BenchmarkError(f"compare: expected a tolerance >= 0, found {tolerance!r}")
    base = {w["name"]: w for w in baseline["workloads"]}
    out = []
    for new in report["workloads"]:
        name = new["name"]
        old = base.get(name)
        if old is None:
            out.append(Comparison(name, "not compared", note="not in the baseline"))
        elif new["status"] != "ok" or old["status"] != "ok":
            note = f"status {new['status']} (baseline: {old['status']})"
            out.append(Comparison(name, "not compared", note=note))
        else:
            reference = float(old["calibrated_time"])
            ratio = float(new["calibrated_time"]) / reference
            runs = [float(t) / reference for t in new.get("calibrated_time_runs") or ()]
            low, high = (min(runs), max(runs)) if runs else (ratio, ratio)
            if low > 1.0 + tolerance:
                verdict, note = POSSIBLE_REGRESSION, "confirm with --baseline REV"
            elif high < 1.0 / (1.0 + tolerance):
                verdict, note = "improved", ""
            else:
                verdict, note = "same", ""
            out.append(Comparison(name, verdict, ratio, note, low, high))
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def format_table(report: Mapping[str, Any]) -> str:
    """A plain-text table of this run alone: the raw figure (median, best..worst), the
    efficiency against this run's own matmul calibration (achieved / calibrated FLOP/s) and the
    floor (the figure at efficiency 1). Nothing is normalised to another machine and no
    absolute target decides anything: ``--baseline REV`` compares revisions in one run."""
    header = (
        f"{'workload':<24} {'figure':>9} {'unit':<14} {'best..worst':>17} {'eff':>5} "
        f"{'floor':>8} {'cal GF/s':>8}"
    )
    lines = [header, "-" * len(header)]
    for w in report["workloads"]:
        if w["status"] != "ok":
            reason = (w.get("reason") or "").splitlines()[0][:80] if w.get("reason") else ""
            lines.append(f"{w['name']:<24} {w['status']}: {reason}")
            continue
        value = w["value"]
        eff = w.get("efficiency")
        lines.append(
            f"{w['name']:<24} {_fmt(value['median']):>9} {w['unit']:<14} "
            f"{_fmt(value['best']) + '..' + _fmt(value['worst']):>17} "
            f"{'-' if eff is None else f'{eff:.0%}':>5} {_fmt(w.get('floor')):>8} "
            f"{_fmt(w.get('calibration_gflops')):>8}"
        )
    summary = report["summary"]
    cal = summary.get("calibration_gflops")
    if cal:
        lines.append(
            f"calibration: median {cal['median']:.0f} GFLOP/s (min {cal['min']:.0f}, "
            f"max {cal['max']:.0f}) over {cal['n']} workloads"
            + ("  [DEPRESSED: figures are suspect]" if summary["depressed_calibration"] else "")
        )
    lines.append(
        "eff: achieved FLOP/s over the same run's calibrated matmul FLOP/s; compare revisions "
        "with --baseline REV (interleaved, ratios with their band)"
    )
    return "\n".join(lines)


def format_comparison(comparisons: Sequence[Comparison], tolerance: float) -> str:
    """One line per workload: verdict, median calibrated-time ratio and the band of the runs."""
    lines = [
        f"compare with the baseline report (calibrated time; a verdict needs every run outside "
        f"{tolerance:.0%}; another day's figures: confirm with --baseline REV):"
    ]
    for c in comparisons:
        ratio = "" if c.ratio is None else f"x{c.ratio:.2f}"
        if c.low is not None and c.high is not None and c.low != c.high:
            ratio += f" (runs x{c.low:.2f}..x{c.high:.2f})"
        note = f" ({c.note})" if c.note else ""
        lines.append(f"  {c.name:<26} {c.verdict:<19} {ratio}{note}")
    return "\n".join(lines)
