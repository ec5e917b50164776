"""``worldflux/Reach-v0``: a point in the plane that should reach a goal (a small, fast task on
which every behaviour can be compared: reward planners, actor-critics and goal planners).

* observation ``[x, y, gx, gy]`` float32 in ``[-1, 1]`` (the point and the goal);
* action ``[dx, dy]`` in ``[-1, 1]``: the point moves by ``0.2 * action`` (clipped to the square);
* reward ``-|point - goal|`` every step; episodes end by the time limit (50 steps);
* ``info["goal"]``: the observation the environment shows once the point is at the goal, given at
  every reset, so goal planners (``goal_cem``) plan toward it (``render_goal()``: the same as a
  frame, for ``--obs image``); ``info["success"]``: within 0.1.

``worldflux/ReachDict-v0`` is the same task with dict observations, a camera image and the state
(``{"pixels": [16, 16, 3] uint8, "state": [4]}``): dict observations with an image key.

Start and goal are uniform in the square, from the environment's seeded generator. A random
policy scores about -54 per episode, one that heads straight for the goal about -2.5
(``python -m benchmarks.behaviours`` measures both).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

__all__ = ["DICT_ENV_ID", "ENV_ID", "ReachDictEnv", "ReachEnv", "register"]

ENV_ID = "worldflux/Reach-v0"
SPEED = 0.2
SUCCESS_RADIUS = 0.1


class ReachEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """Move a point to a goal; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None, size: int = 64) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.render_mode = render_mode
        self.size = size
        self.point = np.zeros(2, np.float32)
        self.goal = np.zeros(2, np.float32)

    def _obs(self, point: np.ndarray) -> np.ndarray:
        return np.concatenate([point, self.goal]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        distance = float(np.linalg.norm(self.point - self.goal))
        return {"goal": self._obs(self.goal), "success": distance < SUCCESS_RADIUS}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.point = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        return self._obs(self.point), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        move = np.clip(np.asarray(action, np.float32).reshape(2), -1.0, 1.0)
        self.point = np.clip(self.point + SPEED * move, -1.0, 1.0).astype(np.float32)
        reward = -float(np.linalg.norm(self.point - self.goal))
        return self._obs(self.point), reward, False, False, self._info()

    def render(self) -> np.ndarray:
        """``[size, size, 3]`` uint8: the point in red, the goal in green."""
        return self._draw(self.point)

    def render_goal(self) -> np.ndarray:
        """The frame once the point is at the goal (the goal observation of image runs)."""
        return self._draw(self.goal)

    def _draw(self, point: np.ndarray) -> np.ndarray:
        frame = np.zeros((self.size, self.size, 3), np.uint8)
        for channel, (x, y) in ((0, point), (1, self.goal)):
            col = round(float(x + 1.0) / 2.0 * (self.size - 1))
            row = round((1.0 - float(y + 1.0) / 2.0) * (self.size - 1))
            r = max(1, self.size // 16)
            frame[max(0, row - r) : row + r + 1, max(0, col - r) : col + r + 1, channel] = 255
        return frame


#: the same task with dict observations: a camera image and the state vector
DICT_ENV_ID = "worldflux/ReachDict-v0"


class ReachDictEnv(ReachEnv):
    """Reach with ``Dict`` observations: ``pixels`` (the rendered ``[size, size, 3]`` uint8 frame,
    channel-last as cameras give it; default 16x16) and ``state`` (``[x, y, gx, gy]``)."""

    def __init__(self, render_mode: str | None = None, size: int = 16) -> None:
        super().__init__(render_mode=render_mode, size=size)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "pixels": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "state": spaces.Box(-1.0, 1.0, (4,), np.float32),
            }
        )

    def _obs(self, point: np.ndarray) -> dict[str, np.ndarray]:  # type: ignore[override]
        return {"pixels": self._draw(point), "state": super()._obs(point)}


def register() -> None:
    """Register ``worldflux/Reach-v0`` and ``worldflux/ReachDict-v0`` with Gymnasium (once;
    50-step time limit)."""
    for env_id, entry in ((ENV_ID, "ReachEnv"), (DICT_ENV_ID, "ReachDictEnv")):
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=f"{__name__}:{entry}", max_episode_steps=50)
