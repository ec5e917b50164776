"""``worldflux dataset record``: run a policy in a Gymnasium environment and write episodes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from worldflux.datasets.format import (
    DatasetError,
    DatasetMeta,
    Episode,
    EpisodeDataset,
    write_episode,
    write_meta,
)

__all__ = ["record_dataset"]


def _episode(env: Any, actor: Any, max_steps: int | None) -> Episode:
    obs = [env.reset()]
    actor.reset()
    actions: list[np.ndarray] = []
    rewards: list[float] = []
    terms: list[bool] = []
    truncs: list[bool] = []
    while True:
        action = np.asarray(actor.act(obs[-1], is_first=len(obs) == 1))
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
) -> EpisodeDataset:
    """Record ``episodes`` episodes of ``env_id`` under ``policy`` (``random``) into ``out``.

    The dataset becomes visible only when complete: episodes and ``dataset.json`` are written to
    a temporary sibling directory that is renamed into place at the end.

    Raises:
        DatasetError: ``out`` exists (without ``overwrite``), or an unknown policy.
    """
    from worldflux.training.actors import RandomActor
    from worldflux.training.envs import GymEnv

    target = Path(out)
    if target.exists() and not overwrite:
        raise DatasetError(f"{target}: already exists (pass --overwrite to replace it)")
    if policy != "random":
        raise DatasetError(f"--policy {policy!r}: this version records with 'random' only")
    if episodes < 1:
        raise DatasetError(f"--episodes: expected at least 1, found {episodes}")
    env = GymEnv(env_id, obs_mode=obs_mode, image_size=image_size, seed=seed)  # type: ignore[arg-type]
    spec = env.spec
    actor = RandomActor(spec.action_dim, spec.action_type, seed=seed)
    staging = target.with_name(f".{target.name}.recording")
    shutil.rmtree(staging, ignore_errors=True)
    steps = 0
    try:
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
    staging.rename(target)
    return EpisodeDataset(target)
