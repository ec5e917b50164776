"""What the evaluation's probes can read from a perfect state: the Reach frames read from the true
``[x, y, gx, gy]`` state.

``python -m benchmarks.probe_ceiling [--data-dir DIR] [--data-seed S] [--json OUT]`` records (or
reuses) the learning benchmark's vector and image datasets of one seed (the same episodes: same
env, policy and seed), fits the ridge probe and the MLP probe (worldflux/evaluation/probes.py)
from the vector observations to the frames of the training split (the ridge chosen on one in
five of its episodes held aside, as the evaluation chooses it) and reports their error on the
validation split next to the mean frame's. A latent-only model read through a probe cannot do
better than its probe does from the true state. Results: docs/evaluation.md, "Probes".
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from benchmarks.families_learning import TASKS, prepare_dataset

if TYPE_CHECKING:
    from worldflux.datasets.source import Dataset

__all__ = ["main", "probe_ceiling"]


def _frames(dataset: Dataset, episodes: list[int]) -> torch.Tensor:
    """The episodes' observations, one row each ``[N, D]`` (uint8 frames scaled to [0, 1])."""
    parts = []
    for index in episodes:
        obs = dataset.episode(index).observations
        if isinstance(obs, dict):
            raise SystemExit("the Reach datasets hold array observations, found a dict")
        value = torch.from_numpy(np.asarray(obs)).flatten(1).float()
        parts.append(value / 255.0 if obs.dtype == np.uint8 else value)
    return torch.cat(parts)


def probe_ceiling(data_dir: Path, data_seed: int = 0, seed: int = 0) -> dict[str, float]:
    """Held-out frame errors of the mean frame and of both probes of the true state."""
    from worldflux.datasets.source import open_dataset
    from worldflux.evaluation.probes import (
        fit_mlp_probe,
        fit_validated_linear_probe,
        held_aside,
    )
    from worldflux.training.reach import register

    register()
    vector = open_dataset(str(prepare_dataset(replace(TASKS["vector"], seed=data_seed), data_dir)))
    image = open_dataset(str(prepare_dataset(replace(TASKS["image"], seed=data_seed), data_dir)))
    fit, held_out = vector.split()
    if (fit, held_out) != image.split():
        raise SystemExit("the vector and image datasets do not hold the same episodes")
    states, new_states = _frames(vector, fit), _frames(vector, held_out)
    frames, new_frames = _frames(image, fit), _frames(image, held_out)
    if states.shape[0] != frames.shape[0]:
        raise SystemExit("the vector and image episodes differ in length")

    def error(predicted: torch.Tensor) -> float:
        return float((predicted - new_frames).pow(2).mean())

    kept, aside = held_aside(fit)
    ridge_probe, ridge = fit_validated_linear_probe(
        (_frames(vector, kept), _frames(image, kept)),
        (_frames(vector, aside), _frames(image, aside)),
    )

    return {
        "frames_fit": float(frames.shape[0]),
        "frames_held_out": float(new_frames.shape[0]),
        "mean_frame": error(frames.mean(0).expand_as(new_frames)),
        "ridge_probe": error(ridge_probe(new_states)),
        "ridge": ridge,
        "mlp_probe": error(fit_mlp_probe(states, frames, seed=seed)(new_states)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe_ceiling")
    parser.add_argument("--data-dir", default="runs/families-learning/data")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="the MLP probe's seed")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = probe_ceiling(Path(args.data_dir), args.data_seed, args.seed)
    for name, value in result.items():
        print(f"{name:<16} {value:.5g}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
