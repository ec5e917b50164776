"""Goal behaviours in training: worldflux/Reach-v0 gives a goal observation at every reset, the
loop hands it to the goal planner, run records name the behaviour, and the goal planner refuses
a vector run; the environment itself is checked against its definition."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np
import pytest

from worldflux.core.exceptions import ConfigurationError
from worldflux.training.actors import GoalActor, make_actor
from worldflux.training.envs import GymEnv
from worldflux.training.loop import train
from worldflux.training.reach import ENV_ID, SPEED, register
from worldflux.training.run_data import RunConfig


def test_reach_follows_its_definition() -> None:
    register()
    env = gymnasium.make(ENV_ID)
    obs, info = env.reset(seed=3)
    assert obs.shape == (4,) and obs.dtype == np.float32
    goal = info["goal"]
    np.testing.assert_array_equal(goal[:2], obs[2:])  # the goal observation: the point at goal
    np.testing.assert_array_equal(goal[2:], obs[2:])
    action = np.array([1.0, -0.5], np.float32)
    nxt, reward, terminated, truncated, _ = env.step(action)
    expected = np.clip(obs[:2] + SPEED * action, -1, 1)
    np.testing.assert_allclose(nxt[:2], expected, rtol=1e-6)
    assert reward == pytest.approx(-float(np.linalg.norm(expected - obs[2:])), rel=1e-5)
    assert not terminated and not truncated
    again, _ = gymnasium.make(ENV_ID).reset(seed=3)
    np.testing.assert_array_equal(obs, again)  # seeded


def test_gym_env_keeps_the_goal_of_each_episode() -> None:
    reach = GymEnv(ENV_ID, seed=0)
    obs = reach.reset()
    assert reach.goal is not None and reach.goal.shape == (4,)
    np.testing.assert_array_equal(reach.goal[2:], obs[2:])
    frames = GymEnv(ENV_ID, seed=0, obs_mode="image", image_size=16)
    first = frames.reset()
    assert frames.goal is not None and frames.goal.shape == first.shape == (3, 16, 16)
    green = 1  # the goal marker is drawn in both; only the point (red) moves to the goal
    np.testing.assert_array_equal(frames.goal[green], first[green])
    assert not np.array_equal(frames.goal[0], first[0])
    pendulum = GymEnv("Pendulum-v1", seed=0)
    pendulum.reset()
    assert pendulum.goal is None


def _run(tmp: Path, model: str, **kw: object) -> RunConfig:
    base: dict[str, object] = {
        "model": model,
        "env_id": ENV_ID,
        "steps": 120,
        "out": str(tmp / "run"),
        "seed_steps": 50,
        "pretrain_updates": 2,
        "batch_size": 4,
        "seq_len": 4,
        "eval_episodes": 1,
        "progress": False,
        "threads": 1,
    }
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


def test_a_goal_planner_acts_toward_the_environments_goal(tmp_path: Path) -> None:
    summary = train(_run(tmp_path, "jepa:ci"))
    assert summary.actor == "goal" and summary.behaviour == "goal_cem"
    assert len(summary.eval_returns) == 1  # the final evaluation planned toward its goals
    actor = make_actor(summary.model)
    assert isinstance(actor, GoalActor) and not actor.ready
    actor.set_goal(np.zeros(4, np.float32))
    assert actor.act(np.ones(4, np.float32), True, eval_mode=True).shape == (2,)


def test_run_records_name_the_declared_behaviour(tmp_path: Path) -> None:
    summary = train(_run(tmp_path, "physics:ci", steps=60))
    assert summary.actor == "planner" and summary.behaviour == "mppi"


def test_goal_planners_refuse_vector_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--num-envs 1"):
        train(_run(tmp_path, "jepa:ci", num_envs=2))
