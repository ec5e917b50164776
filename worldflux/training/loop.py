"""The online training loop behind ``worldflux train``: collect, replay, update, log, checkpoint.

One environment step at a time: act (random for the first ``seed_steps``, then the model's
planner or policy), store the transition, and run ``updates_per_step`` Trainer updates on
``[batch_size, seq_len]`` windows from the replay buffer (plus ``pretrain_updates`` once the seed
phase ends, as TD-MPC2 does). Checkpoints are written at episode ends every
``checkpoint_every`` env steps and when the run stops; resuming from an episode-end checkpoint
continues bitwise exactly on CPU. A run that stopped mid-episode resumes by truncating that
episode and starting a new one.

Several processes (``torchrun``) each collect their own experience with their own seeds and
average gradients; rank 0 logs, every rank checkpoints its own state (``checkpoint-rank<r>/``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldflux.core.exceptions import CheckpointError, ConfigurationError
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.runtime import tune_cpu_allocator
from worldflux.training.actors import RandomActor, make_actor
from worldflux.training.checkpoint import (
    load_training_checkpoint,
    read_training_extra,
    save_training_checkpoint,
)
from worldflux.training.distributed import DistributedContext, init_from_environment
from worldflux.training.envs import GymEnv, ObsMode
from worldflux.training.errors import TrainingError
from worldflux.training.interrupts import StopRequest, TrainingInterrupted
from worldflux.training.metrics import MetricsLogger, Progress
from worldflux.training.replay import ReplayBuffer
from worldflux.training.resume_state import check_resume_state
from worldflux.training.trainer import Trainer, TrainerConfig

__all__ = ["RUN_FILE", "RunConfig", "RunSummary", "checkpoint_dir", "train"]

RUN_FILE = "run.json"
#: fields that must match when resuming (the rest, such as ``steps``, may change)
_FIXED_ON_RESUME = (
    "model",
    "env_id",
    "obs_mode",
    "image_size",
    "max_episode_steps",
    "action_repeat",
    "seed",
)


@dataclass
class RunConfig:
    """One training run.

    Attributes:
        model: model id or alias (``tdmpc2-ci``, ``tdmpc2:ci``).
        env_id: Gymnasium id (``Pendulum-v1``).
        steps: total environment steps (per process).
        out: run directory (metrics, run.json, checkpoint/).
        seed: seeds torch, numpy, python, the environment and the replay sampler.
        obs_mode: ``"vector"`` or ``"image"`` (rendered ``image_size`` frames).
        batch_size, seq_len: replay windows per update; default: the model config's
            ``batch_size`` (else 32) and ``horizon + 1`` (else ``seq_len``, else 16).
        seed_steps: random-action steps before updates start (default ``min(1000, steps // 10)``).
        pretrain_updates: updates run once when the seed phase ends (default ``seed_steps``).
        updates_per_step: updates per environment step after the seed phase (may be < 1).
        replay_capacity: rows kept (default: enough for the whole run, at most 1M).
        checkpoint_every: env steps between checkpoints (taken at the next episode end).
        checkpoint_minutes: also checkpoint at the next episode end once this many minutes have
            passed since the last checkpoint (0: off); the run's end always checkpoints.
        log_every: env steps between ``train`` records.
        max_episode_steps: override the environment's time limit (in agent steps).
        action_repeat: simulator steps per agent step (the action is held and rewards summed);
            ``steps``, ``seed_steps``, ``eval_every`` and the other step counts are agent steps.
        model_overrides: config overrides for ``create_world_model``.
        grad_clip: see :class:`TrainerConfig`.
        eval_every: env steps between evaluations (0: none); each runs ``eval_episodes``
            episodes on a separate environment instance with ``eval_mode=True`` at the next
            episode end and logs an ``eval`` record (``eval_return``: their mean).
        eval_episodes: episodes per evaluation.
        final_eval: evaluate ``eval_episodes`` episodes at the end of the run (unless an
            evaluation just ran at that step).
        progress: draw the progress bar.
        threads: torch intra-op threads (None keeps torch's default; 1 is fastest for small
            models on a busy machine).
    """

    model: str
    env_id: str
    steps: int
    out: str = "runs/run"
    seed: int = 0
    obs_mode: ObsMode = "vector"
    image_size: int = 64
    batch_size: int | None = None
    seq_len: int | None = None
    seed_steps: int | None = None
    pretrain_updates: int | None = None
    updates_per_step: float = 1.0
    replay_capacity: int | None = None
    checkpoint_every: int = 5000
    checkpoint_minutes: float = 10.0
    log_every: int = 250
    max_episode_steps: int | None = None
    action_repeat: int = 1
    model_overrides: dict[str, Any] = field(default_factory=dict)
    grad_clip: float | None = None
    eval_every: int = 0
    eval_episodes: int = 1
    final_eval: bool = True
    progress: bool = True
    threads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunSummary:
    """What :func:`train` returns."""

    env_steps: int
    updates: int
    episodes: int
    returns: list[float]
    eval_returns: list[float]
    out: Path
    model: WorldModel
    actor: str = "random"  # who acts after the seed steps: "planner", "policy" or "random"


def checkpoint_dir(out: Path, dist: DistributedContext) -> Path:
    """``out/checkpoint`` (one process) or ``out/checkpoint-rank<r>``."""
    return out / ("checkpoint" if not dist.enabled else f"checkpoint-rank{dist.rank}")


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Run a block without moving torch's, numpy's or Python's global random streams."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng():
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _default_seq_len(model: WorldModel) -> int:
    horizon = getattr(model.config, "horizon", None)
    if isinstance(horizon, int):
        return horizon + 1
    seq_len = getattr(model.config, "seq_len", None)
    return seq_len if isinstance(seq_len, int) else 16


def _build_model(config: RunConfig, env: GymEnv) -> WorldModel:
    from worldflux.factory import create_world_model

    spec = env.spec
    overrides = dict(config.model_overrides)
    model_type, _ = WorldModelRegistry.resolve(config.model)
    fields = WorldModelRegistry.get_config_class(model_type).model_fields
    if "episode_length" in fields and "episode_length" not in overrides and env.time_limit:
        overrides["episode_length"] = env.time_limit  # e.g. TD-MPC2's discount heuristic
    return create_world_model(
        config.model,
        obs_shape=spec.obs_shape,
        action_dim=spec.action_dim,
        action_type=spec.action_type,
        **overrides,
    )


def _check_resume(config: RunConfig, ckpt: Path) -> None:
    """Refuse to resume with another model, environment, observation mode or seed."""
    path = ckpt
    saved = read_training_extra(ckpt).get("run")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: holds no run configuration (field 'extra.run')")
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    for key in _FIXED_ON_RESUME:
        if saved.get(key, defaults.get(key)) != getattr(config, key):
            raise CheckpointError(
                f"{path}: the run used {key}={saved.get(key)!r}, the resume asks for "
                f"{getattr(config, key)!r}"
            )


def train(config: RunConfig, resume: bool = False) -> RunSummary:
    """Run (or resume, from ``config.out``'s checkpoint) an online training run.

    Applies :func:`worldflux.runtime.tune_cpu_allocator` to the process first
    (``WORLDFLUX_ALLOCATOR_TUNING=0`` opts out).

    Raises:
        ConfigurationError: unknown model or environment, bad options.
        CheckpointError: resuming from a missing or mismatching checkpoint.
        NonFiniteError: a NaN/inf loss or gradient (the last checkpoint stays valid).
    """
    if config.steps < 1:
        raise ConfigurationError(f"steps: expected >= 1, found {config.steps}")
    if config.threads is not None:
        torch.set_num_threads(max(1, int(config.threads)))
    tune_cpu_allocator()  # a long-running job: reuse freed activations (worldflux.runtime)
    dist = init_from_environment()
    out = Path(config.out)
    ckpt = checkpoint_dir(out, dist)
    if resume:
        _check_resume(config, ckpt)
    rank_seed = config.seed + 1000 * dist.rank
    _seed_everything(config.seed)  # identical model initialisation on every rank
    env = GymEnv(
        config.env_id,
        obs_mode=config.obs_mode,
        image_size=config.image_size,
        max_episode_steps=config.max_episode_steps,
        action_repeat=config.action_repeat,
        seed=rank_seed,
    )
    model = _build_model(config, env)
    contract = model.bound_contract()
    normalize = not any(s.dtype == "uint8" for s in contract.observation.values())
    trainer = Trainer(model, TrainerConfig(grad_clip=config.grad_clip), dist=dist)
    _seed_everything(rank_seed)
    spec = env.spec
    action_low, action_high = contract.action.low, contract.action.high
    env.action_low, env.action_high = action_low, action_high
    random_actor = RandomActor(
        spec.action_dim, spec.action_type, action_low, action_high, seed=rank_seed
    )
    actor = make_actor(model, normalize_images=normalize)
    batch_size = config.batch_size or int(getattr(model.config, "batch_size", 32) or 32)
    seq_len = config.seq_len or _default_seq_len(model)
    seed_steps = (
        config.seed_steps if config.seed_steps is not None else min(1000, config.steps // 10)
    )
    seed_steps = max(seed_steps, seq_len + 1)
    pretrain = config.pretrain_updates if config.pretrain_updates is not None else seed_steps
    capacity = config.replay_capacity or min(1_000_000, max(2 * config.steps, 1000))
    derived = {
        "batch_size": batch_size,
        "seq_len": seq_len,
        "seed_steps": seed_steps,
        "pretrain_updates": pretrain,
        "replay_capacity": capacity,
    }

    loop: dict[str, Any] = {
        "env_step": 0,
        "episode": 0,
        "episode_open": False,
        "episode_return": 0.0,
        "episode_length": 0,
        "update_credit": 0.0,
        "next_checkpoint": config.checkpoint_every,
        "next_eval": config.eval_every,
        "returns": [],
        "eval_returns": [],
    }
    eval_envs: list[GymEnv | None] = [None]

    def eval_env() -> GymEnv:
        if eval_envs[0] is None:
            made = GymEnv(
                config.env_id,
                obs_mode=config.obs_mode,
                image_size=config.image_size,
                max_episode_steps=config.max_episode_steps,
                action_repeat=config.action_repeat,
                seed=rank_seed + 500,
            )
            made.action_low, made.action_high = action_low, action_high
            eval_envs[0] = made
        result = eval_envs[0]
        assert result is not None
        return result

    def evaluate() -> None:
        """``eval_episodes`` episodes with ``eval_mode=True`` (the random actor before the
        model can act); logs their mean return."""
        env_e = eval_env()
        returns = []
        for _ in range(config.eval_episodes):
            obs_e, done, total, first = env_e.reset(), False, 0.0, True
            if actor is not None:
                actor.reset()
            while not done:
                if actor is None or loop["env_step"] < seed_steps:
                    act = random_actor.act(obs_e, first, eval_mode=True)
                else:
                    act = actor.act(obs_e, first, eval_mode=True)
                obs_e, rew, term, trunc = env_e.step(act)
                total, done, first = total + rew, term or trunc, False
            returns.append(total)
        mean = sum(returns) / len(returns)
        loop["eval_returns"].append(mean)
        loop["last_eval_step"] = loop["env_step"]
        record("eval", {"eval_return": mean, "eval_returns": returns})

    if resume:
        check_resume_state(read_training_extra(ckpt), ckpt)  # before anything is restored
        loaded = load_training_checkpoint(ckpt, trainer)
        if loaded.replay is None:
            raise CheckpointError(f"{ckpt}: holds no replay buffer; cannot resume collection")
        replay = loaded.replay
        loop.update(loaded.extra["loop"])
        derived = dict(loaded.extra["derived"])  # defaults may depend on `steps`, which may change
        batch_size, seq_len = derived["batch_size"], derived["seq_len"]
        seed_steps, pretrain = derived["seed_steps"], derived["pretrain_updates"]
        env.set_rng_state(loaded.extra["env"])
        random_actor.set_state(loaded.extra["random_actor"])
        if loaded.extra.get("eval_env") is not None:
            eval_env().set_rng_state(loaded.extra["eval_env"])
        if loop["episode_open"]:
            replay.episode_open = False  # the open episode cannot be continued: start afresh
            loop["episode_open"] = False
        if config.replay_capacity is None and capacity > replay.capacity:
            replay = replay.grown(capacity)  # a longer run keeps every row (default capacity)
            derived["replay_capacity"] = capacity
    else:
        replay = ReplayBuffer(
            capacity,
            spec.obs_shape,
            spec.action_dim,
            spec.action_type,
            obs_dtype=torch.uint8 if spec.obs_dtype == "uint8" else torch.float32,
            seed=rank_seed,
        )
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / RUN_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    logger = (
        MetricsLogger(out, resume_step=loop["env_step"] if resume else None)
        if dist.is_main
        else None
    )
    progress = Progress(config.steps, enabled=config.progress and dist.is_main)
    start = time.perf_counter()
    window_start, window_updates, window_steps = time.perf_counter(), 0, 0
    last_metrics: dict[str, float] = {}
    obs: np.ndarray | None = None

    def save() -> None:
        extra = {
            "eval_env": None if eval_envs[0] is None else eval_envs[0].rng_state(),
            "loop": loop,
            "env": env.rng_state(),
            "random_actor": random_actor.state(),
            "derived": derived,
            "run": config.to_dict(),
        }
        save_training_checkpoint(ckpt, trainer, replay, extra)

    def record(kind: str, values: dict[str, Any]) -> None:
        if logger is not None:
            logger.log(
                {
                    "kind": kind,
                    "time_s": round(time.perf_counter() - start, 3),
                    "env_step": loop["env_step"],
                    "update": trainer.step,
                    "episode": loop["episode"],
                    **values,
                }
            )

    sampleable = [False]
    stop = StopRequest()
    last_save = [time.perf_counter()]

    def checkpoint_due() -> bool:
        if loop["env_step"] >= loop["next_checkpoint"]:
            return True
        minutes = config.checkpoint_minutes
        return bool(minutes) and time.perf_counter() - last_save[0] >= 60.0 * minutes

    # an objective that resets its carry at is_first (DreamerV3) trains on windows across episode
    # boundaries, as the official replay does: otherwise episodes shorter than seq_len (early
    # failures) would never be trained on
    cross = bool(getattr(trainer.objective, "crosses_episodes", False))

    def update(n: int) -> None:
        """``n`` updates; none until some episode holds ``seq_len`` steps (short episodes), or,
        for objectives with ``crosses_episodes``, until the buffer holds ``seq_len`` rows."""
        nonlocal last_metrics, window_updates
        try:
            if n > 0 and not sampleable[0]:
                # collective: ranks whose episodes differ in length must still agree
                sampleable[0] = dist.all_true(replay.num_windows(seq_len, cross) > 0)
                if not sampleable[0]:
                    return
            for _ in range(n):
                batch = replay.sample(
                    batch_size, seq_len, normalize_images=normalize, cross_episodes=cross
                )
                last_metrics = trainer.train_step(batch).metrics
                window_updates += 1
        except RuntimeError as error:
            if not dist.enabled:
                raise
            raise TrainingError(  # a collective timed out or another rank died
                f"rank {dist.rank} of {dist.world_size}: a collective failed at env step "
                f"{loop['env_step']}, update {trainer.step}: {' '.join(str(error).split())[:300]}"
            ) from error

    stop.install()  # Ctrl-C / SIGTERM: finish this episode, checkpoint, exit (resumable)
    try:
        while loop["env_step"] < config.steps:
            if not loop["episode_open"]:
                obs = env.reset()
                replay.begin_episode(obs)
                if actor is not None:
                    actor.reset()
                loop.update(episode_open=True, episode_return=0.0, episode_length=0)
            assert obs is not None
            is_first = loop["episode_length"] == 0
            if actor is None or loop["env_step"] < seed_steps:
                action = random_actor.act(obs, is_first)
            else:
                action = actor.act(obs, is_first)
            obs, reward, terminated, truncated = env.step(action)
            replay.add(action, reward, terminated, truncated, obs)
            loop["env_step"] += 1
            loop["episode_return"] += reward
            loop["episode_length"] += 1
            window_steps += 1
            if loop["env_step"] == seed_steps:
                update(pretrain)
            elif loop["env_step"] > seed_steps:
                loop["update_credit"] += config.updates_per_step
                whole = int(loop["update_credit"])
                loop["update_credit"] -= whole
                update(whole)
            if terminated or truncated:
                loop["episode"] += 1
                loop["episode_open"] = False
                loop["returns"].append(loop["episode_return"])
                record(
                    "episode",
                    {
                        "episode_return": loop["episode_return"],
                        "episode_length": loop["episode_length"],
                    },
                )
                if config.eval_every and loop["env_step"] >= loop["next_eval"]:
                    evaluate()
                    while loop["next_eval"] <= loop["env_step"]:
                        loop["next_eval"] += config.eval_every
                if checkpoint_due() or stop.requested:
                    save()
                    last_save[0] = time.perf_counter()
                    while loop["next_checkpoint"] <= loop["env_step"]:
                        loop["next_checkpoint"] += config.checkpoint_every
                if stop.requested:
                    raise TrainingInterrupted(loop["env_step"], out, stop.signal_name)
            if loop["env_step"] % config.log_every == 0 or loop["env_step"] == config.steps:
                now = time.perf_counter()
                elapsed = max(now - window_start, 1e-9)
                rates = {
                    "updates_per_s": window_updates / elapsed,
                    "env_steps_per_s": window_steps / elapsed,
                }
                if last_metrics:
                    record("train", {**last_metrics, **rates})
                window_start, window_updates, window_steps = now, 0, 0
                fields = {"upd/s": rates["updates_per_s"]}
                fields.update({k: v for k, v in last_metrics.items() if "loss" in k})
                if loop["returns"]:
                    fields["return"] = loop["returns"][-1]
                if loop["eval_returns"]:
                    fields["eval"] = loop["eval_returns"][-1]
                progress.update(loop["env_step"], fields, force=True)
            else:
                progress.update(loop["env_step"], {"return": loop["episode_return"]})
        save()
        just_evaluated = loop.get("last_eval_step") == loop["env_step"]
        if config.final_eval and config.eval_episodes > 0 and not just_evaluated:
            # every run ends with evidence of how the agent acts; after the checkpoint and with
            # the random streams restored, so a resumed run continues exactly as if it had not
            with isolated_rng():
                evaluate()
    except KeyboardInterrupt:
        # a second Ctrl-C: keep the last complete checkpoint; resume redoes what came after it
        raise
    finally:
        stop.restore()
        progress.close()
        if logger is not None:
            logger.close()
        env.close()
        if eval_envs[0] is not None:
            eval_envs[0].close()
    dist.barrier()
    if dist.enabled and not dist.all_equal(float(sum(float(p.sum()) for p in model.parameters()))):
        raise TrainingError("replicas diverged: parameters differ across processes")
    return RunSummary(
        env_steps=loop["env_step"],
        updates=trainer.step,
        episodes=loop["episode"],
        returns=list(loop["returns"]),
        eval_returns=list(loop["eval_returns"]),
        out=out,
        model=model,
        actor=actor.name if actor is not None else "random",
    )
