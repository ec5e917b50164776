"""``action_repeat``: one agent step holds the action for N simulator steps and sums rewards."""

from __future__ import annotations

import numpy as np
import pytest

from worldflux.core.exceptions import ConfigurationError
from worldflux.training.envs import GymEnv


def test_rewards_are_summed_over_the_repeated_steps() -> None:
    single = GymEnv("Pendulum-v1", seed=3)
    repeated = GymEnv("Pendulum-v1", seed=3, action_repeat=3)
    first = single.reset()
    assert np.array_equal(first, repeated.reset())
    action = np.array([0.5], dtype=np.float32)
    total = 0.0
    for _ in range(3):
        obs, reward, _, _ = single.step(action)
        total += reward
    obs_r, reward_r, terminated, truncated = repeated.step(action)
    assert np.allclose(obs, obs_r) and reward_r == pytest.approx(total)
    assert not terminated and not truncated


def test_the_time_limit_counts_agent_steps() -> None:
    env = GymEnv("Pendulum-v1", seed=0, action_repeat=3)
    assert env.time_limit == 67  # ceil(200 / 3)
    env.reset()
    steps, truncated = 0, False
    while not truncated:
        _, _, _, truncated = env.step(np.zeros(1, dtype=np.float32))
        steps += 1
    assert steps == 67


def test_a_termination_ends_the_repeat_early() -> None:
    env = GymEnv("CartPole-v1", seed=0, action_repeat=50)
    env.reset()
    _, reward, terminated, _ = env.step(1)  # always pushing right topples the pole
    assert terminated and 1.0 <= reward < 50.0


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_a_bad_action_repeat_is_one_clear_error(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="action_repeat"):
        GymEnv("Pendulum-v1", action_repeat=bad)  # type: ignore[arg-type]
