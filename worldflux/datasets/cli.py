"""``worldflux dataset record --env ENV --episodes N --out PATH`` and ``worldflux dataset
info``: the parser (cheap); worldflux.datasets.command runs it."""

from __future__ import annotations

import argparse

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldflux dataset`` (cheap: imports nothing heavy)."""
    sub = parser.add_subparsers(dest="dataset_command", required=True)
    record = sub.add_parser("record", help="record episodes of a Gymnasium environment")
    record.add_argument("--env", required=True, help="Gymnasium id, e.g. Pendulum-v1")
    record.add_argument("--episodes", type=int, required=True)
    record.add_argument("--out", required=True, help="dataset directory to create")
    record.add_argument(
        "--policy",
        default="random",
        metavar="random|RUN_DIR",
        help="'random' (uniform actions), or a run directory / checkpoint whose trained model "
        "acts (its planner or policy, eval mode)",
    )
    record.add_argument("--seed", type=int, default=0)
    record.add_argument("--obs", choices=["vector", "image"], default="vector")
    record.add_argument("--image-size", type=int, default=64)
    record.add_argument("--max-episode-steps", type=int)
    record.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    record.add_argument(
        "--format",
        choices=["npz", "minari"],
        default="npz",
        help="npz: a worldflux episode directory; minari: a Minari dataset (HDF5)",
    )
    info = sub.add_parser("info", help="summarise a dataset (every episode is read and checked)")
    info.add_argument("path")
    info.add_argument("--json", action="store_true")
