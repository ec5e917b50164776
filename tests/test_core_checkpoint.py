"""save_pretrained / from_pretrained: round trips, atomic writes, all-or-nothing loads."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _checkpoint_helpers import edit_json, reseal, snapshot, unit_dir, version_dir, write_sealed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import worldflux.core.checkpoint as checkpoint
import worldflux.core.checkpoint_store as store
from worldflux.core.exceptions import CheckpointError
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.types import Batch
from worldflux.factory import create_world_model

OBS = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
ACTIONS = torch.rand(3, 4, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1


def outputs(model: WorldModel, batch: Batch) -> dict[str, torch.Tensor]:
    """Everything observable about a model's function."""
    with torch.no_grad():
        state = model.encode(OBS)
        traj = model.rollout(state, ACTIONS)
        loss = model.loss(batch)
    return {
        "latent": state["latent"],
        "states": traj.states["latent"],
        "rewards": traj.rewards,
        "continues": traj.continues,
        "loss": loss.loss,
    }


@pytest.fixture
def saved(toy_model: WorldModel, tmp_path: Path) -> Path:
    return toy_model.save_pretrained(tmp_path / "ckpt")


def test_round_trip_gives_identical_outputs(
    toy_model: WorldModel, toy_batch: Batch, saved: Path
) -> None:
    assert sorted(p.name for p in saved.iterdir()) == ["CHECKPOINT", version_dir(saved).name]
    assert sorted(p.name for p in version_dir(saved).iterdir()) == [
        "config.json",
        "manifest.json",
        "metadata.json",
        "model.safetensors",
    ]
    metadata = json.loads((version_dir(saved) / "metadata.json").read_text())
    assert metadata["contract_fingerprint"] == toy_model.bound_contract().fingerprint()
    assert metadata["trainable_parameters"] == toy_model.num_parameters()
    assert metadata["model_type"] == "wf_toy" and metadata["maturity"] == "experimental"
    loaded = WorldModel.from_pretrained(saved)
    assert type(loaded) is type(toy_model) and loaded.config == toy_model.config
    expected, found = outputs(toy_model, toy_batch), outputs(loaded, toy_batch)
    for key in expected:
        assert torch.equal(expected[key], found[key]), key
    assert type(toy_model).from_pretrained(saved).config == toy_model.config


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)
@given(
    latent_dim=st.integers(1, 12),
    obs_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    action_dim=st.integers(1, 4),
    discrete=st.booleans(),
    swap=st.booleans(),
)
def test_round_trip_property(
    toy_model_type: str,
    latent_dim: int,
    obs_shape: tuple[int, ...],
    action_dim: int,
    discrete: bool,
    swap: bool,
) -> None:
    """Any config, action space and swap: the loaded model computes exactly the same."""
    torch.manual_seed(latent_dim)
    model = create_world_model(
        "wf_toy:ci",
        obs_shape=obs_shape,
        action_dim=action_dim,
        action_type="discrete" if discrete else "continuous",
        latent_dim=latent_dim,
        component_overrides={"observation_encoder": "wftest/mlp_encoder"} if swap else None,
    )
    obs = torch.randn(2, *obs_shape)
    acts = torch.randint(0, action_dim, (2, 3)) if discrete else torch.rand(2, 3, action_dim)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = WorldModel.from_pretrained(model.save_pretrained(Path(tmp) / "ckpt"))
    assert loaded.config == model.config
    with torch.no_grad():
        a, b = model.rollout(model.encode(obs), acts), loaded.rollout(loaded.encode(obs), acts)
    assert torch.equal(a.states["latent"], b.states["latent"])
    assert torch.equal(a.rewards, b.rewards) and torch.equal(a.continues, b.continues)


def test_round_trip_of_a_swapped_model(
    toy_model: WorldModel, toy_batch: Batch, tmp_path: Path
) -> None:
    toy_model.swap_component("observation_encoder", "wftest/mlp_encoder", {"hidden": 7})
    path = toy_model.save_pretrained(tmp_path / "swapped")
    loaded = WorldModel.from_pretrained(path)
    assert loaded.component_overrides == toy_model.component_overrides
    assert type(loaded.observation_encoder).__name__ == "ToyMLPEncoder"
    expected, found = outputs(toy_model, toy_batch), outputs(loaded, toy_batch)
    assert all(torch.equal(expected[k], found[k]) for k in expected)


def test_round_trip_keeps_float64(toy_model: WorldModel, toy_batch: Batch, tmp_path: Path) -> None:
    toy_model.double()
    loaded = WorldModel.from_pretrained(toy_model.save_pretrained(tmp_path / "f64"))
    assert all(p.dtype == torch.float64 for p in loaded.parameters())
    assert torch.equal(outputs(toy_model, toy_batch)["loss"], outputs(loaded, toy_batch)["loss"])


