"""``worldflux dataset record``: run a policy in a Gymnasium environment and write episodes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldflux.core.exceptions import WorldFluxError
from worldflux.datasets.format import (
    DatasetError,
    DatasetMeta,
    Episode,
    EpisodeDataset,
    write_episode,
    write_meta,
)
from worldflux.datasets.minari import MinariDataset, write_minari
from worldflux.training.actors import RandomActor, make_actor
from worldflux.training.checkpoint import load_run_model
from worldflux.training.envs import GymEnv

__all__ = ["record_dataset"]


def _episode(env: Any, actor: Any, max_steps: int | None) -> Episode:
    obs = [env.reset()]
    actor.reset()
    actions: list[np.ndarray] = []
    rewards: list[float] = []
    terms: list[bool] = []
    truncs: list[bool] = []
    while True:
        action = np.asarray(actor.act(obs[-1], len(obs) == 1))
        next_obs, reward, terminated, truncated = env.step(action)
        if max_steps is not None and len(rewards) + 1 >= max_steps:
            truncated = truncated or not terminated
        obs.append(next_obs)
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        if terminated or truncated:
            break
    discrete = actions[0].ndim == 0
    return Episode(
        observations=np.stack(obs),
        actions=np.asarray(actions, dtype=np.int64 if discrete else np.float32),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminations=np.asarray(terms, dtype=bool),
        truncations=np.asarray(truncs, dtype=bool),
    )


class _EvalModeActor:
    """A trained model's actor that always acts in eval mode (its mode action / plan mean)."""

    def __init__(self, actor: Any, eval_mode: bool) -> None:
        self.actor, self.eval_mode = actor, eval_mode

    def reset(self) -> None:
        self.actor.reset()

    def act(self, obs: np.ndarray, is_first: bool) -> Any:
        return self.actor.act(obs, is_first, eval_mode=self.eval_mode)


def _trained_actor(run: str, env: Any, eval_actions: bool) -> _EvalModeActor:
    """The acting model of the run directory or checkpoint ``run``, checked against ``env``."""
    if not Path(run).exists():
        raise DatasetError(f"--policy {run!r}: expected 'random' or a run directory")
    try:
        model = load_run_model(run)
    except WorldFluxError as error:
        raise DatasetError(f"--policy {run}: {error.message}") from None
    spec, config = env.spec, model.config
    mine = (tuple(spec.obs_shape), int(spec.action_dim), spec.action_type)
    theirs = (tuple(config.obs_shape), int(config.action_dim), config.action_type)
    if mine != theirs:
        raise DatasetError(
            f"--policy {run}: the model was trained for observations {list(theirs[0])}, "
            f"{theirs[2]} actions of size {theirs[1]}; {env.env_id} has {list(mine[0])}, "
            f"{mine[2]} actions of size {mine[1]}"
        )
    contract = model.bound_contract()
    env.action_low, env.action_high = contract.action.low, contract.action.high
    normalize = not any(s.dtype == "uint8" for s in contract.observation.values())
    actor = make_actor(model, normalize_images=normalize)
    if actor is None:
        raise DatasetError(
            f"--policy {run}: {model.model_type} cannot act (it has no planner or policy)"
        )
    return _EvalModeActor(actor, eval_actions)


def record_dataset(
    env_id: str,
    out: str | Path,
    episodes: int,
    *,
    policy: str = "random",
    seed: int = 0,
    obs_mode: str = "vector",
    image_size: int = 64,
    max_episode_steps: int | None = None,
    overwrite: bool = False,
    eval_actions: bool = True,
    format: str = "npz",
) -> EpisodeDataset | MinariDataset:
    """Record ``episodes`` episodes of ``env_id`` under ``policy`` into ``out``: ``"random"``
    (uniform actions), or a run directory / checkpoint whose trained model acts (its planner or
    policy, in eval mode; ``eval_actions=False`` samples from it instead).

    ``format``: ``"npz"`` (worldflux's episode directory) or ``"minari"`` (a Minari dataset in
    HDF5 storage, readable by ``minari.load_dataset`` too; see :func:`write_minari`).

    The dataset becomes visible only when complete: episodes and ``dataset.json`` are written to
    a temporary sibling directory that is renamed into place at the end.

    Raises:
        DatasetError: ``out`` exists (without ``overwrite``), a policy that is neither
            ``random`` nor a loadable run, a model that cannot act, or one whose observation or
            action space differs from the environment's.
    """
    if format not in ("npz", "minari"):
        raise DatasetError(f"--format: expected 'npz' or 'minari', found {format!r}")
    target = Path(out)
    if target.exists() and not overwrite:
        raise DatasetError(f"{target}: already exists (pass --overwrite to replace it)")
    if episodes < 1:
        raise DatasetError(f"--episodes: expected at least 1, found {episodes}")
    env = GymEnv(env_id, obs_mode=obs_mode, image_size=image_size, seed=seed)  # type: ignore[arg-type]
    spec = env.spec
    actor: Any = RandomActor(spec.action_dim, spec.action_type, seed=seed)
    if policy != "random":
        try:
            actor = _trained_actor(policy, env, eval_actions)
        except BaseException:
            env.close()
            raise
    staging = target.with_name(f".{target.name}.recording")
    shutil.rmtree(staging, ignore_errors=True)
    steps = 0
    try:
        # a trained policy may sample (MPPI noise, stochastic latents): seeded, and the caller's
        # torch RNG left as it was
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for index in range(episodes):
                episode = _episode(env, actor, max_episode_steps)
                write_episode(staging, index, episode)
                steps += episode.length
    finally:
        env.close()
    meta = DatasetMeta(
        observation={"shape": list(spec.obs_shape), "dtype": spec.obs_dtype},
        action={"type": spec.action_type, "dim": int(spec.action_dim)},
        episodes=episodes,
        steps=steps,
        env=env_id,
        policy=policy,
        seed=seed,
    )
    write_meta(staging, meta)
    if target.exists():
        shutil.rmtree(target)
    if format == "minari":
        try:
            return write_minari(EpisodeDataset(staging), target, f"worldflux/{target.name}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    staging.rename(target)
    return EpisodeDataset(target)
