"""The JSON Schema of a benchmark report (``benchmarks.report`` validates on every write/read).

``baseline`` (optional) holds the ``--baseline REV`` ratio records; ``calibrated_time_runs``
(optional) each run's calibrated time. Both are additions that older reports simply lack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks import BenchmarkError

__all__ = ["REPORT_SCHEMA", "SCHEMA_VERSION", "validate_report"]

SCHEMA_VERSION = "worldflux-bench/v1"

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
            "calibrated_time_runs": {
                "type": "array",
                "items": {"type": "number", "exclusiveMinimum": 0},
                "minItems": 1,
            },
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

_BAND = {
    "type": ["object", "null"],
    "required": ["median", "low", "high", "rounds"],
    "properties": {
        "median": _NUM,
        "low": _NUM,
        "high": _NUM,
        "rounds": {"type": "array", "items": _NUM, "minItems": 1},
    },
}
_RATIO = {
    "type": "object",
    "required": [
        "name",
        "baseline_workload",
        "verdict",
        "rounds",
        "ratio",
        "speedup",
        "speedup_target",
        "target",
        "rss_ratio",
        "memory_higher",
        "note",
    ],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "baseline_workload": {"type": "string", "minLength": 1},
        "verdict": {"enum": ["faster", "slower", "same", "not compared"]},
        "rounds": {"type": "integer", "minimum": 0},
        "ratio": _BAND,
        "speedup": _BAND,
        "speedup_target": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "target": {"enum": ["met", "missed", "undecided", None]},
        "rss_ratio": _BAND,
        "memory_higher": {"type": "boolean"},
        "note": {"type": "string"},
    },
}
#: ``--baseline REV``: the revision, its commit, the rounds and tolerance, one record per workload
_BASELINE = {
    "type": "object",
    "required": ["rev", "commit", "rounds", "tolerance", "ratios"],
    "properties": {
        "rev": {"type": "string", "minLength": 1},
        "commit": {"type": ["string", "null"]},
        "rounds": {"type": "integer", "minimum": 1},
        "tolerance": {"type": "number", "minimum": 0},
        "ratios": {"type": "array", "items": _RATIO},
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
        "baseline": _BASELINE,
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
