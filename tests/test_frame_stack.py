"""``--frame-stack K``: observations are the last K stacked, oldest first; an episode's first
observation fills the stack; vector and image observations; runs record and train with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldflux.core.exceptions import ConfigurationError
from worldflux.training.envs import GymEnv
from worldflux.training.frame_stack import FrameStack
from worldflux.training.loop import train
from worldflux.training.reach import ENV_ID
from worldflux.training.run_data import RunConfig


def test_vectors_stack_oldest_first_and_the_first_fills_the_stack() -> None:
    plain, stacked = GymEnv(ENV_ID, seed=4), FrameStack(GymEnv(ENV_ID, seed=4), 3)
    assert stacked.spec.obs_shape == (12,) and plain.spec.obs_shape == (4,)
    first = plain.reset()
    np.testing.assert_array_equal(stacked.reset(), np.concatenate([first] * 3))
    history = [first] * 3  # the first observation fills the stack
    for action in ([1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]):
        obs, _, _, _ = plain.step(np.array(action, np.float32))
        got, _, _, _ = stacked.step(np.array(action, np.float32))
        history.append(obs)
        np.testing.assert_array_equal(got, np.concatenate(history[-3:]))
    assert stacked.goal is not None and stacked.goal.shape == (12,)
    assert stacked.time_limit == plain.time_limit  # the rest is the wrapped environment's


def test_frames_stack_on_channels() -> None:
    env = FrameStack(GymEnv(ENV_ID, obs_mode="image", image_size=16, seed=0), 2)
    assert env.spec.obs_shape == (6, 16, 16)
    assert env.reset().shape == (6, 16, 16)


def test_bad_stack_sizes_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="frame_stack"):
        FrameStack(GymEnv(ENV_ID, seed=0), 0)


def test_a_run_trains_on_stacked_observations(tmp_path: Path) -> None:
    config = RunConfig(
        model="tdmpc2:ci",
        env_id=ENV_ID,
        steps=60,
        out=str(tmp_path / "run"),
        frame_stack=3,
        seed_steps=30,
        pretrain_updates=2,
        batch_size=4,
        progress=False,
        threads=1,
    )
    summary = train(config)
    assert summary.model.config.obs_shape == (12,) and summary.updates > 0
