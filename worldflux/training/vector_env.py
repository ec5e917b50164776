"""``N`` environments stepped at once through ``gymnasium.vector`` (``--num-envs N``).

Each sub-environment is a :class:`~worldflux.training.envs.GymEnv` (so action rescaling, action
repeat, rendered frames, DMC tasks and dict observations work as with one environment) behind a
thin ``gymnasium.Env`` adapter, in a ``SyncVectorEnv`` (one process) or an ``AsyncVectorEnv``
(one worker process per environment; workers ignore SIGINT, so a Ctrl-C reaches the loop alone).

Autoreset is **disabled** (``AutoresetMode.DISABLED``): the loop resets exactly the environments
whose episode ended, with ``reset(options={"reset_mask": mask})``, at the start of the next
vector step, as the one-environment loop resets at the start of the step after an episode end.
So a step never mixes two episodes: every transition in the replay buffer is ``(obs_t, a_t,
r_t, obs_{t+1})`` of one episode (with NEXT_STEP autoreset the step after a done would return
a reset observation with reward 0, with SAME_STEP the returned observation would be the next
episode's first, the final one only in ``info``), and the per-environment random streams are
consumed in the order one environment would consume them.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from worldflux.training.envs import EnvSpec, GymEnv, Obs, _import_gymnasium

__all__ = ["VectorEnv", "VectorMode"]

VectorMode = Literal["sync", "async"]


@functools.cache
def _adapter_class() -> type[Any]:
    """The ``gymnasium.Env`` around a GymEnv (made on first use: gymnasium is optional)."""
    _import_gymnasium()  # a ConfigurationError naming the extra when it is missing
    # deferred: optional dependency (extra "train"); importing this module must not need it
    import gymnasium as gym

    class GymEnvAdapter(gym.Env):
        metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012  (gymnasium's convention)

        def __init__(self, make: Callable[[], GymEnv], index: int, worker: bool) -> None:
            if worker:  # an AsyncVectorEnv worker: Ctrl-C is the loop's to handle
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.inner = make()
            self.index = index
            spec = self.inner.spec
            box = gym.spaces.Box
            if spec.obs_layout is not None:
                self.observation_space = gym.spaces.Dict(
                    {k: box(-np.inf, np.inf, s, np.float32) for k, s in spec.obs_layout.items()}
                )
            elif spec.obs_dtype == "uint8":
                self.observation_space = box(0, 255, spec.obs_shape, np.uint8)
            else:
                self.observation_space = box(-np.inf, np.inf, spec.obs_shape, np.float32)
            if spec.action_type == "discrete":
                self.action_space = gym.spaces.Discrete(spec.action_dim)
            else:
                self.action_space = box(-np.inf, np.inf, (spec.action_dim,), np.float32)

        def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
            return self.inner.reset(), {}  # GymEnv seeds its first reset itself

        def step(self, action: Any) -> Any:
            obs, reward, terminated, truncated = self.inner.step(action)
            return obs, reward, terminated, truncated, {}

        def describe(self) -> tuple[EnvSpec, int | None]:
            return self.inner.spec, self.inner.time_limit

        def set_action_range(self, low: float, high: float) -> None:
            self.inner.action_low, self.inner.action_high = float(low), float(high)

        def rng_state(self) -> dict[str, Any]:
            return self.inner.rng_state()

        def set_rng_states(self, states: Sequence[dict[str, Any]]) -> None:
            self.inner.set_rng_state(states[self.index])

        def close(self) -> None:
            self.inner.close()

    return GymEnvAdapter


def _make_adapter(make: Callable[[], GymEnv], index: int, worker: bool) -> Any:
    return _adapter_class()(make, index, worker)


class VectorEnv:
    """``N`` GymEnvs stepped together; observations and results come back per environment.

    Args:
        makers: ``makers[i]()`` makes environment ``i`` (picklable for ``"async"``).
        mode: ``"sync"`` (one process) or ``"async"`` (a worker process per environment).

    Attributes:
        spec, time_limit: those of environment 0 (every environment has the same).
        num_envs: ``N``.
    """

    def __init__(self, makers: Sequence[Callable[[], GymEnv]], mode: VectorMode = "sync") -> None:
        gym = _import_gymnasium()
        fns = [
            functools.partial(_make_adapter, make, i, mode == "async")
            for i, make in enumerate(makers)
        ]
        disabled = gym.vector.AutoresetMode.DISABLED
        if mode == "async":
            self.vec = gym.vector.AsyncVectorEnv(fns, autoreset_mode=disabled)
        else:
            self.vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=disabled)
        self.num_envs = len(fns)
        self.spec, self.time_limit = self.vec.call("describe")[0]
        self._started = False

    def set_action_range(self, low: float, high: float) -> None:
        """The range the model's continuous actions live in (rescaled to each env's Box)."""
        self.vec.call("set_action_range", low, high)

    def _row(self, batched: Any, i: int) -> Obs:
        if isinstance(batched, dict):
            return {k: np.array(v[i]) for k, v in batched.items()}
        return np.array(batched[i])

    def reset(self, mask: np.ndarray) -> dict[int, Obs]:
        """Reset the environments where ``mask`` (bool ``[N]``) is True; their first
        observations by index. The first call resets every environment."""
        if not self._started or bool(mask.all()):
            obs, _ = self.vec.reset()
            self._started = True
            mask = np.ones(self.num_envs, dtype=bool)
        else:
            obs, _ = self.vec.reset(options={"reset_mask": np.asarray(mask, dtype=np.bool_)})
        return {int(i): self._row(obs, int(i)) for i in np.flatnonzero(mask)}

    def step(self, actions: Sequence[np.ndarray]) -> list[tuple[Obs, float, bool, bool]]:
        """Step every environment with its action; ``(obs, reward, terminated, truncated)``
        per environment."""
        obs, rewards, terminated, truncated, _ = self.vec.step(np.stack(actions))
        return [
            (self._row(obs, i), float(rewards[i]), bool(terminated[i]), bool(truncated[i]))
            for i in range(self.num_envs)
        ]

    def rng_states(self) -> list[dict[str, Any]]:
        """Every environment's RNG state (JSON-able)."""
        return list(self.vec.call("rng_state"))

    def set_rng_states(self, states: Sequence[dict[str, Any]]) -> None:
        self.vec.call("set_rng_states", list(states))

    def close(self) -> None:
        self.vec.close()
