"""Collection from ``N`` environments at once: :class:`VectorRun` (``--num-envs N``).

A :class:`~worldflux.training.online.OnlineRun` whose collection hooks use a
:class:`~worldflux.training.vector_env.VectorEnv`. One :meth:`VectorRun.step` is one *vector
step*: reset the environments whose episode ended (autoreset is disabled, see
:mod:`worldflux.training.vector_env`), act for all ``N`` at once (random actors ``i`` seeded
``seed + i`` during the seed phase, then :class:`~worldflux.training.vector_actors.BatchActor`),
step them together, then for each environment in index order: store its transition in its own
replay stream (:class:`~worldflux.training.replay_streams.StreamReplay`), count one env step and
run the updates owed for it, and record the episode if it ended. Evaluations, checkpoints and a
requested stop come after the vector step in which some episode ended; a ``train`` record when
the step passes a multiple of ``log_every``. ``--steps`` and every other step count are env steps
summed over the environments (a vector step is ``N`` of them), so a run ends at the first vector
step that reaches ``steps``.

With ``N = 1`` every random stream is consumed in the one-environment loop's order: the run is
bitwise the same as without a vector environment. With ``N > 1`` a checkpoint is taken at the end
of a vector step in which some episode ended while the others are mid-episode; a resumed run
restarts every environment's episode (the rows of the unfinished ones stay in replay), so it
continues correctly but not bitwise as the uninterrupted run would.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from worldflux.core.exceptions import CheckpointError, ConfigurationError
from worldflux.training.actors import GoalActor, RandomActor
from worldflux.training.envs import Obs
from worldflux.training.online import OnlineRun
from worldflux.training.replay import ReplayBuffer
from worldflux.training.replay_streams import StreamReplay
from worldflux.training.run_data import SizedEnv, make_env
from worldflux.training.vector_actors import BatchActor
from worldflux.training.vector_env import VectorEnv

__all__ = ["VectorRun"]


class VectorRun(OnlineRun):
    """An online run collecting from ``config.num_envs`` environments (see the module)."""

    venv: VectorEnv
    replay: StreamReplay

    # -- building -------------------------------------------------------------------------
    def _make_env(self) -> SizedEnv:
        n, mode = self.config.num_envs, self.config.vector_mode or "sync"
        makers = [functools.partial(make_env, self.config, self.rank_seed + i) for i in range(n)]
        self.venv = VectorEnv(makers, "async" if mode == "async" else "sync")
        return self.venv

    def _set_action_range(self) -> None:
        self.venv.set_action_range(self.action_low, self.action_high)

    def _init_collection(self) -> None:
        n, spec = self.config.num_envs, self.spec
        self.random_actors = [self.random_actor] + [
            RandomActor(
                spec.action_dim,
                spec.action_type,
                self.action_low,
                self.action_high,
                seed=self.rank_seed + i,
            )
            for i in range(1, n)
        ]
        if isinstance(self.actor, GoalActor):
            raise ConfigurationError(
                f"{self.config.model}: its goal behaviour plans for one environment at a time; "
                "train it with --num-envs 1"
            )
        self.batch_actor = None if self.actor is None else BatchActor(self.actor, n)
        self.obs_list: list[Obs] = [np.zeros(0)] * n
        self.open = np.zeros(n, dtype=bool)  # an episode is running in env i
        self.ep_return = [0.0] * n
        self.ep_length = [0] * n

    def _new_replay(self) -> StreamReplay:
        """One replay stream per environment (``replay_capacity / N`` rows each)."""
        spec = self.spec
        return StreamReplay(
            self.settings.replay_capacity,
            spec.obs_shape,
            spec.action_dim,
            spec.action_type,
            obs_dtype=torch.uint8 if spec.obs_dtype == "uint8" else torch.float32,
            seed=self.rank_seed,
            obs_layout=spec.obs_layout,
            streams=self.config.num_envs,
        )

    # -- checkpoints ----------------------------------------------------------------------
    def _collection_state(self) -> dict[str, Any]:
        """Environment 0's RNG and random actor where a one-environment run keeps them, and
        every environment's, with the replay streams' positions, under ``vector``."""
        envs = self.venv.rng_states()
        return {
            "env": envs[0],
            "random_actor": self.random_actor.state(),
            "vector": {
                "num_envs": self.config.num_envs,
                "envs": envs,
                "random_actors": [actor.state() for actor in self.random_actors],
                "replay": self.replay.stream_state(),
            },
        }

    def _restore_collection(self, extra: dict[str, Any], replay: ReplayBuffer) -> ReplayBuffer:
        """Every environment's and random actor's RNG and the replay streams; every open
        episode is dropped: each environment starts a new episode."""
        where = f"{self.ckpt}: field 'extra.vector'"
        saved = extra.get("vector")
        n = self.config.num_envs
        if not isinstance(saved, Mapping) or saved.get("num_envs") != n:
            found = saved.get("num_envs") if isinstance(saved, Mapping) else saved
            raise CheckpointError(
                f"{where}: expected the state of {n} environments, found {found!r}"
            )
        for key in ("envs", "random_actors"):
            states = saved.get(key)
            if not (
                isinstance(states, list)
                and len(states) == n
                and all(isinstance(s, Mapping) for s in states)
            ):
                raise CheckpointError(f"{where}.{key}: expected {n} mappings")
        try:
            self.venv.set_rng_states(saved["envs"])
            for actor, state in zip(self.random_actors, saved["random_actors"], strict=True):
                actor.set_state(state)
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{where}: not an RNG state ({error!r})") from None
        streams = StreamReplay.adopt(replay, saved.get("replay"), f"{where}.replay")
        streams.drop_open_episodes()
        self.state.episode_open = False
        return streams

    def _close_envs(self) -> None:
        self.venv.close()

    # -- running --------------------------------------------------------------------------
    def step(self) -> None:
        """One vector step (see the module docstring)."""
        state, prev_step = self.state, self.state.env_step
        if not self.open.all():
            self._begin_episodes(~self.open)
        first = np.array([length == 0 for length in self.ep_length])
        actions = self._act_all(first)
        ended = False
        for i, (obs, reward, terminated, truncated) in enumerate(self.venv.step(actions)):
            self.replay.add(actions[i], reward, terminated, truncated, obs, stream=i)
            self.obs_list[i] = obs
            state.env_step += 1
            self.ep_return[i] += reward
            self.ep_length[i] += 1
            self.window_steps += 1
            self._update_after_step()
            if terminated or truncated:
                self.open[i], ended = False, True
                state.episode_return, state.episode_length = self.ep_return[i], self.ep_length[i]
                self._record_episode({"env": i} if self.config.num_envs > 1 else {})
        state.episode_open = bool(self.open.any())
        if ended:
            self._episode_end_duties()
        self._report(prev_step)

    def _begin_episodes(self, mask: np.ndarray) -> None:
        """Reset the environments in ``mask``; each first observation opens an episode in its
        replay stream."""
        for i, obs in self.venv.reset(mask).items():
            self.obs_list[i] = obs
            self.replay.begin_episode(obs, stream=i)
            self.ep_return[i], self.ep_length[i] = 0.0, 0
        self.open[:] = True
        self.state.episode_open = True

    def _act_all(self, first: np.ndarray) -> list[Any]:
        """Random actions (each environment's own random actor) during the seed phase or for a
        model that cannot act, else the model's for all environments at once."""
        if self.batch_actor is None or self.state.env_step < self.settings.seed_steps:
            return [
                actor.act(obs, bool(f))
                for actor, obs, f in zip(self.random_actors, self.obs_list, first, strict=True)
            ]
        return self.batch_actor.act(self.obs_list, first)

    def evaluate(self) -> None:
        """As :meth:`OnlineRun.evaluate`, keeping the training environments' planner warm
        starts (the evaluation plans for its own environment)."""
        if self.batch_actor is None:
            super().evaluate()
            return
        with self.batch_actor.planner_kept():
            super().evaluate()
