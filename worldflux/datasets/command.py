"""``worldflux dataset record`` / ``info`` (the parser is worldflux.datasets.cli)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from worldflux.datasets.record import record_dataset
from worldflux.datasets.source import open_dataset

__all__ = ["run"]


def _summary(path: str) -> dict[str, object]:
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
