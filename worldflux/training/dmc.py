"""DeepMind Control Suite tasks as Gymnasium environments: ``dmc:<domain>-<task>``.

``dmc:cartpole-swingup`` is ``dm_control.suite.load("cartpole", "swingup")``: proprioceptive
observations are the task's observation dict flattened (keys in sorted order) into one float32
vector; actions are the task's bounded Box; ``render()`` draws camera 0 (``MUJOCO_GL=egl`` unless
set). An episode ends when dm_control says so: discount 0 is a termination, the time limit (1000
control steps, divided by ``action_repeat``) a truncation. Needs ``pip install
"worldflux[dmc]"``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from worldflux.core.exceptions import ConfigurationError, did_you_mean

__all__ = ["DMC_PREFIX", "make_dmc"]

DMC_PREFIX = "dmc:"


def _suite() -> Any:
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        # deferred: optional dependency (extra "dmc")
        from dm_control import suite
    except ImportError:
        raise ConfigurationError(
            'DeepMind Control Suite tasks need dm-control: pip install "worldflux[dmc]"'
        ) from None
    return suite


def make_dmc(env_id: str, seed: int, action_repeat: int = 1, render_size: int = 64) -> Any:
    """A Gymnasium environment for ``dmc:<domain>-<task>``.

    Raises:
        ConfigurationError: a malformed id, an unknown domain or task (with the known ones), or
            dm-control missing.
    """
    # deferred: optional dependency (extra "train"); training.envs imports this module
    import gymnasium as gym

    suite = _suite()
    name = env_id.removeprefix(DMC_PREFIX)
    domain, sep, task = name.partition("-")
    if not sep:
        raise ConfigurationError(f"environment {env_id!r}: expected dmc:<domain>-<task>")
    known = sorted(f"{d}-{t}" for d, t in suite.ALL_TASKS)
    if (domain, task) not in set(suite.ALL_TASKS):
        raise ConfigurationError(
            f"environment {env_id!r}: no such task" + did_you_mean(name, known)
        )
    random = np.random.RandomState(seed)
    env = suite.load(domain, task, task_kwargs={"random": random})

    class DMCEnv(gym.Env):
        metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012  (gymnasium's convention)

        def __init__(self) -> None:
            spec = env.action_spec()
            self.action_space = gym.spaces.Box(
                spec.minimum.astype(np.float32), spec.maximum.astype(np.float32)
            )
            size = sum(int(np.prod(v.shape)) for v in env.observation_spec().values())
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
            self.render_mode = "rgb_array"
            self.action_repeat = int(action_repeat)
            self.max_steps = round(env._step_limit) // self.action_repeat
            # the task's RandomState and this Generator share one bit generator, so the
            # loop's RNG save/restore (np_random.bit_generator.state) covers the task
            self._np_random = np.random.Generator(random._bit_generator)

        @staticmethod
        def _flat(observation: Any) -> np.ndarray:
            parts = [
                np.asarray(observation[k], dtype=np.float32).ravel() for k in sorted(observation)
            ]
            return np.concatenate(parts)

        def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
            if seed is not None:
                random.seed(seed)
            return self._flat(env.reset().observation), {}

        def step(self, action: Any) -> Any:
            reward, step = 0.0, None
            for _ in range(self.action_repeat):
                step = env.step(action)
                reward += float(step.reward or 0.0)
                if step.last():
                    break
            assert step is not None
            terminated = step.last() and step.discount == 0
            truncated = step.last() and not terminated
            return self._flat(step.observation), reward, terminated, truncated, {}

        def render(self) -> np.ndarray:
            return np.asarray(env.physics.render(render_size, render_size, camera_id=0))

        def close(self) -> None:
            env.close()

    return DMCEnv()