def test_unregistered_module_cannot_be_saved_and_nothing_is_written(
    toy_model: WorldModel, tmp_path: Path
) -> None:
    class Enc(nn.Module):
        """A working encoder that is not a registered implementation (wraps the toy's)."""

        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, obs: torch.Tensor) -> Any:
            return self.inner(obs)

    toy_model.swap_component("observation_encoder", Enc(toy_model.observation_encoder))
    with pytest.raises(CheckpointError, match=r"slot\(s\) \['observation_encoder'\]"):
        toy_model.save_pretrained(tmp_path / "nope")
    assert list(tmp_path.iterdir()) == []


def test_unregistered_model_classes_cannot_be_saved(toy_model: WorldModel, tmp_path: Path) -> None:
    class Unregistered(type(toy_model)):  # type: ignore[misc]
        pass

    subclass = Unregistered(toy_model.config)
    with pytest.raises(CheckpointError, match="not the class registered as model type 'wf_toy'"):
        subclass.save_pretrained(tmp_path / "sub")
    assert list(tmp_path.iterdir()) == []


def test_overwriting_a_checkpoint_replaces_it(
    toy_model: WorldModel, saved: Path, toy_batch: Batch
) -> None:
    with torch.no_grad():
        for p in toy_model.parameters():
            p.add_(1.0)
    toy_model.save_pretrained(saved)
    loaded = WorldModel.from_pretrained(saved)
    assert torch.equal(outputs(loaded, toy_batch)["loss"], outputs(toy_model, toy_batch)["loss"])
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ckpt"]
    assert len(list(saved.iterdir())) == 2  # the pointer and one version: no temp/old left


