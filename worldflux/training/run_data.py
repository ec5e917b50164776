"""What an online run is made of: its configuration, derived settings, loop state and result.

:class:`RunConfig` is what ``worldflux train`` parses; :class:`RunSettings` are the batch
shape, seed phase and replay capacity the run actually uses (defaults filled in from the model
and ``steps``); :class:`LoopState` is where the loop stands (counters, schedules, returns).
Every checkpoint saves the last two (``extra["derived"]``, ``extra["loop"]``) and a resume
restores them. :class:`RunSummary` is what :func:`worldflux.training.loop.train` returns;
:func:`make_env` and :func:`build_model` make the environment and the model a config names.
The loop itself is :class:`worldflux.training.online.OnlineRun`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from worldflux.core.exceptions import CheckpointError, ConfigurationError
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.factory import create_world_model
from worldflux.training.checkpoint import read_training_extra
from worldflux.training.distributed import DistributedContext
from worldflux.training.envs import EnvSpec, GymEnv, ObsMode
from worldflux.training.frame_stack import FrameStack
from worldflux.training.observations import check_layout, obs_keys_entries

__all__ = [
    "RUN_FILE",
    "LoopState",
    "RunConfig",
    "RunSettings",
    "RunSummary",
    "build_model",
    "check_resume_config",
    "checkpoint_dir",
    "make_env",
]

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
    "num_envs",
    "vector_mode",
)


@dataclass
class RunConfig:
    """One training run.

    Attributes:
        model: model id or alias (``tdmpc2-ci``, ``tdmpc2:ci``).
        env_id: Gymnasium id (``Pendulum-v1``).
        steps: total environment steps (per process), summed over the ``num_envs``
            environments; the run stops at the first vector step that reaches it.
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
        frame_stack: observations are the last ``frame_stack`` ones stacked along their first
            axis (:mod:`.frame_stack`; 1: off).
        behaviour: act with this registered behaviour instead of the spec's (``actor_critic``,
            ``mppi``, ``cem``, ``goal_cem``; refused when it cannot serve the model).
        model_overrides: config overrides for ``create_world_model``.
        grad_clip: see :class:`TrainerConfig`.
        eval_every: env steps between evaluations (0: none); each runs ``eval_episodes``
            episodes on a separate environment instance with ``eval_mode=True`` at the next
            episode end and logs an ``eval`` record (``eval_return``: their mean).
        eval_episodes: episodes per evaluation.
        eval_model_every: env steps between evaluations of the world model's predictions on
            held-out random-policy episodes (0: none; :mod:`.model_eval`), each logged as a
            ``model_eval`` record at the next episode end.
        eval_model_episodes: held-out episodes recorded for ``eval_model_every``.
        final_eval: evaluate ``eval_episodes`` episodes at the end of the run (unless an
            evaluation just ran at that step).
        progress: draw the progress bar.
        threads: torch intra-op threads (None keeps torch's default; 1 is fastest for small
            models on a busy machine).
        tensorboard: also write every record as TensorBoard scalars to ``out/tensorboard``
            (``pip install "worldflux[tensorboard]"``).
        num_envs: environments stepped at once (``gymnasium.vector``; environment ``i`` seeded
            with the process's seed + ``i``), each its own replay stream.
        vector_mode: ``"sync"`` (one process) or ``"async"`` (a worker per environment); None
            means ``"sync"`` for ``num_envs > 1`` and the plain one-environment loop for 1 (which
            ``num_envs=1, vector_mode="sync"`` reproduces bitwise).
        compile: compile the model's declared regions (``--compile``, docs/compile.md); kept
            on resume; compile time is reported apart from update time.
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
    frame_stack: int = 1
    behaviour: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    grad_clip: float | None = None
    eval_every: int = 0
    eval_episodes: int = 1
    eval_model_every: int = 0
    eval_model_episodes: int = 4
    final_eval: bool = True
    progress: bool = True
    threads: int | None = None
    tensorboard: bool = False
    num_envs: int = 1
    vector_mode: str | None = None
    compile: bool = False

    @property
    def vectorized(self) -> bool:
        """Whether the run collects through a vector environment (:mod:`.vector_env`)."""
        return self.num_envs > 1 or self.vector_mode is not None

    def check_vector(self) -> None:
        """Raise ConfigurationError for a bad ``num_envs`` / ``vector_mode``."""
        if type(self.num_envs) is not int or self.num_envs < 1:
            raise ConfigurationError(f"num_envs: expected an integer >= 1, found {self.num_envs!r}")
        if self.vector_mode not in (None, "sync", "async"):
            raise ConfigurationError(
                f"vector_mode: expected 'sync' or 'async', found {self.vector_mode!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunSettings:
    """The settings a run uses, :class:`RunConfig`'s defaults filled in (``extra["derived"]`` of
    a checkpoint). A resumed run keeps the saved ones, since the defaults depend on ``steps``,
    which may change; only a default ``replay_capacity`` grows (see ``OnlineRun``).

    Attributes:
        batch_size: replay windows per update.
        seq_len: steps per window.
        seed_steps: random-action steps before updates start (at least ``seq_len + 1``).
        pretrain_updates: updates run once at env step ``seed_steps``.
        replay_capacity: replay buffer rows.
    """

    batch_size: int
    seq_len: int
    seed_steps: int
    pretrain_updates: int
    replay_capacity: int

    @classmethod
    def derive(cls, config: RunConfig, model: WorldModel) -> RunSettings:
        """The config's values, and for those it leaves unset the model's or the defaults."""
        batch_size = config.batch_size or int(getattr(model.config, "batch_size", 32) or 32)
        seq_len = config.seq_len or _default_seq_len(model)
        seed_steps = (
            config.seed_steps if config.seed_steps is not None else min(1000, config.steps // 10)
        )
        seed_steps = max(seed_steps, seq_len + 1)
        return cls(
            batch_size=batch_size,
            seq_len=seq_len,
            seed_steps=seed_steps,
            pretrain_updates=(
                config.pretrain_updates if config.pretrain_updates is not None else seed_steps
            ),
            replay_capacity=_round_up(
                config.replay_capacity or min(1_000_000, max(2 * config.steps, 1000)),
                config.num_envs,  # one equal replay segment per environment
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint form: the five fields, in declaration order."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> RunSettings:
        """The settings of a checkpoint (validated by ``check_resume_state`` beforehand)."""
        return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls)})


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _default_seq_len(model: WorldModel) -> int:
    horizon = getattr(model.config, "horizon", None)
    if isinstance(horizon, int):
        return horizon + 1
    seq_len = getattr(model.config, "seq_len", None)
    return seq_len if isinstance(seq_len, int) else 16


@dataclass
class LoopState:
    """Where the loop stands: ``extra["loop"]`` of every checkpoint, restored on resume.

    Attributes:
        env_step: agent steps taken by this process.
        episode: episodes finished.
        episode_open: an episode is in progress (its rows are in the replay buffer).
        episode_return: reward summed over the current episode (between episodes: the last).
        episode_length: agent steps of the current episode (between episodes: the last).
        update_credit: the fraction of an update owed (``updates_per_step`` < 1 accrues here).
        next_checkpoint: the first episode end at or after this env step checkpoints.
        next_eval: the first episode end at or after this env step evaluates.
        returns: the return of every finished episode.
        eval_returns: the mean return of every evaluation.
        last_eval_step: the env step of the latest evaluation; None before the first, and
            then left out of :meth:`to_dict` (checkpoints keep the layout they always had).
        last_model_eval_step: the same for the latest evaluation of the model's predictions.
    """

    env_step: int
    episode: int
    episode_open: bool
    episode_return: float
    episode_length: int
    update_credit: float
    next_checkpoint: int
    next_eval: int
    returns: list[float]
    eval_returns: list[float]
    last_eval_step: int | None = None
    last_model_eval_step: int | None = None

    @classmethod
    def start(cls, config: RunConfig) -> LoopState:
        """A fresh run's state: nothing done, the first checkpoint and evaluation scheduled."""
        return cls(
            env_step=0,
            episode=0,
            episode_open=False,
            episode_return=0.0,
            episode_length=0,
            update_credit=0.0,
            next_checkpoint=config.checkpoint_every,
            next_eval=config.eval_every,
            returns=[],
            eval_returns=[],
        )

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint form: the fields in declaration order, ``last_eval_step`` only once
        set."""
        state = dataclasses.asdict(self)
        for key in ("last_eval_step", "last_model_eval_step"):
            if state[key] is None:
                del state[key]
        return state

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> LoopState:
        """The state of a checkpoint (validated by ``check_resume_state`` beforehand; keys it
        lacks keep their defaults, keys this class does not know are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in names})
        state.returns, state.eval_returns = list(state.returns), list(state.eval_returns)
        return state


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
    actor: str = "random"  # who acts after the seed steps: "planner", "policy", "goal", "random"
    behaviour: str | None = None  # the spec's declared behaviour (actor_critic, mppi, ...)
    compile: str | None = None  # with --compile: what was compiled, in how long (one line)


class SizedEnv(Protocol):
    """What a model is built for: an environment's spec and time limit (one env or a vector)."""

    spec: EnvSpec
    time_limit: int | None


def build_model(config: RunConfig, env: SizedEnv) -> WorldModel:
    """The model ``config.model`` names, sized to ``env`` (``episode_length`` from its time
    limit when the model's config has that field and the overrides leave it unset; for dict
    observations ``obs_keys`` from the environment's layout, unless overridden).

    Raises:
        ConfigurationError: the environment has dict observations and the model's contract does
            not take exactly its keys and shapes (naming the key, expected and found shape).
    """
    spec = env.spec
    overrides = dict(config.model_overrides)
    model_type, _ = WorldModelRegistry.resolve(config.model)
    fields = WorldModelRegistry.get_config_class(model_type).model_fields
    if "episode_length" in fields and "episode_length" not in overrides and env.time_limit:
        overrides["episode_length"] = env.time_limit  # e.g. TD-MPC2's discount heuristic
    layout = spec.obs_layout
    if layout is not None and "obs_keys" in fields and "obs_keys" not in overrides:
        overrides["obs_keys"] = obs_keys_entries(layout)
    model = create_world_model(
        config.model,
        obs_shape=spec.obs_shape,
        action_dim=spec.action_dim,
        action_type=spec.action_type,
        **overrides,
    )
    if layout is not None:
        check_layout(model.bound_contract().observation, layout, config.model, config.env_id)
    if config.behaviour:
        model.swap_component("behaviour", config.behaviour)
    return model


def make_env(config: RunConfig, seed: int) -> GymEnv:
    """The run's environment (the evaluation one too, with another seed), its observations
    stacked over ``config.frame_stack`` steps when that is > 1."""
    env = GymEnv(
        config.env_id,
        obs_mode=config.obs_mode,
        image_size=config.image_size,
        max_episode_steps=config.max_episode_steps,
        action_repeat=config.action_repeat,
        seed=seed,
    )
    if config.frame_stack == 1:
        return env
    stacked: Any = FrameStack(env, config.frame_stack)  # a GymEnv to the loop
    return cast(GymEnv, stacked)


def checkpoint_dir(out: Path, dist: DistributedContext) -> Path:
    """``out/checkpoint`` (one process) or ``out/checkpoint-rank<r>``."""
    return out / ("checkpoint" if not dist.enabled else f"checkpoint-rank{dist.rank}")


def check_resume_config(config: RunConfig, ckpt: Path) -> None:
    """Refuse to resume with another model, environment, observation mode or seed."""
    saved = read_training_extra(ckpt).get("run")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{ckpt}: holds no run configuration (field 'extra.run')")
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    for key in _FIXED_ON_RESUME:
        if saved.get(key, defaults.get(key)) != getattr(config, key):
            raise CheckpointError(
                f"{ckpt}: the run used {key}={saved.get(key)!r}, the resume asks for "
                f"{getattr(config, key)!r}"
            )
