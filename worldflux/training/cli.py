"""``worldflux train MODEL --env ENV_ID --steps N [--out DIR] [--resume DIR] [--seed S]``.

Trains a registered model online on a Gymnasium environment (see worldflux.training.loop), with
a progress bar, metrics in ``DIR/metrics.jsonl`` and ``DIR/metrics.csv`` and a checkpoint in
``DIR/checkpoint``. Under ``torchrun`` every process trains a replica and gradients are averaged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from worldflux.core.exceptions import ConfigurationError

__all__ = ["configure", "parse_overrides", "run"]


#: CLI option -> RunConfig field, for the options a resumed run may also be given.
_FIELDS = {
    "env": "env_id",
    "steps": "steps",
    "seed": "seed",
    "obs": "obs_mode",
    "image_size": "image_size",
    "batch_size": "batch_size",
    "seq_len": "seq_len",
    "seed_steps": "seed_steps",
    "pretrain_updates": "pretrain_updates",
    "updates_per_step": "updates_per_step",
    "replay_capacity": "replay_capacity",
    "checkpoint_every": "checkpoint_every",
    "checkpoint_minutes": "checkpoint_minutes",
    "log_every": "log_every",
    "max_episode_steps": "max_episode_steps",
    "action_repeat": "action_repeat",
    "frame_stack": "frame_stack",
    "behaviour": "behaviour",
    "grad_clip": "grad_clip",
    "eval_every": "eval_every",
    "eval_episodes": "eval_episodes",
    "eval_model_every": "eval_model_every",
    "eval_model_episodes": "eval_model_episodes",
    "threads": "threads",
    "tensorboard": "tensorboard",
    "num_envs": "num_envs",
    "vector_mode": "vector_mode",
    "compile": "compile",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldflux train`` (cheap: imports nothing heavy). Options left out take
    RunConfig's defaults, or with ``--resume`` the run's own recorded settings."""
    parser.add_argument(
        "model", nargs="?", help="model id or alias, e.g. tdmpc2-ci (not needed with --resume)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--env", help="Gymnasium id, e.g. Pendulum-v1")
    source.add_argument(
        "--dataset", metavar="PATH", help="train offline on an episode dataset (no environment)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        help="environment steps, summed over the --num-envs environments (with --dataset: updates)",
    )
    parser.add_argument("--out", help="run directory (default runs/<model>-<env>-s<seed>)")
    parser.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR exactly (its settings are read from DIR/run.json; "
        "options given here, such as a larger --steps, override them)",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--obs", choices=["vector", "image"], help="observation kind")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int, help="default: the model config's, else 32")
    parser.add_argument("--seq-len", type=int, help="default: horizon + 1, else 16")
    parser.add_argument("--seed-steps", type=int, help="random-action steps before training")
    parser.add_argument("--pretrain-updates", type=int, help="updates when seeding ends")
    parser.add_argument("--updates-per-step", type=float)
    parser.add_argument(
        "--replay-capacity", type=int, help="default: the whole run, kept on --resume"
    )
    parser.add_argument("--checkpoint-every", type=int, help="env steps (default 5000)")
    parser.add_argument(
        "--checkpoint-minutes", type=float, help="also every N minutes (default 10)"
    )
    parser.add_argument("--log-every", type=int)
    parser.add_argument("--max-episode-steps", type=int, help="time limit, in agent steps")
    parser.add_argument(
        "--behaviour",
        metavar="KEY",
        help="act with this registered behaviour instead of the spec's (actor_critic, mppi, cem, "
        "goal_cem); refused when it cannot serve the model",
    )
    parser.add_argument(
        "--frame-stack",
        type=int,
        help="observations are the last K ones stacked along their first axis (frames [3K, H, W], "
        "vectors [K*D]; default 1: off)",
    )
    parser.add_argument(
        "--action-repeat",
        type=int,
        help="simulator steps per agent step (action held, rewards summed; default 1); "
        "--steps and the other step counts are agent steps",
    )
    parser.add_argument(
        "--num-envs",
        type=int,
        help="environments stepped at once (gymnasium.vector; env i seeded seed + i, its own "
        "replay stream; default 1); --steps and every step count are summed over them",
    )
    parser.add_argument(
        "--vector-mode",
        choices=["sync", "async"],
        help="sync: one process (default with --num-envs > 1); async: a worker process per env",
    )
    parser.add_argument("--grad-clip", type=float)
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the model's declared hot regions (inductor; first updates compile, "
        "cached in ~/.cache/worldflux/inductor; kept on --resume; docs/compile.md)",
    )
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also write TensorBoard scalars to RUN/tensorboard (tensorboard --logdir runs/)",
    )
    parser.add_argument("--eval-every", type=int, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, help="episodes per evaluation (default 1)")
    parser.add_argument(
        "--eval-model-every",
        type=int,
        help="env steps between evaluations of the model's predictions (error per open-loop "
        "horizon vs copy-last and mean) on held-out random episodes recorded into "
        "RUN/model_eval_data; logged as model_eval records (default 0: none)",
    )
    parser.add_argument(
        "--eval-model-episodes", type=int, help="held-out episodes for --eval-model-every (4)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="model config override (VALUE parsed as JSON when possible); repeatable",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["latent_dim=32", "simnorm=true"]`` -> ``{"latent_dim": 32, "simnorm": True}``.

    Raises:
        ConfigurationError: an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _default_out(model: str, source: str, seed: int) -> str:
    """``runs/<model>-<env or dataset>-s<seed>`` with path separators out of the model id."""
    safe = model.replace(":", "-").replace("/", "-")
    return f"runs/{safe}-{source.replace('/', '-')}-s{seed}"


def _run_offline(args: argparse.Namespace) -> int:
    # deferred: keeps "worldflux --help" cheap (offline training loads torch and the models)
    from worldflux.datasets.offline import OfflineConfig, train_offline

    if args.resume:
        raise ConfigurationError("--resume is not available with --dataset yet")
    if args.threads:
        import torch  # deferred: keeps "worldflux --help" cheap

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
    given = {field: getattr(args, name) for name, field in _FIELDS.items()}
    given = {k: v for k, v in given.items() if v is not None}
    if args.set is not None:
        given["model_overrides"] = parse_overrides(args.set)
    if args.model is not None:
        given["model"] = args.model
    return given


def _config(args: argparse.Namespace) -> tuple[Any, bool]:
    """The run to do, and whether it resumes one."""
    # deferred: keeps "worldflux --help" cheap (the loop loads torch and the models)
    from worldflux.training.loop import RUN_FILE, RunConfig

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

    # deferred: keeps "worldflux --help" cheap (the loop loads torch and the models)
    from worldflux.training.checkpoint import read_training_extra
    from worldflux.training.interrupts import TrainingInterrupted
    from worldflux.training.loop import checkpoint_dir, train

    config, resume = _config(args)
    if resume:
        # deferred: keeps "worldflux --help" cheap (torch.distributed)
        from worldflux.training.distributed import init_from_environment

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
