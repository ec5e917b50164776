"""Dict observations end to end: a ``gymnasium.spaces.Dict`` environment trains DreamerV3 and
TD-MPC2 from ``worldflux train``; the replay stores every key with its shape; a model whose
contract does not match the environment's keys and shapes is refused before training."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import worldflux
from worldflux.cli import main
from worldflux.core.exceptions import ConfigurationError
from worldflux.training.checkpoint import load_training_checkpoint
from worldflux.training.envs import GymEnv
from worldflux.training.errors import ReplayError
from worldflux.training.loop import RunConfig, train
from worldflux.training.replay import ReplayBuffer
from worldflux.training.toy import DICT_ENV_ID, registered_toy_model
from worldflux.training.trainer import Trainer

LAYOUT = {"position": (2,), "velocity": ()}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(out: Path, model: str, **overrides: Any) -> RunConfig:
    settings: dict[str, Any] = {
        "model": model,
        "env_id": DICT_ENV_ID,
        "steps": 120,
        "out": str(out),
        "seed": 2,
        "max_episode_steps": 40,
        "seed_steps": 50,
        "pretrain_updates": 4,
        "batch_size": 8,
        "updates_per_step": 0.5,
        "log_every": 20,
        "progress": False,
    }
    if model.startswith("dreamerv3"):
        settings["seq_len"] = 8
    settings.update(overrides)
    return RunConfig(**settings)


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "train"]


def test_the_environment_reports_its_dict_layout() -> None:
    env = GymEnv(DICT_ENV_ID, seed=0)
    assert env.spec.obs_layout == LAYOUT and env.spec.obs_shape == (3,)
    obs = env.reset()
    assert isinstance(obs, dict) and obs["position"].shape == (2,) and obs["velocity"].shape == ()
    env.close()


@pytest.mark.parametrize("model", ["dreamerv3:ci", "tdmpc2:ci"])
def test_both_reference_families_train_on_dict_observations(tmp_path: Path, model: str) -> None:
    summary = train(_config(tmp_path / "run", model))
    assert summary.env_steps == 120 and summary.updates > 0 and summary.actor != "random"
    assert summary.model.config.obs_keys == ["position:2", "velocity:"]
    observation = summary.model.bound_contract().observation
    assert {k: tuple(s.shape) for k, s in observation.items()} == LAYOUT
    losses = _losses(summary.out)
    assert losses and all(math.isfinite(x) for x in losses)
    loaded = load_training_checkpoint(
        summary.out / "checkpoint", Trainer(summary.model), restore_rng=False
    )
    replay = loaded.replay
    assert replay is not None and replay.obs_shape == (3,)  # stored flat, keys in sorted order
    replay.set_obs_layout(LAYOUT)
    batch = replay.sample(4, 5)
    assert set(batch["obs"]) == {"position", "velocity"}
    assert batch["obs"]["position"].shape == (4, 5, 2)
    assert batch["obs"]["velocity"].shape == (4, 5)
    # the position key is [cos, sin] of the angle: unit vectors, as the environment gave them
    norms = batch["obs"]["position"].norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert math.isfinite(float(summary.model.loss(batch).loss.detach()))


def test_worldflux_train_cli_with_dict_observations(tmp_path: Path) -> None:
    args = ["train", "tdmpc2:ci", "--env", DICT_ENV_ID, "--steps", "60", "--seed-steps", "30"]
    args += ["--pretrain-updates", "2", "--batch-size", "8", "--max-episode-steps", "30"]
    args += ["--log-every", "20", "--no-progress", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert all(math.isfinite(x) for x in _losses(tmp_path / "one"))
    # and with two environments, one replay stream each
    assert main([*args, "--num-envs", "2", "--out", str(tmp_path / "two")]) == 0
    assert all(math.isfinite(x) for x in _losses(tmp_path / "two"))


def test_a_mismatching_model_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as error:
        train(
            _config(
                tmp_path / "bad",
                "tdmpc2:ci",
                model_overrides={"obs_keys": ["position:3", "velocity:"]},
            )
        )
    message = str(error.value)
    assert "'position'" in message and "[3]" in message and "[2]" in message
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()
    with pytest.raises(ConfigurationError, match=r"'speed'.*no such key"):
        train(
            _config(
                tmp_path / "bad2",
                "dreamerv3:ci",
                model_overrides={"obs_keys": ["position:2", "speed:"]},
            )
        )
    with registered_toy_model(), pytest.raises(ConfigurationError, match="one observation"):
        train(_config(tmp_path / "bad3", "training_toy:ci"))


def test_replay_checks_each_key_of_a_dict_observation() -> None:
    replay = ReplayBuffer(16, (3,), 1, obs_layout=LAYOUT)
    first = {"position": np.array([1.0, 0.0]), "velocity": np.array(0.5)}
    replay.begin_episode(first)
    replay.add(np.zeros(1), 1.0, False, False, {"position": np.zeros(2), "velocity": 0.25})
    assert replay.obs[0].tolist() == [1.0, 0.0, 0.5]  # sorted keys, flattened
    with pytest.raises(ReplayError, match=r"\['position'\]: expected shape \[2\], found \[3\]"):
        replay.add(np.zeros(1), 0.0, False, False, {"position": np.zeros(3), "velocity": 0.0})
    with pytest.raises(ReplayError, match=r"missing \['velocity'\]"):
        replay.add(np.zeros(1), 0.0, False, False, {"position": np.zeros(2)})
    with pytest.raises(ReplayError, match="flat rows"):
        ReplayBuffer(16, (4,), 1, obs_layout=LAYOUT)
    grown = replay.grown(32)
    assert grown.obs_layout == replay.obs_layout


def test_tdmpc2_dict_encoder_is_the_concatenation_of_sorted_keys() -> None:
    model = worldflux.create_world_model(
        "tdmpc2:ci", obs_shape=(3,), action_dim=1, obs_keys=["velocity:", "position:2"]
    )
    flat = worldflux.create_world_model("tdmpc2:ci", obs_shape=(3,), action_dim=1)
    flat.load_state_dict(model.state_dict())  # same parameters: one encoder of 3 inputs
    obs = {"position": torch.randn(5, 2), "velocity": torch.randn(5)}
    z = model.encode(obs)["latent"]
    z_flat = flat.encode(torch.cat([obs["position"], obs["velocity"][:, None]], -1))["latent"]
    assert torch.equal(z, z_flat)
    action = model.plan({k: v[:1] for k, v in obs.items()}, eval_mode=True)
    assert action.shape == (1, 1)
    with pytest.raises(ConfigurationError, match="obs_keys"):
        worldflux.create_world_model("tdmpc2:ci", obs_shape=(3,), action_dim=1, obs_keys=["im:3x4"])


# -- an image key inside the dict: worldflux/ReachDict-v0 ({"pixels": [16, 16, 3] uint8, ...}) --


def test_an_image_key_is_served_channel_first_in_unit_range() -> None:
    from worldflux.training.reach import DICT_ENV_ID as REACH_DICT

    env = GymEnv(REACH_DICT, seed=0)
    assert env.spec.obs_layout == {"pixels": (3, 16, 16), "state": (4,)}
    obs = env.reset()
    assert isinstance(obs, dict) and obs["pixels"].dtype == np.float32
    frame = env.env.unwrapped._draw(env.env.unwrapped.point)  # the [H, W, 3] uint8 camera frame
    np.testing.assert_array_equal(obs["pixels"], frame.transpose(2, 0, 1) / np.float32(255.0))
    assert obs["pixels"].max() == 1.0 and obs["pixels"][0].sum() > 0  # the red point is there
    env.close()


def test_dreamerv3_trains_on_a_dict_with_an_image_key(tmp_path: Path) -> None:
    from worldflux.training.reach import DICT_ENV_ID as REACH_DICT

    config = _config(tmp_path / "run", "dreamerv3:ci", env_id=REACH_DICT, steps=60, seed_steps=30)
    summary = train(config)
    assert summary.updates > 0 and summary.actor != "random"
    assert summary.model.config.obs_keys == ["pixels:3x16x16", "state:4"]
    assert summary.model.observation_encoder.image is not None  # the CNN branch reads pixels
    loaded = load_training_checkpoint(
        summary.out / "checkpoint", Trainer(summary.model), restore_rng=False
    )
    replay = loaded.replay
    assert replay is not None
    replay.set_obs_layout({"pixels": (3, 16, 16), "state": (4,)})
    pixels = replay.sample(4, 5)["obs"]["pixels"]
    assert pixels.shape == (4, 5, 3, 16, 16)
    levels = torch.unique(torch.round(pixels * 255))  # exactly the camera's 8-bit levels
    assert set(levels.tolist()) <= {0.0, 255.0}
    assert all(math.isfinite(x) for x in _losses(summary.out))


def test_tdmpc2_refuses_an_image_key_by_name(tmp_path: Path) -> None:
    from worldflux.training.reach import DICT_ENV_ID as REACH_DICT

    with pytest.raises(ConfigurationError, match="pixels:3x16x16"):
        train(_config(tmp_path / "run", "tdmpc2:ci", env_id=REACH_DICT))