def test_a_failed_save_leaves_the_existing_checkpoint_untouched(
    toy_model: WorldModel, saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(saved)

    def crash(tensors: dict[str, torch.Tensor], metadata: Any = None) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_safetensors", crash)
    with torch.no_grad():
        next(toy_model.parameters()).add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        toy_model.save_pretrained(saved)
    assert snapshot(saved) == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ckpt"]


def test_a_failed_pointer_replace_keeps_the_old_checkpoint(
    toy_model: WorldModel, saved: Path, toy_batch: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(saved)
    expected = outputs(WorldModel.from_pretrained(saved), toy_batch)["loss"]

    def flaky(src: Any, dst: Any) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(store.os, "replace", flaky)
    with torch.no_grad():
        next(toy_model.parameters()).add_(1.0)
    with pytest.raises(OSError, match="rename failed"):
        toy_model.save_pretrained(saved)
    monkeypatch.undo()
    assert snapshot(saved) == before
    assert torch.equal(outputs(WorldModel.from_pretrained(saved), toy_batch)["loss"], expected)


def test_save_refuses_to_replace_unrelated_directories(
    toy_model: WorldModel, tmp_path: Path
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(CheckpointError, match=r"holds files that are not part of .*thesis\.tex"):
        toy_model.save_pretrained(folder)
    assert (folder / "thesis.tex").read_text() == "precious"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(CheckpointError, match="is not a directory"):
        toy_model.save_pretrained(a_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert WorldModel.from_pretrained(toy_model.save_pretrained(empty)).config == toy_model.config


# -- bad checkpoints: always CheckpointError, never a half-loaded model ---------------------------
# (the hostile corpus with time and memory limits is tests/reliability/)
def truncate(path: Path) -> None:
    weights = unit_dir(path) / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])


def flip_byte(path: Path) -> None:
    weights = unit_dir(path) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's data
    weights.write_bytes(bytes(data))


def garble(path: Path) -> None:
    write_sealed(unit_dir(path), "model.safetensors", b"\x00" * 64)


def retype(path: Path) -> None:
    """One weight stored as float16 (consistently sealed): must not be cast silently."""
    from safetensors.torch import load_file, save_file

    weights = unit_dir(path) / "model.safetensors"
    state = load_file(str(weights))
    key = sorted(state)[0]
    state[key] = state[key].half()
    save_file(state, str(weights))
    reseal(unit_dir(path))


def drop_tensor(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = unit_dir(path) / "model.safetensors"
    state = load_file(str(weights))
    state.pop(sorted(state)[0])
    save_file(state, str(weights))
    reseal(unit_dir(path))


def reshape_config(path: Path) -> None:
    """A consistent config + metadata for latent_dim 16 next to weights for latent_dim 8."""
    unit = unit_dir(path)
    doc = json.loads((unit / "config.json").read_text())
    doc["config"]["latent_dim"] = 16
    (unit / "config.json").write_text(json.dumps(doc))
    wide = create_world_model("wf_toy:ci", obs_shape=(5,), action_dim=3, latent_dim=16)
    edit_json(unit, "metadata.json", contract_fingerprint=wide.bound_contract().fingerprint())


def edit(file: str, **changes: Any) -> Callable[[Path], None]:
    return lambda path: edit_json(unit_dir(path), file, **changes)


def remove(file: str) -> Callable[[Path], None]:
    return lambda path: (unit_dir(path) / file).unlink()


CORRUPTIONS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "truncated weights": (truncate, r"model\.safetensors: \d+ bytes, the manifest says"),
    "flipped byte in tensor data": (flip_byte, r"model\.safetensors: content hash differs"),
    "garbage weights (sealed)": (garble, r"model\.safetensors: corrupt or unreadable"),
    "float16 weight (sealed)": (retype, r"does not match the model: wrong dtype 1: .*float16"),
    "missing tensor": (drop_tensor, r"does not match the model: missing 1"),
    "mis-shaped config": (reshape_config, r"does not match the model: mis-shaped"),
    "other fingerprint": (
        edit("metadata.json", contract_fingerprint="0" * 16),
        r"contract fingerprint '0000000000000000' differs",
    ),
    "future format": (edit("metadata.json", format_version=99), "format_version 99"),
    "unknown type": (
        lambda p: [edit(f, model_type="wf_gone")(p) for f in ("config.json", "metadata.json")],
        "cannot rebuild the model: .*no model 'wf_gone'",
    ),
    "type disagreement": (edit("metadata.json", model_type="other"), "assembled from two models"),
    "bad config value": (
        edit("config.json", config={"latent_dim": -3}),
        r"cannot rebuild the model: .*latent_dim",
    ),
    "bad override": (
        edit("config.json", component_overrides={"decoder": {"impl": "wftest/none"}}),
        "cannot rebuild the model: no decoder implementation",
    ),
    "missing weights": (remove("model.safetensors"), r"model\.safetensors: missing"),
    "missing config": (remove("config.json"), r"config\.json: missing"),
    "bad json": (
        lambda p: write_sealed(unit_dir(p), "metadata.json", b"{not json"),
        r"metadata\.json: not valid JSON",
    ),
    "bad dtype": (edit("metadata.json", dtype="int8"), "field 'dtype' 'int8' is not one of"),
    "no pointer (format 1 layout)": (
        lambda p: (p / "CHECKPOINT").unlink(),
        r"CHECKPOINT: missing \(not a worldflux checkpoint, or one written by a worldflux before",
    ),
    "unlisted file": (
        lambda p: (unit_dir(p) / "extra.bin").write_bytes(b"x"),
        r"holds files not in its manifest: \['extra\.bin'\]",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_bad_checkpoints_raise_checkpoint_error_before_loading_anything(
    case: str, saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt, message = CORRUPTIONS[case]
    corrupt(saved)
    model_cls = WorldModelRegistry.get("wf_toy")
    loads: list[int] = []
    real = model_cls.load_state_dict

    def spy(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        loads.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(model_cls, "load_state_dict", spy)
    with pytest.raises(CheckpointError, match=message) as info:
        WorldModel.from_pretrained(saved)
    assert info.value.code == "WF600"
    assert loads == []  # nothing was loaded into any model


def test_loading_into_the_wrong_class(saved: Path, toy_model_type: str) -> None:
    class Other(WorldModel):
        def loss(self, batch: Batch) -> Any:
            raise NotImplementedError

    with pytest.raises(CheckpointError, match=r"holds a 'wf_toy' model .*not a Other"):
        Other.from_pretrained(saved)
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        WorldModel.from_pretrained(saved.parent / "missing")


def test_loaded_models_can_be_moved(saved: Path) -> None:
    loaded = WorldModel.from_pretrained(saved, device="cpu")
    assert next(loaded.parameters()).device == torch.device("cpu")
    rebuilt = create_world_model("wf_toy:ci", obs_shape=(5,), action_dim=3)
    assert rebuilt.bound_contract().fingerprint() == loaded.bound_contract().fingerprint()


def test_format_1_checkpoints_are_refused_by_file_and_field_and_replaced_by_a_save(
    toy_model: WorldModel, tmp_path: Path
) -> None:
    old = tmp_path / "v1"
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"weights")
    (old / "config.json").write_text("{}")
    (old / "metadata.json").write_text('{"format_version": 1}')
    with pytest.raises(CheckpointError, match=r"v1/metadata\.json: format_version 1 is not supp"):
        WorldModel.from_pretrained(old)
    toy_model.save_pretrained(old)  # a save over it replaces the old layout
    assert sorted(p.name for p in old.iterdir()) == ["CHECKPOINT", version_dir(old).name]
    assert WorldModel.from_pretrained(old).config == toy_model.config


def test_loading_leaves_the_global_torch_rng_alone(saved: Path) -> None:
    """Rebuilding the model initialises parameters; that must not move the caller's RNG."""
    torch.manual_seed(3)
    before = torch.get_rng_state()
    WorldModel.from_pretrained(saved)
    assert torch.equal(torch.get_rng_state(), before)
