"""``worldflux train``: online on an environment (worldflux.training.loop) or offline on a dataset
(worldflux.datasets.offline). The parser is worldflux.training.cli."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from worldflux.core.exceptions import ConfigurationError
from worldflux.datasets.offline import OfflineConfig, train_offline
from worldflux.training.checkpoint import read_training_extra
from worldflux.training.cli import FIELDS, parse_overrides
from worldflux.training.distributed import init_from_environment
from worldflux.training.interrupts import TrainingInterrupted
from worldflux.training.loop import RUN_FILE, RunConfig, checkpoint_dir, train

__all__ = ["run"]


def _default_out(model: str, source: str, seed: int) -> str:
    """``runs/<model>-<env or dataset>-s<seed>`` with path separators out of the model id."""
    safe = model.replace(":", "-").replace("/", "-")
    return f"runs/{safe}-{source.replace('/', '-')}-s{seed}"


def _run_offline(args: argparse.Namespace) -> int:
    if args.resume:
        raise ConfigurationError("--resume is not available with --dataset yet")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model is None or args.steps is None:
        raise ConfigurationError("worldflux train --dataset needs MODEL and --steps (updates)")
    seed = args.seed or 0
    out = args.out or _default_out(args.model, Path(args.dataset).name, seed)
    summary = train_offline(
        OfflineConfig(
            model=args.model,
            dataset=args.dataset,
            updates=args.steps,
            out=str(out),
            seed=seed,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            log_every=args.log_every or 50,
            model_overrides=parse_overrides(args.set or []),
            grad_clip=args.grad_clip,
            tensorboard=bool(args.tensorboard),
            compile=bool(args.compile),
        )
    )
    last_val = f", validation loss {summary.val_losses[-1][1]:.4g}" if summary.val_losses else ""
    print(
        f"trained {args.model} on {args.dataset}: {summary.updates} updates "
        f"({summary.train_episodes} train / {summary.val_episodes} validation episodes), "
        f"loss {summary.first_loss:.4g} -> {summary.last_loss:.4g}{last_val}; "
        f"model in {summary.out}/model"
    )
    if summary.compile:
        print(summary.compile)
    return 0


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig fields the command line sets explicitly."""
    given = {field: getattr(args, name) for name, field in FIELDS.items()}
    given = {k: v for k, v in given.items() if v is not None}
    if args.set is not None:
        given["model_overrides"] = parse_overrides(args.set)
    if args.model is not None:
        given["model"] = args.model
    return given


def _config(args: argparse.Namespace) -> tuple[Any, bool]:
    """The run to do, and whether it resumes one."""
    given = _given(args)
    if args.resume is None:
        missing = [
            flag
            for flag, key in (("MODEL", "model"), ("--env", "env_id"), ("--steps", "steps"))
            if key not in given
        ]
        if missing:
            raise ConfigurationError(
                f"worldflux train needs {', '.join(missing)} (or --resume DIR)"
            )
        out = args.out or _default_out(given["model"], given["env_id"], given.get("seed", 0))
        return RunConfig(out=str(out), progress=not args.no_progress, **given), False
    run_dir = Path(args.resume)
    if args.out and Path(args.out).resolve() != run_dir.resolve():
        raise ConfigurationError(
            f"--resume {args.resume} and --out {args.out}: a resumed run continues in its own "
            "directory; give one of them"
        )
    record = run_dir / RUN_FILE
    try:
        saved = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(
            f"--resume {run_dir}: cannot read {record} ({type(error).__name__}); "
            "is it a worldflux run directory?"
        ) from None
    fields = set(RunConfig.__dataclass_fields__)
    settings = {k: v for k, v in saved.items() if k in fields} if isinstance(saved, dict) else {}
    changed = {k: (settings.get(k), v) for k, v in given.items() if settings.get(k) != v}
    for key, (before, after) in sorted(changed.items()):
        print(f"resume: {key} {before!r} -> {after!r}")
    settings.update(given, out=str(run_dir), progress=not args.no_progress)
    return RunConfig(**settings), True


def run(args: argparse.Namespace) -> int:
    if args.dataset:
        return _run_offline(args)

    config, resume = _config(args)
    if resume:
        ckpt = checkpoint_dir(Path(config.out), init_from_environment())
        step = read_training_extra(ckpt).get("loop", {}).get("env_step", "?")
        print(f"resumed at step {step} of {config.steps} ({config.out})")
    try:
        summary = train(config, resume=resume)
    except TrainingInterrupted as stopped:
        print(f"worldflux train: {stopped.message}", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 alone reports (each rank logs nothing else either)
    last = summary.returns[-10:]
    mean = sum(last) / len(last) if last else float("nan")
    final = f"; final evaluation {summary.eval_returns[-1]:.1f}" if summary.eval_returns else ""
    print(
        f"trained {config.model} on {config.env_id}: {summary.env_steps} env steps, "
        f"{summary.updates} updates, {summary.episodes} episodes, "
        f"mean return of the last {len(last)} episodes {mean:.1f}{final}; "
        f"acting: {summary.actor}"
        + (f" (behaviour {summary.behaviour})" if summary.behaviour else "")
        + "; "
        f"run directory {summary.out}"
    )
    if summary.compile:
        print(summary.compile)
    return 0
