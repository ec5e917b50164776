"""``worldflux dataset record --env ENV --episodes N --out PATH`` and ``worldflux dataset info``."""

from __future__ import annotations

import argparse
import json

__all__ = ["configure", "run"]


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


def _summary(path: str) -> dict[str, object]:
    # deferred: keeps "worldflux dataset --help" cheap (numpy, torch load when the command runs)
    import numpy as np

    from worldflux.datasets.source import open_dataset

    dataset = open_dataset(path)
    lengths, returns = [], []
    for episode in dataset:  # streamed: one episode in memory at a time
        lengths.append(episode.length)
        returns.append(float(np.sum(episode.rewards)))
    train, val = dataset.split()
    meta = dataset.meta
    span = {"min": min(lengths), "mean": float(np.mean(lengths)), "max": max(lengths)}
    return {
        "path": str(dataset.root),
        "env": meta.env,
        "policy": meta.policy,
        "observation": meta.observation,
        "action": meta.action,
        "episodes": len(dataset),
        "steps": int(sum(lengths)),
        "episode_length": span,
        "return": {"min": min(returns), "mean": float(np.mean(returns)), "max": max(returns)},
        "split": {"train": len(train), "validation": len(val)},
    }


def run(args: argparse.Namespace) -> int:
    if args.dataset_command == "record":
        # deferred: keeps "worldflux dataset --help" cheap (numpy, torch load when the command runs)
        from worldflux.datasets.record import record_dataset

        dataset = record_dataset(
            args.env,
            args.out,
            args.episodes,
            policy=args.policy,
            seed=args.seed,
            obs_mode=args.obs,
            image_size=args.image_size,
            max_episode_steps=args.max_episode_steps,
            overwrite=args.overwrite,
            format=args.format,
        )
        meta = dataset.meta
        print(f"recorded {meta.episodes} episodes ({meta.steps} steps) of {meta.env} in {args.out}")
        return 0
    summary = _summary(args.path)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    for key, value in summary.items():
        print(f"{key:<15} {json.dumps(value) if isinstance(value, dict) else value}")
    return 0
