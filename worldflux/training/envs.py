"""Gymnasium environments with vector, dict or rendered 64x64 image observations.

:class:`GymEnv` hides the space details the loop does not care about: observations come back as
numpy arrays of a fixed shape (``[obs_dim]`` float32, or ``[3, S, S]`` uint8 frames), or, for a
``Dict`` space of Box keys of rank 0 or 1, as a dict of float32 arrays (sorted keys; the spec's
``obs_layout``, see :mod:`worldflux.training.observations`), actions go in
as the model emits them (continuous ``[A]`` in the contract's ``[low, high]``, rescaled to the
environment's Box; or a discrete index), and the environment's RNG state can be saved and
restored for exact resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from worldflux.core.exceptions import ConfigurationError
from worldflux.training.dmc import DMC_PREFIX, make_dmc
from worldflux.training.observations import flat_size

__all__ = ["EnvSpec", "GymEnv", "Obs", "ObsMode"]

ObsMode = Literal["vector", "image"]
#: one observation: an array, or a dict of arrays (dict observation spaces)
Obs = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class EnvSpec:
    """What a model must be built for.

    Attributes:
        obs_shape: ``(obs_dim,)`` or ``(3, size, size)``.
        action_dim: continuous action size, or number of discrete actions.
        action_type: ``"continuous"`` or ``"discrete"``.
        obs_dtype: ``"float32"`` (vectors) or ``"uint8"`` (frames).
        obs_layout: for dict observations, key -> per-sample shape (sorted keys); ``obs_shape``
            is then ``(D,)``, the size of the keys flattened and concatenated. None otherwise.
    """

    obs_shape: tuple[int, ...]
    action_dim: int
    action_type: str
    obs_dtype: str
    obs_layout: dict[str, tuple[int, ...]] | None = None


def _import_gymnasium() -> Any:
    try:
        # deferred: optional dependency (extra "train"), refused with a clear message
        import gymnasium
    except ImportError:
        raise ConfigurationError(
            "training on environments needs gymnasium: pip install 'worldflux[train]'"
        ) from None
    # deferred: worldflux's own environments import gymnasium (optional extra "train")
    from worldflux.training.reach import register

    register()  # worldflux/Reach-v0
    return gymnasium


#: Gymnasium ids of the Arcade Learning Environment (Atari 2600 games, extra "atari")
ALE_PREFIX = "ALE/"


def _register_atari(gym: Any) -> None:
    """Make the ``ALE/<Game>-v5`` ids known to Gymnasium (ale-py registers them on request).

    Raises:
        ConfigurationError: ale-py is not installed.
    """
    try:
        # deferred: optional dependency (extra "atari"), imported only for an ALE/ id
        import ale_py
    except ImportError:
        raise ConfigurationError(
            'Atari games need ale-py (the ROMs are included): pip install "worldflux[atari]"'
        ) from None
    gym.register_envs(ale_py)


def _jsonable(value: Any) -> Any:
    """A bit generator's state with numpy arrays as lists (MT19937 keeps a uint32 key array)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _arrays_like(value: Any, template: Any) -> Any:
    """``value`` (from :func:`_jsonable`) with lists back as arrays where ``template`` has them."""
    if isinstance(template, dict) and isinstance(value, dict):
        return {
            k: _arrays_like(value[k], template[k]) if k in template else value[k] for k in value
        }
    if isinstance(template, np.ndarray):
        return np.asarray(value, dtype=template.dtype)
    return value


