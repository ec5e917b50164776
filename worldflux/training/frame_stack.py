"""``--frame-stack K``: each observation is the last ``K`` environment observations stacked along
the first axis (frames ``[3, H, W]`` -> ``[3K, H, W]``, vectors ``[D]`` -> ``[K * D]``), oldest
first; an episode's first observation fills every slot. Families whose encoders read one frame
(TD-MPC2, the MLP/CNN encoders) then see velocities; DreamerV3's recurrent state does not need it.

:class:`FrameStack` wraps a :class:`~worldflux.training.envs.GymEnv` and keeps its interface
(``spec``, ``reset``, ``step``, ``goal``, RNG state), so the loop, vector environments and
checkpoints use it unchanged; a resumed run starts a new episode, which refills the stack.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import numpy as np

from worldflux.core.exceptions import ConfigurationError
from worldflux.training.envs import GymEnv, Obs

__all__ = ["FrameStack"]


class FrameStack:
    """The last ``k`` observations of ``env``, stacked (see the module docstring)."""

    def __init__(self, env: GymEnv, k: int) -> None:
        if type(k) is not int or k < 1:
            raise ConfigurationError(f"frame_stack: expected an integer >= 1, found {k!r}")
        if env.spec.obs_layout is not None:
            raise ConfigurationError(
                "frame_stack: dict observations cannot be stacked; stack inside the environment "
                "or use --frame-stack 1"
            )
        self.env, self.k = env, k
        first, *rest = env.spec.obs_shape
        self.spec = dataclasses.replace(env.spec, obs_shape=(first * k, *rest))
        self.frames: deque[np.ndarray] = deque(maxlen=k)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)  # time_limit, rng_state, close, env_action, ...

    def _stacked(self) -> np.ndarray:
        return np.concatenate(list(self.frames), axis=0)

    @property
    def goal(self) -> Obs | None:
        """The goal observation stacked like an observation (the goal state held ``k`` steps)."""
        goal = self.env.goal
        if goal is None:
            return None
        return np.concatenate([np.asarray(goal)] * self.k, axis=0)

    def reset(self) -> Obs:
        obs = np.asarray(self.env.reset())
        self.frames.clear()
        self.frames.extend([obs] * self.k)
        return self._stacked()

    def step(self, action: Any) -> tuple[Obs, float, bool, bool]:
        obs, reward, terminated, truncated = self.env.step(action)
        self.frames.append(np.asarray(obs))
        return self._stacked(), reward, terminated, truncated
