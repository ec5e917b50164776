"""The JSON report: its schema, environment facts, baseline merging, comparison and a text table.

Comparison uses the *calibrated time*: median seconds per unit of work times the matmul
calibration (GFLOP/s) measured next to it, i.e. how many GFLOP-equivalents of this machine one
unit costs. It is stable across machines and across load changes that slow matmuls and the
workload alike, so a ratio above ``1 + tolerance`` against the baseline is a regression.
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
from benchmarks.stats import Stats

__all__ = [
    "DEPRESSED_GFLOPS",
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

SCHEMA_VERSION = "worldflux-bench/v1"

#: Below this calibration (GFLOP/s) the machine is busy enough that figures are suspect.
DEPRESSED_GFLOPS = 150.0

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STATS = {
    "type": "object",
    "required": ["n", "median", "min", "max", "mean", "stdev"],
    "properties": {
        "n": {"type": "integer", "minimum": 1},
        **dict.fromkeys(("median", "min", "max", "mean", "stdev"), _NUM),
    },
}
_TARGET = {
    "type": ["object", "null"],
    "required": ["value", "reference", "scales_with_calibration", "scaled_value", "met"],
    "properties": {
        "value": _NUM,
        "reference": _NUM_OR_NULL,
        "scales_with_calibration": {"type": "boolean"},
        "scaled_value": _NUM,
        "scaled_reference": _NUM_OR_NULL,
        "met": {"type": "boolean"},
    },
}
_WORKLOAD = {
    "type": "object",
    "required": ["name", "description", "unit", "higher_is_better", "status", "reason"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "unit": {"enum": ["latent steps/s", "samples/s", "ms/action", "s/update", "s"]},
        "higher_is_better": {"type": "boolean"},
        "status": {"enum": ["ok", "skipped", "error"]},
        "reason": {"type": ["string", "null"]},
    },
    "if": {"properties": {"status": {"const": "ok"}}},
    "then": {
        "required": [
            "threads",
            "warmup",
            "runs",
            "time_s",
            "value",
            "work_per_op",
            "calibration_gflops",
            "calibrated_time",
            "value_at_reference",
            "flops_per_op",
            "achieved_gflops",
            "efficiency",
            "floor",
            "target",
            "peak_rss_mib",
            "details",
        ],
        "properties": {
            "threads": {"type": "integer", "minimum": 1},
            "warmup": {"type": "integer", "minimum": 0},
            "runs": {"type": "integer", "minimum": 1},
            "time_s": _STATS,
            "value": {
                "type": "object",
                "required": ["median", "best", "worst"],
                "properties": dict.fromkeys(("median", "best", "worst"), _NUM),
            },
            "work_per_op": {"type": "number", "exclusiveMinimum": 0},
            "calibration_gflops": {"type": "number", "exclusiveMinimum": 0},
            "calibration_samples": {"type": "array", "items": _NUM, "minItems": 1},
            "calibrated_time": {"type": "number", "exclusiveMinimum": 0},
            "value_at_reference": {"type": "number", "exclusiveMinimum": 0},
            "flops_per_op": _NUM_OR_NULL,
            "flops_counted_per_op": _NUM_OR_NULL,
            "achieved_gflops": _NUM_OR_NULL,
            "efficiency": _NUM_OR_NULL,
            "floor": _NUM_OR_NULL,
            "target": _TARGET,
            "peak_rss_mib": {"type": "number", "exclusiveMinimum": 0},
            "details": {"type": "object"},
        },
    },
}

#: JSON Schema (draft 2020-12) of a report written by ``python -m benchmarks``.
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "worldflux benchmark report",
    "type": "object",
    "required": [
        "schema_version",
        "created_utc",
        "git",
        "machine",
        "versions",
        "settings",
        "summary",
        "workloads",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "created_utc": {"type": "string"},
        "git": {
            "type": "object",
            "required": ["commit", "dirty"],
            "properties": {
                "commit": {"type": ["string", "null"]},
                "dirty": {"type": ["boolean", "null"]},
            },
        },
        "machine": {"type": "object", "required": ["platform", "cpu", "logical_cpus"]},
        "versions": {"type": "object", "required": ["python", "torch"]},
        "settings": {
            "type": "object",
            "required": ["threads", "quick"],
            "properties": {
                "threads": {"type": "integer", "minimum": 1},
                "quick": {"type": "boolean"},
            },
        },
        "summary": {
            "type": "object",
            "required": ["ok", "skipped", "error", "calibration_gflops", "depressed_calibration"],
        },
        "workloads": {"type": "array", "items": _WORKLOAD},
    },
}


def validate_report(report: Mapping[str, Any], source: str = "report") -> None:
    """Check ``report`` against :data:`REPORT_SCHEMA`.

    Raises:
        BenchmarkError: naming the first invalid field, what was expected and what was found.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(REPORT_SCHEMA)
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "<root>"
        raise BenchmarkError(f"{source}: {where}: {first.message}")


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
        "targets_met": sum(bool(w.get("target") and w["target"]["met"]) for w in ok),
        "targets_missed": sum(bool(w.get("target") and not w["target"]["met"]) for w in ok),
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


@dataclass(frozen=True)
class Comparison:
    """One workload against the baseline.

    Attributes:
        verdict: ``regressed`` (calibrated time worse by more than the tolerance), ``improved``
            (better by more than it), ``same``, or ``not compared`` (see ``note``).
        ratio: new calibrated time / baseline calibrated time (> 1 is slower).
    """

    name: str
    verdict: str
    ratio: float | None = None
    note: str = ""


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
            ratio = float(new["calibrated_time"]) / float(old["calibrated_time"])
            if ratio > 1.0 + tolerance:
                verdict = "regressed"
            elif ratio < 1.0 / (1.0 + tolerance):
                verdict = "improved"
            else:
                verdict = "same"
            out.append(Comparison(name, verdict, ratio))
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
    """One line per workload: verdict and calibrated-time ratio."""
    lines = [f"compare (calibrated time, tolerance {tolerance:.0%}):"]
    for c in comparisons:
        ratio = "" if c.ratio is None else f"x{c.ratio:.2f}"
        note = f" ({c.note})" if c.note else ""
        lines.append(f"  {c.name:<26} {c.verdict:<13} {ratio}{note}")
    return "\n".join(lines)