class GymEnv:
    """One Gymnasium environment.

    Args:
        env_id: e.g. ``"Pendulum-v1"``, ``"CartPole-v1"`` (MuJoCo ids need ``mujoco``), a
            DeepMind Control Suite task ``"dmc:cartpole-swingup"`` (``worldflux[dmc]``) or an
            Atari game ``"ALE/Pong-v5"`` (``worldflux[atari]``; ``obs_mode="image"``).
        obs_mode: ``"vector"`` (the environment's Box observation) or ``"image"`` (rendered
            ``rgb_array`` frames resized to ``image_size``, channel-first uint8).
        image_size: side of the square frames.
        max_episode_steps: override the registered time limit.
        seed: seeds the first reset; later resets continue the environment's own RNG.
        action_low, action_high: the range the model's continuous actions live in.
        action_repeat: simulator steps per :meth:`step` (the action is held, rewards are summed,
            and the repeat stops early at a termination or truncation); the time limit is then
            counted in these agent steps (``ceil(limit / action_repeat)``).
    """

    def __init__(
        self,
        env_id: str,
        obs_mode: ObsMode = "vector",
        image_size: int = 64,
        max_episode_steps: int | None = None,
        seed: int = 0,
        action_low: float = -1.0,
        action_high: float = 1.0,
        action_repeat: int = 1,
    ) -> None:
        gym = _import_gymnasium()
        if type(action_repeat) is not int or action_repeat < 1:
            raise ConfigurationError(
                f"action_repeat: expected an integer >= 1, found {action_repeat!r}"
            )
        self.goal: Obs | None = None
        self.action_repeat = action_repeat
        if obs_mode not in ("vector", "image"):
            raise ConfigurationError(f"obs_mode: expected 'vector' or 'image', found {obs_mode!r}")
        kwargs: dict[str, Any] = {}
        if obs_mode == "image":
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            kwargs["render_mode"] = "rgb_array"
        if max_episode_steps is not None:
            kwargs["max_episode_steps"] = int(max_episode_steps)
        try:
            if env_id.startswith(DMC_PREFIX):  # DeepMind Control Suite (worldflux.training.dmc)
                self.env = make_dmc(
                    env_id, int(seed), action_repeat=action_repeat, render_size=int(image_size)
                )
                self._repeat_here = 1  # the DMC environment repeats inside its own step
                if max_episode_steps is not None:
                    self.env = gym.wrappers.TimeLimit(self.env, int(max_episode_steps))
            else:
                if env_id.startswith(ALE_PREFIX):
                    _register_atari(gym)
                self.env = gym.make(env_id, **kwargs)
                self._repeat_here = action_repeat
        except gym.error.Error as error:
            raise ConfigurationError(f"environment {env_id!r}: {error}") from None
        except (ImportError, ModuleNotFoundError) as error:
            raise ConfigurationError(
                f"environment {env_id!r} needs a missing package: {error}"
            ) from None
        self.env_id = env_id
        self.obs_mode = obs_mode
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.seeded = False
        self.action_low, self.action_high = float(action_low), float(action_high)
        self._image_keys: dict[str, bool] = {}  # dict observations: image key -> channel-last
        self.spec = self._make_spec(gym)
        limit = getattr(self.env.spec, "max_episode_steps", None)
        if limit:
            limit = -(-int(limit) // action_repeat)  # counted in agent steps
        else:
            limit = getattr(self.env.unwrapped, "max_steps", None)  # DMC: already divided
        #: the episode time limit in steps, or None when the environment has none
        self.time_limit: int | None = int(limit) if limit else None

    def _make_spec(self, gym: Any) -> EnvSpec:
        space = self.env.action_space
        if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            action_dim, action_type = int(space.shape[0]), "continuous"
            self._box_low = np.asarray(space.low, dtype=np.float64)
            self._box_high = np.asarray(space.high, dtype=np.float64)
        elif isinstance(space, gym.spaces.Discrete):
            action_dim, action_type = int(space.n), "discrete"
        else:
            raise ConfigurationError(
                f"environment {self.env_id!r}: action space {space} is not supported "
                "(expected a 1-D Box or a Discrete space)"
            )
        if self.obs_mode == "image":
            return EnvSpec((3, self.image_size, self.image_size), action_dim, action_type, "uint8")
        obs_space = self.env.observation_space
        if isinstance(obs_space, gym.spaces.Dict):
            return self._dict_spec(gym, obs_space, action_dim, action_type)
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise ConfigurationError(
                f"environment {self.env_id!r}: observation space {obs_space} is not a 1-D Box; "
                "train on its rendered frames instead (--obs image, obs_mode='image')"
            )
        return EnvSpec((int(obs_space.shape[0]),), action_dim, action_type, "float32")

    def _dict_spec(self, gym: Any, space: Any, action_dim: int, action_type: str) -> EnvSpec:
        """A Dict of Box keys: vectors of rank 0 or 1, and uint8 images (``[C, H, W]``, or
        ``[H, W, C]`` with 1 or 3 channels, served channel-first); stored as float32 (images
        scaled to [0, 1], the ``float`` observations of the model's contract)."""
        layout: dict[str, tuple[int, ...]] = {}
        for key in sorted(space.spaces):
            sub = space.spaces[key]
            shape = tuple(int(d) for d in getattr(sub, "shape", None) or ())
            is_box = isinstance(sub, gym.spaces.Box)
            if is_box and len(shape) == 3 and sub.dtype == np.uint8:
                channel_last = shape[-1] in (1, 3) and shape[0] not in (1, 3)
                self._image_keys[key] = channel_last
                layout[key] = (shape[2], shape[0], shape[1]) if channel_last else shape
                continue
            if not is_box or len(shape) > 1:
                raise ConfigurationError(
                    f"environment {self.env_id!r}: dict observation key {key!r} is {sub}; "
                    "expected a Box of rank 0 or 1 (a vector) or a uint8 Box [C, H, W] / "
                    "[H, W, C] (an image)"
                )
            layout[key] = shape
        return EnvSpec((flat_size(layout),), action_dim, action_type, "float32", layout)

    # -- observations ---------------------------------------------------------------------------
    def _frame(self) -> np.ndarray:
        return self._resized(self.env.render())

    def _resized(self, frame: Any) -> np.ndarray:
        """An ``[H, W, 3]`` rendered frame as the model sees it: ``[3, size, size]`` uint8."""
        if frame is None:
            raise ConfigurationError(f"environment {self.env_id!r} rendered no frame")
        pixels = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
        size = self.image_size
        small = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
        return small[0].round().clamp(0, 255).to(torch.uint8).numpy()

    def _observe(self, obs: Any) -> Obs:
        if self.obs_mode == "image":
            return self._frame()
        if self.spec.obs_layout is not None:
            return {k: self._dict_value(k, obs[k]) for k in self.spec.obs_layout}
        return np.asarray(obs, dtype=np.float32)

    def _dict_value(self, key: str, value: Any) -> np.ndarray:
        """One key of a dict observation as stored: float32 of the layout's shape (images
        channel-first in [0, 1])."""
        shape = self.spec.obs_layout[key] if self.spec.obs_layout else ()
        if key in self._image_keys:
            pixels = np.asarray(value, dtype=np.uint8)
            if self._image_keys[key]:
                pixels = pixels.transpose(2, 0, 1)
            return (pixels.astype(np.float32) / 255.0).reshape(shape)
        return np.asarray(value, dtype=np.float32).reshape(shape)

    def reset(self) -> Obs:
        """Start an episode; returns the first observation. A goal-conditioned environment's
        goal observation (``info["goal"]`` at reset; its ``render_goal()`` frame for image
        observations) is kept in :attr:`goal` (None otherwise) for goal behaviours."""
        if not self.seeded:
            obs, info = self.env.reset(seed=self.seed)
            self.seeded = True
        else:
            obs, info = self.env.reset()
        self.goal = self._goal(info)
        return self._observe(obs)

    def _goal(self, info: Any) -> Obs | None:
        """The episode's goal observation: ``info["goal"]`` (vector observations), or for image
        observations the frame of the goal state (the environment's ``render_goal()``)."""
        goal = info.get("goal") if isinstance(info, dict) else None
        if goal is None:
            return None
        if self.obs_mode != "image":
            return self._observe(goal)
        render_goal = getattr(self.env.unwrapped, "render_goal", None)
        return self._resized(render_goal()) if callable(render_goal) else None

    def env_action(self, action: Any) -> Any:
        """The model's action (``[A]`` in ``[low, high]``, or an index) as the env takes it."""
        if self.spec.action_type == "discrete":
            return int(np.asarray(action).reshape(()))
        a = np.clip(np.asarray(action, dtype=np.float64), self.action_low, self.action_high)
        unit = (a - self.action_low) / (self.action_high - self.action_low)
        return (self._box_low + unit * (self._box_high - self._box_low)).astype(np.float32)

    def step(self, action: Any) -> tuple[Obs, float, bool, bool]:
        """Apply a model action; returns ``(next_obs, reward, terminated, truncated)``."""
        env_action = self.env_action(action)
        total = 0.0
        for _ in range(self._repeat_here):
            obs, reward, terminated, truncated, _ = self.env.step(env_action)
            total += float(reward)
            if terminated or truncated:
                break
        return self._observe(obs), total, bool(terminated), bool(truncated)

    # -- state ----------------------------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        """The environment RNG (JSON-able) and whether the first seeded reset happened."""
        return {
            "seeded": self.seeded,
            "np_random": _jsonable(self.env.np_random.bit_generator.state),
        }

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.seeded = bool(state["seeded"])
        generator = self.env.np_random.bit_generator
        generator.state = _arrays_like(state["np_random"], generator.state)

    def close(self) -> None:
        self.env.close()
