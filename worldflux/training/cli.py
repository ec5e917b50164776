"""``worldflux train MODEL --env ENV_ID --steps N [--out DIR] [--resume DIR] [--seed S]``.

Trains a registered model online on a Gymnasium environment (see worldflux.training.loop), with
a progress bar, metrics in ``DIR/metrics.jsonl`` and ``DIR/metrics.csv`` and a checkpoint in
``DIR/checkpoint``. Under ``torchrun`` every process trains a replica and gradients are averaged.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from worldflux.core.exceptions import ConfigurationError

__all__ = ["configure", "parse_overrides", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldflux train`` (cheap: imports nothing heavy)."""
    parser.add_argument("model", help="model id or alias, e.g. tdmpc2-ci or tdmpc2:ci")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--env", help="Gymnasium id, e.g. Pendulum-v1")
    source.add_argument(
        "--dataset", metavar="PATH", help="train offline on an episode dataset (no environment)"
    )
    parser.add_argument(
        "--steps", type=int, required=True, help="environment steps (with --dataset: updates)"
    )
    parser.add_argument("--out", help="run directory (default runs/<model>-<env>-s<seed>)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR exactly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--obs", choices=["vector", "image"], default="vector", help="observation kind"
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, help="default: the model config's, else 32")
    parser.add_argument("--seq-len", type=int, help="default: horizon + 1, else 16")
    parser.add_argument("--seed-steps", type=int, help="random-action steps before training")
    parser.add_argument("--pretrain-updates", type=int, help="updates when seeding ends")
    parser.add_argument("--updates-per-step", type=float, default=1.0)
    parser.add_argument("--replay-capacity", type=int)
    parser.add_argument("--checkpoint-every", type=int, default=5000)
    parser.add_argument("--log-every", type=int, default=250)
    parser.add_argument("--max-episode-steps", type=int)
    parser.add_argument("--grad-clip", type=float)
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--eval-every", type=int, default=0, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=1)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
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


def _run_offline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from worldflux.datasets.offline import OfflineConfig, train_offline

    if args.resume:
        raise ConfigurationError("--resume is not available with --dataset yet")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    safe = args.model.replace(":", "-").replace("/", "-")
    out = args.out or f"runs/{safe}-{Path(args.dataset).name}-s{args.seed}"
    summary = train_offline(
        OfflineConfig(
            model=args.model,
            dataset=args.dataset,
            updates=args.steps,
            out=str(out),
            seed=args.seed,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            log_every=args.log_every,
            model_overrides=parse_overrides(args.set),
            grad_clip=args.grad_clip,
        )
    )
    last_val = f", validation loss {summary.val_losses[-1][1]:.4g}" if summary.val_losses else ""
    print(
        f"trained {args.model} on {args.dataset}: {summary.updates} updates "
        f"({summary.train_episodes} train / {summary.val_episodes} validation episodes), "
        f"loss {summary.first_loss:.4g} -> {summary.last_loss:.4g}{last_val}; "
        f"model in {summary.out}/model"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.dataset:
        return _run_offline(args)

    from worldflux.training.loop import RunConfig, train

    out = args.out or args.resume
    if out is None:
        safe = args.model.replace(":", "-").replace("/", "-")
        out = f"runs/{safe}-{args.env}-s{args.seed}"
    if args.resume and args.out and Path(args.out).resolve() != Path(args.resume).resolve():
        raise ConfigurationError(
            f"--resume {args.resume} and --out {args.out}: a resumed run continues in its own "
            "directory; give one of them"
        )
    config = RunConfig(
        model=args.model,
        env_id=args.env,
        steps=args.steps,
        out=str(out),
        seed=args.seed,
        obs_mode=args.obs,
        image_size=args.image_size,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        seed_steps=args.seed_steps,
        pretrain_updates=args.pretrain_updates,
        updates_per_step=args.updates_per_step,
        replay_capacity=args.replay_capacity,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        max_episode_steps=args.max_episode_steps,
        model_overrides=parse_overrides(args.set),
        grad_clip=args.grad_clip,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        progress=not args.no_progress,
        threads=args.threads,
    )
    summary = train(config, resume=args.resume is not None)
    last = summary.returns[-10:]
    mean = sum(last) / len(last) if last else float("nan")
    print(
        f"trained {config.model} on {config.env_id}: {summary.env_steps} env steps, "
        f"{summary.updates} updates, {summary.episodes} episodes, "
        f"mean return of the last {len(last)} episodes {mean:.1f}; run directory {summary.out}"
    )
    return 0
