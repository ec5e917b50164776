"""The Gymnasium loop, `worldflux train` and `worldflux plot`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from worldflux.cli import main
from worldflux.core.exceptions import ConfigurationError
from worldflux.training.cli import parse_overrides
from worldflux.training.envs import GymEnv
from worldflux.training.loop import RunConfig, train
from worldflux.training.metrics import Progress, read_metrics
from worldflux.training.toy import registered_toy_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy() -> Iterator[None]:
    with registered_toy_model():
        yield


def test_vector_env_maps_actions_into_the_box() -> None:
    env = GymEnv("Pendulum-v1", seed=0)
    assert env.spec.obs_shape == (3,) and env.spec.action_dim == 1
    assert env.spec.action_type == "continuous" and env.time_limit == 200
    assert np.allclose(env.env_action(np.array([1.0])), [2.0])
    assert np.allclose(env.env_action(np.array([-1.0])), [-2.0])
    assert np.allclose(env.env_action(np.array([5.0])), [2.0])  # clipped
    obs = env.reset()
    assert obs.dtype == np.float32 and obs.shape == (3,)
    env.close()


def test_env_rng_state_round_trip() -> None:
    env = GymEnv("Pendulum-v1", seed=3)
    env.reset()
    state = json.loads(json.dumps(env.rng_state()))
    first = env.reset()
    env.set_rng_state(state)
    assert np.array_equal(env.reset(), first)


def test_image_observations_are_64x64_frames() -> None:
    env = GymEnv("Pendulum-v1", obs_mode="image", seed=0)
    assert env.spec.obs_shape == (3, 64, 64) and env.spec.obs_dtype == "uint8"
    frame = env.reset()
    assert frame.shape == (3, 64, 64) and frame.dtype == np.uint8
    assert frame.min() < frame.max()  # a real rendering, not a blank
    nxt, _, _, _ = env.step(np.array([1.0]))
    assert nxt.shape == (3, 64, 64)
    env.close()


def test_unknown_environment_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="NoSuchEnv-v0"):
        GymEnv("NoSuchEnv-v0")


def small_run(out: Path, **kw: object) -> RunConfig:
    base: dict[str, object] = {
        "model": "training_toy:ci",
        "env_id": "Pendulum-v1",
        "steps": 40,
        "out": str(out),
        "max_episode_steps": 20,
        "seed_steps": 20,
        "pretrain_updates": 2,
        "batch_size": 4,
        "log_every": 10,
        "progress": False,
    }
    base.update(kw)
    return RunConfig(**base)  # type: ignore[arg-type]


def test_loop_trains_on_image_observations(tmp_path: Path, toy: None) -> None:
    summary = train(small_run(tmp_path / "img", obs_mode="image"))
    assert summary.model.config.obs_shape == (3, 64, 64)
    assert summary.episodes == 2 and summary.updates == 2 + 20


def test_loop_evaluates_on_a_separate_environment(tmp_path: Path, toy: None) -> None:
    summary = train(small_run(tmp_path / "ev", steps=60, eval_every=20, eval_episodes=2))
    assert len(summary.eval_returns) == 3 and len(summary.returns) == 3
    evals = [r for r in read_metrics(tmp_path / "ev") if r["kind"] == "eval"]
    assert [r["env_step"] for r in evals] == [20, 40, 60]
    assert all(len(r["eval_returns"]) == 2 for r in evals)
    assert evals[0]["eval_return"] == pytest.approx(sum(evals[0]["eval_returns"]) / 2)


def test_loop_trains_on_a_discrete_environment(tmp_path: Path, toy: None) -> None:
    summary = train(small_run(tmp_path / "cp", env_id="CartPole-v1", steps=60))
    assert summary.model.config.action_type == "discrete"
    assert summary.env_steps == 60 and summary.updates > 0


def test_updates_wait_for_episodes_long_enough_to_sample(tmp_path: Path, toy: None) -> None:
    # 5-step episodes cannot hold a 9-step window: training skips updates instead of failing
    summary = train(small_run(tmp_path / "short", max_episode_steps=5, seq_len=9, steps=30))
    assert summary.env_steps == 30 and summary.updates == 0


def test_cli_train_resume_and_plot(tmp_path: Path, toy: None) -> None:
    out = tmp_path / "run"
    common = ["--env", "Pendulum-v1", "--max-episode-steps", "20", "--seed-steps", "20"]
    common += ["--pretrain-updates", "2", "--batch-size", "4", "--log-every", "10"]
    common += ["--no-progress", "--set", "latent_dim=8"]
    assert main(["train", "training_toy:ci", "--steps", "40", "--out", str(out), *common]) == 0
    assert main(["train", "--steps", "60", "--resume", str(out), "--no-progress"]) == 0
    records = read_metrics(out)
    assert {r["kind"] for r in records} == {"episode", "train", "eval"}  # the final evaluation
    assert [r["env_step"] for r in records if r["kind"] == "eval"] == [40, 60]
    assert [r["env_step"] for r in records if r["kind"] == "episode"] == [20, 40, 60]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows and {"env_step", "episode_return", "loss", "loss/reward", "updates_per_s"} <= set(
        rows[0]
    )
    assert json.loads((out / "run.json").read_text())["model_overrides"] == {"latent_dim": 8}
    assert main(["plot", str(out)]) == 0
    png = (out / "learning_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_cli_errors_are_worldflux_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["train", "no-such-model", "--env", "Pendulum-v1", "--steps", "5", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "no model 'no-such-model'" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nothing")]) == 2


def test_parse_overrides() -> None:
    assert parse_overrides(["a=1", "b=true", "c=x", "d=[1, 2]"]) == {
        "a": 1,
        "b": True,
        "c": "x",
        "d": [1, 2],
    }
    with pytest.raises(ConfigurationError, match="KEY=VALUE"):
        parse_overrides(["novalue"])


def test_progress_line_shows_steps_rates_and_losses() -> None:
    stream = io.StringIO()
    bar = Progress(100, stream=stream)
    bar.update(50, {"upd/s": 12.5, "loss/reward": 0.25}, force=True)
    line = stream.getvalue()
    assert "50/100 env steps" in line and "upd/s 12.500" in line and "loss/reward 0.250" in line
    assert "[############------------]" in line


def test_progress_shows_elapsed_time_and_an_eta_from_the_pace() -> None:
    bar = Progress(1000, stream=io.StringIO())
    assert "0:00 elapsed" in bar.render(200, {}, now=100.0)  # a resumed run starts at 200
    line = bar.render(400, {}, now=160.0)  # 200 steps in 60 s: 600 more take 180 s
    assert "1:00 elapsed, ETA 3:00" in line
    assert "1:00:00 elapsed, ETA 0:00" in bar.render(1000, {}, now=3700.0)


def test_actor_choice_planner_policy_or_random() -> None:
    from worldflux import create_world_model
    from worldflux.core.exceptions import CapabilityError
    from worldflux.training.actors import GoalActor, PlannerActor, PolicyActor, make_actor

    shapes = {"obs_shape": (3,), "action_dim": 1}
    assert isinstance(make_actor(create_world_model("tdmpc2:ci", **shapes)), PlannerActor)
    dreamer = create_world_model("dreamerv3:ci", **shapes)
    actor = make_actor(dreamer)
    assert isinstance(actor, PolicyActor) and dreamer.can_act
    action = actor.act(np.zeros(3, dtype=np.float32), is_first=True)
    assert action.shape == (1,) and -1.0 <= float(action[0]) <= 1.0
    actor.act(np.ones(3, dtype=np.float32), is_first=False)  # continues its carry
    gan = create_world_model("gan:ci", obs_shape=(3,), action_dim=1)  # behaviour: mppi
    assert isinstance(make_actor(gan), PlannerActor) and gan.can_act
    ssm = create_world_model("ssm:ci", obs_shape=(3,), action_dim=1)  # behaviour: actor_critic
    assert isinstance(make_actor(ssm), PolicyActor) and ssm.can_act
    jepa = create_world_model("jepa:ci", obs_shape=(3,), action_dim=1)  # goal_cem: needs a goal
    goal_actor = make_actor(jepa)  # acts once the environment gives a goal
    assert isinstance(goal_actor, GoalActor) and not goal_actor.ready and not jepa.can_act
    with pytest.raises(CapabilityError, match="goal"):
        jepa.act(torch.zeros(1, 3))


def test_dreamerv3_collects_with_its_own_policy(tmp_path: Path) -> None:
    summary = train(
        small_run(tmp_path / "dv3", model="dreamerv3:ci", steps=30, seed_steps=12, seq_len=4)
    )
    assert summary.actor == "policy"
    assert summary.env_steps == 30 and summary.updates > 0


def test_deepmind_control_suite_tasks_train(tmp_path: Path, toy: None) -> None:
    """``dmc:<domain>-<task>``: flattened proprio vectors, a bounded Box, the 1000-step time
    limit as a truncation, rendered frames for pixels; the loop trains on it."""
    pytest.importorskip("dm_control")
    from worldflux.training.envs import GymEnv

    env = GymEnv("dmc:cartpole-swingup", seed=0)
    assert env.spec.obs_shape == (5,) and env.spec.action_type == "continuous"
    assert env.time_limit == 1000
    state = env.rng_state()
    first = env.reset()
    env.set_rng_state(state)
    assert np.array_equal(env.reset(), first)  # the task's RNG is saved and restored
    frames = GymEnv("dmc:cartpole-swingup", seed=0, obs_mode="image", image_size=32)
    frame = frames.reset()
    assert frame.shape == (3, 32, 32) and frame.dtype == np.uint8 and frame.min() < frame.max()
    with pytest.raises(ConfigurationError, match="did you mean 'cartpole-swingup'"):
        GymEnv("dmc:cartpole-swingpu")
    summary = train(small_run(tmp_path / "dmc", env_id="dmc:cartpole-swingup"))
    assert summary.model.config.obs_shape == (5,) and summary.env_steps == 40
