"""Training checkpoints: exact resume, atomic writes, RNG round trip, mismatches."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import worldflux
from worldflux.core.exceptions import CheckpointError
from worldflux.core.types import Batch
from worldflux.training.checkpoint import (
    get_rng_state,
    load_training_checkpoint,
    save_training_checkpoint,
    set_rng_state,
)
from worldflux.training.loop import RunConfig, train
from worldflux.training.replay import ReplayBuffer
from worldflux.training.toy import registered_toy_model
from worldflux.training.trainer import Trainer


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy2() -> Iterator[None]:
    with registered_toy_model(two_stage=True):
        yield


def run_config(out: Path, steps: int) -> RunConfig:
    return RunConfig(
        model="training_toy:ci",
        env_id="Pendulum-v1",
        steps=steps,
        out=str(out),
        seed=7,
        max_episode_steps=30,
        seed_steps=40,
        pretrain_updates=5,
        batch_size=8,
        checkpoint_every=60,
        log_every=30,
        replay_capacity=500,
        eval_every=60,
        progress=False,
    )


def everything(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path: Path, toy2: None) -> None:
    n, k = 150, 90  # k is an episode end (30-step episodes)
    straight = train(run_config(tmp_path / "straight", n))
    first = train(run_config(tmp_path / "resumed", k))
    assert first.env_steps == k
    # the process forgets everything: scramble the global RNGs before resuming
    torch.manual_seed(12345)
    np.random.seed(12345)
    random.seed(12345)
    resumed = train(run_config(tmp_path / "resumed", n), resume=True)
    assert resumed.env_steps == n and resumed.updates == straight.updates
    assert resumed.returns == straight.returns
    assert len(straight.eval_returns) == 2 and resumed.eval_returns == straight.eval_returns
    a, b = everything(straight.model), everything(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # optimiser states too
    sa = load_file(str(tmp_path / "straight" / "checkpoint" / "optimizers.safetensors"))
    sb = load_file(str(tmp_path / "resumed" / "checkpoint" / "optimizers.safetensors"))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[x], sb[x]) for x in sa)
    # the metrics of the resumed run continue the first part without duplicates
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    episodes = [r["env_step"] for r in records if r["kind"] == "episode"]
    assert episodes == [30, 60, 90, 120, 150]
    assert [r["env_step"] for r in records if r["kind"] == "eval"] == [60, 120]


def test_checkpoint_layout(tmp_path: Path, toy2: None) -> None:
    train(run_config(tmp_path / "run", 60))
    root = tmp_path / "run" / "checkpoint"
    names = {p.name for p in root.iterdir()}
    assert names == {
        "model",
        "optimizers.safetensors",
        "replay.json",
        "replay.safetensors",
        "training_state.json",
    }
    state = json.loads((root / "training_state.json").read_text())
    assert {"step", "optimizers", "rng", "replay", "extra"} <= set(state)
    assert set(state["rng"]) == {"torch", "numpy", "python"}
    assert state["replay"]["total"] == 62  # 2 episodes of 30 transitions = 62 rows
    assert "np_random" in state["extra"]["env"]
    # the model part is an ordinary pretrained directory
    model = worldflux.WorldModel.from_pretrained(root / "model")
    assert model.model_type == "training_toy"
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def make_trainer(seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    model = worldflux.create_world_model("training_toy:ci", obs_shape=(3,), action_dim=1)
    return Trainer(model)


def batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        obs=torch.randn(4, 4, 3, generator=g),
        actions=torch.rand(4, 4, 1, generator=g) * 2 - 1,
        rewards=torch.randn(4, 4, generator=g),
        terminated=torch.zeros(4, 4, dtype=torch.bool),
        truncated=torch.zeros(4, 4, dtype=torch.bool),
        is_first=torch.zeros(4, 4, dtype=torch.bool),
    )


def test_failed_write_keeps_the_previous_checkpoint(
    tmp_path: Path, toy2: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer()
    trainer.train_step(batch())
    replay = ReplayBuffer(10, (3,), 1)
    save_training_checkpoint(tmp_path / "ckpt", trainer, replay, {"tag": "old"})
    trainer.train_step(batch())

    def broken(self: ReplayBuffer, directory: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ReplayBuffer, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_training_checkpoint(tmp_path / "ckpt", trainer, replay, {"tag": "new"})
    monkeypatch.undo()
    fresh = make_trainer(1)
    loaded = load_training_checkpoint(tmp_path / "ckpt", fresh)
    assert loaded.extra == {"tag": "old"} and loaded.step == 1 and fresh.step == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_rng_state_round_trip() -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    state = json.loads(json.dumps(get_rng_state()))
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


def test_mismatching_or_corrupt_checkpoints_are_refused_untouched(
    tmp_path: Path, toy2: None
) -> None:
    trainer = make_trainer()
    trainer.train_step(batch())
    save_training_checkpoint(tmp_path / "ckpt", trainer)
    other = Trainer(
        worldflux.create_world_model("training_toy:small", obs_shape=(3,), action_dim=1)
    )
    before = everything(other.model)
    with pytest.raises(CheckpointError, match=r"contract fingerprint|mis-shaped"):
        load_training_checkpoint(tmp_path / "ckpt", other)
    assert all(torch.equal(v, before[k]) for k, v in everything(other.model).items())
    (tmp_path / "ckpt" / "optimizers.safetensors").write_bytes(b"garbage")
    fresh = make_trainer(1)
    before = everything(fresh.model)
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_training_checkpoint(tmp_path / "ckpt", fresh)
    assert all(torch.equal(v, before[k]) for k, v in everything(fresh.model).items())
    assert fresh.step == 0
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_training_checkpoint(tmp_path / "missing", fresh)


def test_resume_refuses_another_environment(tmp_path: Path, toy2: None) -> None:
    train(run_config(tmp_path / "run", 30))
    config = run_config(tmp_path / "run", 60)
    config.env_id = "MountainCarContinuous-v0"
    with pytest.raises(CheckpointError, match="env_id"):
        train(config, resume=True)


def test_contract_fingerprint_mismatch_is_refused_with_the_exact_error(
    tmp_path: Path, toy2: None
) -> None:
    """Same parameter names and shapes, different stored fingerprint: only the fingerprint check
    can refuse this checkpoint, and it must do so with its own message (nothing loaded)."""
    import re

    trainer = make_trainer()
    trainer.train_step(batch())
    save_training_checkpoint(tmp_path / "ckpt", trainer)
    meta_path = tmp_path / "ckpt" / "model" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    want = trainer.model.bound_contract().fingerprint()
    assert meta["contract_fingerprint"] == want
    meta["contract_fingerprint"] = "0123456789abcdef"
    meta_path.write_text(json.dumps(meta))
    fresh = make_trainer(1)
    before = everything(fresh.model)
    expected = (
        f"{meta_path}: contract fingerprint '0123456789abcdef' differs from the model's "
        f"{want!r} (another preset, environment or spec)"
    )
    with pytest.raises(CheckpointError, match=re.escape(expected) + "$"):
        load_training_checkpoint(tmp_path / "ckpt", fresh)
    assert all(torch.equal(v, before[k]) for k, v in everything(fresh.model).items())
    assert fresh.step == 0
