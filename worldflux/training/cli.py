"""``worldflux train MODEL --env ENV_ID --steps N [--out DIR] [--resume DIR] [--seed S]``.

Trains a registered model online on a Gymnasium environment (see worldflux.training.loop), with
a progress bar, metrics in ``DIR/metrics.jsonl`` and ``DIR/metrics.csv`` and a checkpoint in
``DIR/checkpoint``. Under ``torchrun`` every process trains a replica and gradients are averaged.
This module is the parser (cheap); worldflux.training.command runs it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from worldflux.core.exceptions import ConfigurationError

__all__ = ["FIELDS", "configure", "parse_overrides"]


#: CLI option -> RunConfig field, for the options a resumed run may also be given.
FIELDS = {
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
        help="model config override (VALUE parsed as JSON when possible), or objective.NAME=VALUE "
        "/ behaviour.NAME=VALUE for a param of the spec's objective or behaviour (e.g. "
        "objective.lr=3e-4); repeatable",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


#: ``--set`` prefixes that address a param of the spec's objective or behaviour
NESTED = ("objective", "behaviour")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["latent_dim=32", "simnorm=true", "objective.lr=3e-4"]`` -> ``{"latent_dim": 32,
    "simnorm": True, "objective": {"lr": 0.0003}}``: a ``objective.`` or ``behaviour.`` prefix
    overrides one param of the spec's objective or behaviour (the config fields of those names).

    Raises:
        ConfigurationError: an item without ``=``, or a dotted key with another prefix.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigurationError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        part, dot, name = key.partition(".")
        if not dot:
            out[key] = value
        elif part in NESTED and name and "." not in name:
            out.setdefault(part, {})[name] = value
        else:
            raise ConfigurationError(
                f"--set {item!r}: a dotted KEY must be objective.NAME or behaviour.NAME (a param "
                f"of the spec's objective or behaviour), found {key!r}"
            )
    return out
