"""``worldflux eval``: load a trained model, take held-out episodes, write ``eval.json`` and
pictures (the parser is worldflux.evaluation.cli)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from worldflux.datasets.record import record_dataset
from worldflux.datasets.sampler import check_contract
from worldflux.datasets.source import Dataset, open_dataset
from worldflux.evaluation.metrics import evaluate_predictions
from worldflux.evaluation.report import write_report
from worldflux.training.checkpoint import load_run_model

__all__ = ["load_model", "run"]


def load_model(path: Path) -> Any:
    """The model of a run directory (``model/`` or ``checkpoint/``) or of a checkpoint.

    Raises:
        CheckpointError: none holds a saved model.
    """
    return load_run_model(path)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    model = load_model(run_dir)
    with tempfile.TemporaryDirectory(prefix="wf-eval-") as scratch:
        dataset: Dataset
        if args.env:
            path = Path(scratch) / "episodes"
            obs_shape = tuple(model.config.obs_shape)
            pixels = len(obs_shape) == 3  # a model of [C, H, W] frames: record rendered frames
            dataset = record_dataset(
                args.env,
                path,
                args.episodes,
                seed=args.seed + 10_000,  # not the training seed: held-out episodes
                obs_mode="image" if pixels else "vector",
                image_size=int(obs_shape[-1]) if pixels else 64,
                max_episode_steps=args.max_episode_steps,
            )
            held_out, fit = list(range(len(dataset))), list(range(len(dataset)))
        else:
            dataset = open_dataset(args.dataset)
            fit, held_out = dataset.split()
            held_out = held_out or fit
        check_contract(dataset, model.bound_contract(), model.model_type)
        result = evaluate_predictions(
            model,
            dataset,
            eval_episodes=held_out,
            train_episodes=fit,
            horizon=args.horizon,
            context=args.context,
            windows=args.windows,
            seed=args.seed,
            mlp_probe=args.mlp_probe,
        )
    out = Path(args.out) if args.out else run_dir / "eval"
    meta = {
        "model": model.model_type,
        "run": str(run_dir),
        "source": args.env or str(args.dataset),
        "episodes": len(held_out),
    }
    document = write_report(result, out, meta)
    shown_curves = ("obs_mse", "probe_obs_mse", "mlp_probe_obs_mse", "copy_last_mse", "mean_mse")
    for name in (*shown_curves, "reward_mse"):
        values = document.get(name)
        if values:
            shown = ", ".join("-" if v is None else f"{v:.4g}" for v in values)
            print(f"{name:<17} h=1..{result.horizon}: {shown}")
    if result.probe_ridge is not None:
        print(f"{'probe_ridge':<17} {result.probe_ridge:g} (chosen on held-aside fit episodes)")
    print(f"wrote {out / 'eval.json'} and {', '.join(document['pictures']) or 'no pictures'}")
    return 0
