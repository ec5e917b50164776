"""``worldflux eval RUN_DIR|MODEL_DIR --dataset PATH | --env ENV [--horizon H] [--out DIR]``.

Loads the trained model (a run directory's ``model/`` from offline training or ``checkpoint/``
from online training, or a checkpoint directory itself), takes held-out episodes (the dataset's
validation split, or episodes recorded from ``--env`` with a random policy) and writes
``eval.json`` and pictures (see docs/evaluation.md). With ``--env``, a model of ``[C, H, W]``
observations gets rendered frames of its size. This module is the parser (cheap);
worldflux.evaluation.command runs it.
"""

from __future__ import annotations

import argparse

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldflux eval`` (cheap: imports nothing heavy)."""
    parser.add_argument(
        "run", help="run directory (offline: model/, online: checkpoint/) or a checkpoint"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", metavar="PATH", help="evaluate on its validation episodes")
    source.add_argument("--env", help="record held-out episodes of this Gymnasium id")
    parser.add_argument("--episodes", type=int, default=8, help="episodes recorded for --env")
    parser.add_argument("--max-episode-steps", type=int, help="with --env")
    parser.add_argument("--horizon", type=int, default=5, help="open-loop steps H")
    parser.add_argument(
        "--context",
        type=int,
        default=None,
        help="observed steps before rolling out (default: the model's own: 8 for DreamerV3's "
        "recurrent filter, 1 for models that encode one observation)",
    )
    parser.add_argument("--windows", type=int, default=64, help="held-out windows evaluated")
    parser.add_argument(
        "--mlp-probe",
        action="store_true",
        help="a model without an observation decoder is also read through an MLP probe "
        "(mlp_probe_obs_mse; its ridge probe cannot draw a moving object from a small state)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="report directory (default: RUN/eval)")
