"""Evaluation of trained world models: open-loop prediction error against baselines.

``worldflux eval RUN_DIR --dataset PATH | --env ENV`` (see docs/evaluation.md).
"""

from __future__ import annotations

from worldflux.lazy import lazy_exports

__getattr__ = lazy_exports(
    "worldflux.evaluation",
    {"EvalResult": "metrics", "evaluate_predictions": "metrics", "write_report": "report"},
)

__all__ = ["EvalResult", "evaluate_predictions", "write_report"]
