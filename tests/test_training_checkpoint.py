"""Training checkpoints: exact resume, atomic writes, RNG round trip, mismatches."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _checkpoint_helpers import edit_json, reseal, snapshot, unit_dir, version_dir, write_sealed
from safetensors.torch import load_file

import worldflux
import worldflux.core.checkpoint_store as store
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
    # evaluations at 60 and 120, then the final one at 150 (side-effect free: after the save)
    assert len(straight.eval_returns) == 3 and resumed.eval_returns == straight.eval_returns
    a, b = everything(straight.model), everything(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # optimiser states too
    sa = load_file(
        str(version_dir(tmp_path / "straight" / "checkpoint") / "optimizers.safetensors")
    )
    sb = load_file(str(version_dir(tmp_path / "resumed" / "checkpoint") / "optimizers.safetensors"))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[x], sb[x]) for x in sa)
    # the metrics of the resumed run continue the first part without duplicates
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    episodes = [r["env_step"] for r in records if r["kind"] == "episode"]
    assert episodes == [30, 60, 90, 120, 150]
    # 90: the first part's final evaluation (a record of what happened; it moved no state)
    assert [r["env_step"] for r in records if r["kind"] == "eval"] == [60, 90, 120, 150]


def test_checkpoint_layout(tmp_path: Path, toy2: None) -> None:
    train(run_config(tmp_path / "run", 60))
    path = tmp_path / "run" / "checkpoint"
    root = version_dir(path)
    assert {p.name for p in path.iterdir()} == {"CHECKPOINT", root.name}
    names = {p.name for p in root.iterdir()}
    assert names == {
        "manifest.json",
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
    # the model part loads like a pretrained checkpoint
    model = worldflux.WorldModel.from_pretrained(path)
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

    before = snapshot(tmp_path / "ckpt")

    def broken(label: str) -> None:
        if label.endswith("replay.safetensors"):
            raise OSError("disk full")

    monkeypatch.setattr(store, "step_hook", broken)
    with pytest.raises(OSError, match="disk full"):
        save_training_checkpoint(tmp_path / "ckpt", trainer, replay, {"tag": "new"})
    monkeypatch.undo()
    assert snapshot(tmp_path / "ckpt") == before
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
    fresh = make_trainer(1)
    before = everything(fresh.model)
    optim = version_dir(tmp_path / "ckpt") / "optimizers.safetensors"
    optim.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"optimizers\.safetensors: 7 bytes, the manifest"):
        load_training_checkpoint(tmp_path / "ckpt", fresh)
    write_sealed(version_dir(tmp_path / "ckpt"), "optimizers.safetensors", b"garbage")
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
    meta_path = unit_dir(tmp_path / "ckpt") / "metadata.json"
    meta = json.loads(meta_path.read_text())
    want = trainer.model.bound_contract().fingerprint()
    assert meta["contract_fingerprint"] == want
    meta["contract_fingerprint"] = "0123456789abcdef"
    meta_path.write_text(json.dumps(meta))
    reseal(meta_path.parent)  # a consistent checkpoint: only the fingerprint differs
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


# -- all-or-nothing loads: a bad part fails before the trainer or the global RNGs are touched ----
def _edit_state(**changes: object) -> Callable[[Path], None]:
    return lambda root: edit_json(root, "training_state.json", **changes)


def _edit_rng(part: str, **changes: object) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        rng = json.loads((root / "training_state.json").read_text())["rng"]
        if isinstance(rng[part], dict):
            rng[part].update(changes)
        else:
            rng[part] = changes["value"]
        edit_json(root, "training_state.json", rng=rng)

    return apply


def _rename_optimizer(root: Path) -> None:
    optimizers = json.loads((root / "training_state.json").read_text())["optimizers"]
    optimizers["renamed"] = optimizers.pop("model")
    edit_json(root, "training_state.json", optimizers=optimizers)


def _half_exp_avg(root: Path) -> None:
    from safetensors.torch import save_file

    tensors = load_file(str(root / "optimizers.safetensors"))
    key = next(k for k in sorted(tensors) if k.endswith("exp_avg"))
    tensors[key] = tensors[key].half()
    save_file(tensors, str(root / "optimizers.safetensors"))
    reseal(root)


def _replay_capacity(capacity: int) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        layout = json.loads((root / "replay.json").read_text())
        layout["capacity"] = capacity
        edit_json(root, "replay.json", **layout)
        edit_json(root, "training_state.json", replay=layout)

    return apply


BAD_STATES: dict[str, tuple[Callable[[Path], None], str]] = {
    "torch rng too short": (
        _edit_rng("torch", value="AAAA"),
        r"field 'rng\.torch' is not a torch RNG state",
    ),
    "numpy rng keys": (_edit_rng("numpy", keys=[1, 2, 3]), r"field 'rng\.numpy'"),
    "python rng internal": (_edit_rng("python", internal=["x"]), r"field 'rng\.python'"),
    "training format 1": (_edit_state(format_version=1), "format_version 1 is not supported"),
    "negative step": (_edit_state(step=-1), "field 'step' must be a non-negative integer"),
    "optimizer names": (_rename_optimizer, r"field 'optimizers' names \['policy', 'renamed'\]"),
    "float16 exp_avg": (_half_exp_avg, r"exp_avg' is torch\.float16 \[\d+(, \d+)*\], the param"),
    "replay of 12 TB": (_replay_capacity(10**12), r"replay buffer \(capacity x row\) needs \d+"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_a_bad_part_fails_before_the_trainer_or_the_rngs_are_touched(
    case: str, tmp_path: Path, toy2: None
) -> None:
    trainer = make_trainer()
    trainer.train_step(batch())
    replay = ReplayBuffer(16, (3,), 1)
    replay.begin_episode(np.zeros(3, dtype=np.float32))
    replay.add(np.zeros(1, dtype=np.float32), 1.0, False, False, np.ones(3, dtype=np.float32))
    save_training_checkpoint(tmp_path / "ckpt", trainer, replay, {"tag": "x"})
    corrupt, message = BAD_STATES[case]
    corrupt(version_dir(tmp_path / "ckpt"))
    fresh = make_trainer(1)
    fresh.train_step(batch())  # an optimiser state that a half-done load would overwrite
    model_before = everything(fresh.model)
    optim_before = {k: o.state_dict() for k, o in fresh.optimizers.items()}
    optim_before = json.loads(json.dumps(optim_before, default=lambda t: t.tolist()))
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    rng_before = get_rng_state()
    with pytest.raises(CheckpointError, match=message):
        load_training_checkpoint(tmp_path / "ckpt", fresh)
    assert all(torch.equal(v, model_before[k]) for k, v in everything(fresh.model).items())
    optim_after = {k: o.state_dict() for k, o in fresh.optimizers.items()}
    assert json.loads(json.dumps(optim_after, default=lambda t: t.tolist())) == optim_before
    assert fresh.step == 1 and get_rng_state() == rng_before
