"""A corpus of hostile checkpoints: each is loaded in a forked child with a time limit and a
memory limit, and must be refused with a CheckpointError naming the file and the field, quickly
and without allocating what the checkpoint asks for.

``WORLDFLUX_RELIABILITY_REPORT=path.json`` writes the time and peak memory of every case
(the figures in docs/reliability.md)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from _checkpoint_helpers import edit_json, reseal, unit_dir, version_dir, write_sealed
from reliability_harness import Outcome, record, requires_fork, run_bounded
from safetensors.torch import load_file, save_file

import worldflux
from worldflux.core.checkpoint_io import available_memory
from worldflux.core.registry import WorldModelRegistry
from worldflux.training.checkpoint import load_training_checkpoint, save_training_checkpoint
from worldflux.training.replay import ReplayBuffer
from worldflux.training.toy import registered_toy_model
from worldflux.training.trainer import Trainer

pytestmark = requires_fork
SECONDS, MEMORY_MIB = 20, 1024


# -- model checkpoints (tdmpc2:ci) ---------------------------------------------------------------
def _flip(path: Path) -> None:
    weights = unit_dir(path) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10
    weights.write_bytes(bytes(data))


def _retype(path: Path) -> None:
    weights = unit_dir(path) / "model.safetensors"
    state = load_file(str(weights))
    key = sorted(state)[0]
    state[key] = state[key].half()
    save_file(state, str(weights))
    reseal(unit_dir(path))


def _config(path: Path, fingerprint: bool = True, **changes: Any) -> None:
    """Change config fields and (``fingerprint``) store the fingerprint such a model has."""
    unit = unit_dir(path)
    doc = json.loads((unit / "config.json").read_text())
    doc["config"].update(changes)
    edit_json(unit, "config.json", config=doc["config"])
    if not fingerprint:
        return
    cls = WorldModelRegistry.get("tdmpc2")
    with torch.device("meta"):
        model = cls(WorldModelRegistry.get_config_class("tdmpc2")(**doc["config"]))
    edit_json(unit, "metadata.json", contract_fingerprint=model.bound_contract().fingerprint())


def _sparse_weights(size: int, sealed: bool) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        unit = unit_dir(path)
        with open(unit / "model.safetensors", "r+b") as handle:
            handle.truncate(size)
        if sealed:
            manifest = json.loads((unit / "manifest.json").read_text())
            manifest["files"]["model.safetensors"]["size"] = size
            (unit / "manifest.json").write_text(json.dumps(manifest))

    return apply


def _header_length(path: Path) -> None:
    weights = unit_dir(path) / "model.safetensors"
    write_sealed(weights.parent, weights.name, struct.pack("<Q", 2**64 - 1) + b"{}")


def _header_shape(path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**39, 2**39], "data_offsets": [0, 4]}})
    data = struct.pack("<Q", len(header)) + header.encode() + b"\0" * 4
    write_sealed(unit_dir(path), "model.safetensors", data)


def _replace_with(make: Callable[[Path], None], name: str) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        target = unit_dir(path) / name
        target.unlink()
        make(target)

    return apply


def _pointer(text: bytes) -> Callable[[Path], None]:
    return lambda path: (path / "CHECKPOINT").write_bytes(text)


MODEL_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped bit in tensor data": (_flip, r"model\.safetensors: content hash differs"),
    "float16 weight": (_retype, r"model\.safetensors does not match the model: wrong dtype 1"),
    "latent_dim 1e9 (160 GB), consistent fingerprint": (
        lambda p: _config(p, latent_dim=10**9),
        r"config\.json: the config builds a model of more than \d+ elements",
    ),
    "num_q 1e6 (a million Q networks)": (
        lambda p: _config(p, num_q=10**6, fingerprint=False),
        r"config\.json: the config builds a model of more than \d+ elements",
    ),
    "binary config.json": (
        lambda p: write_sealed(unit_dir(p), "config.json", bytes(range(256)) * 8),
        r"config\.json: not valid JSON \(not UTF-8",
    ),
    "metadata.json nested 100000 deep": (
        lambda p: write_sealed(unit_dir(p), "metadata.json", b"[" * 100_000 + b"]" * 100_000),
        r"metadata\.json: not valid JSON \(nested 100000 deep, the limit is 64\)",
    ),
    "config.json of 5 MB": (
        lambda p: write_sealed(unit_dir(p), "config.json", b" " * (5 << 20) + b"{}"),
        r"config\.json: \d+ bytes, more than the limit",
    ),
    "a 100000-digit integer": (
        lambda p: write_sealed(unit_dir(p), "metadata.json", b"[" + b"9" * 100_000 + b"]"),
        r"metadata\.json: not valid JSON \(Exceeds the limit",
    ),
    "12 TB sparse weights": (
        _sparse_weights(12 << 40, sealed=False),
        r"model\.safetensors: model\.safetensors has \d+ bytes, more than the limit",
    ),
    "sparse weights of twice the free memory, manifest agrees": (
        _sparse_weights(min(2 * available_memory(), 1 << 39), sealed=True),
        r"model\.safetensors: model\.safetensors needs \d+ bytes, more than the \d+ bytes of mem",
    ),
    "safetensors header length 2^64-1": (
        _header_length,
        r"model\.safetensors: corrupt or unreadable \(header length",
    ),
    "tensor shape 2^39 x 2^39 in 4 bytes": (
        _header_shape,
        r"tensor 'w': data_offsets do not match its shape and dtype",
    ),
    "config.json is a FIFO": (
        _replace_with(lambda t: os.mkfifo(t), "config.json"),
        r"config\.json: config\.json is not a regular file",
    ),
    "config.json links to /dev/zero": (
        _replace_with(lambda t: t.symlink_to("/dev/zero"), "config.json"),
        r"config\.json: config\.json is a symbolic link",
    ),
    "pointer escapes the directory": (
        _pointer(b"../../etc\n"),
        r"CHECKPOINT: field 'version' '\.\./\.\./etc' is not a version name",
    ),
    "binary pointer": (_pointer(b"\xff\xfe\x00" * 40), r"CHECKPOINT: field 'version'"),
    "manifest of format 1": (
        lambda p: (unit_dir(p) / "manifest.json").write_text('{"format_version": 1}'),
        r"manifest\.json: format_version 1 is not supported",
    ),
    "empty weights file": (
        lambda p: write_sealed(unit_dir(p), "model.safetensors", b""),
        r"model\.safetensors: corrupt or unreadable \(shorter than a header\)",
    ),
}


@pytest.fixture(scope="module")
def model_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = worldflux.create_world_model("tdmpc2:ci", obs_shape=(3,), action_dim=1)
    return model.save_pretrained(tmp_path_factory.mktemp("base") / "model")


def _check(case: str, outcome: Outcome, message: str) -> None:
    record(case, {"seconds": outcome.seconds, "peak_mib": outcome.peak_mib})
    assert outcome.status == "exited", f"{case}: {outcome.status}"
    assert outcome.error_type == "CheckpointError", f"{case}: {outcome}"
    assert outcome.seconds < SECONDS and outcome.peak_mib < MEMORY_MIB
    import re

    assert re.search(message, outcome.message), f"{case}: {outcome.message}"


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_hostile_model_checkpoints_are_refused_in_bounded_time_and_memory(
    case: str, model_checkpoint: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ckpt"
    shutil.copytree(model_checkpoint, path)
    corrupt, message = MODEL_CASES[case]
    corrupt(path)
    outcome = run_bounded(
        lambda _: worldflux.WorldModel.from_pretrained(path), seconds=SECONDS, memory_mib=MEMORY_MIB
    )
    _check(f"model: {case}", outcome, message)


# -- training checkpoints (training_toy, two optimisers, a replay buffer) -------------------------
def _state(**changes: Any) -> Callable[[Path], None]:
    return lambda path: edit_json(version_dir(path), "training_state.json", **changes)


def _replay(**changes: Any) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        root = version_dir(path)
        layout = json.loads((root / "replay.json").read_text())
        layout.update(changes)
        edit_json(root, "replay.json", **layout)
        edit_json(root, "training_state.json", replay=layout)

    return apply


def _optim(path: Path) -> None:
    root = version_dir(path)
    tensors = load_file(str(root / "optimizers.safetensors"))
    key = next(k for k in sorted(tensors) if k.endswith("exp_avg_sq"))
    tensors[key] = torch.zeros(7)
    save_file(tensors, str(root / "optimizers.safetensors"))
    reseal(root)


def _link_model(path: Path) -> None:
    root = version_dir(path)
    shutil.move(str(root / "model"), str(path.parent / "elsewhere"))
    (root / "model").symlink_to(path.parent / "elsewhere")


def _rng(path: Path) -> None:
    root = version_dir(path)
    rng = json.loads((root / "training_state.json").read_text())["rng"]
    rng["torch"] = "AAAA"
    edit_json(root, "training_state.json", rng=rng)


TRAINING_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "replay capacity 1e12 (12 TB)": (
        _replay(capacity=10**12),
        r"replay\.json: the replay buffer \(capacity x row\) needs \d+ bytes",
    ),
    "replay obs_shape 2^31 x 2^31": (
        _replay(obs_shape=[2**31, 2**31]),
        r"replay\.json: the replay buffer \(capacity x row\) needs \d+ bytes",
    ),
    "replay rows that disagree with replay.json": (
        _replay(total=3),
        r"replay\.safetensors does not match replay\.json: mis-shaped",
    ),
    "malformed torch RNG state": (_rng, r"training_state\.json: field 'rng\.torch'"),
    "optimiser state of the wrong shape": (
        _optim,
        r"training_state\.json: field 'optimizers\.\w+\.state\.\d+\.exp_avg_sq' is torch\.float32",
    ),
    "training_state.json of 40 MB": (
        lambda p: write_sealed(version_dir(p), "training_state.json", b" " * (40 << 20) + b"{}"),
        r"training_state\.json: \d+ bytes, more than the limit",
    ),
    "model/ is a symbolic link to another checkpoint's model": (
        lambda p: _link_model(p),
        r"/model: not a directory \(or a symbolic link to one\)",
    ),
    "training_state.json of format 1": (
        _state(format_version=1),
        r"training_state\.json: format_version 1 is not supported",
    ),
    "unknown optimiser tensor reference": (
        _state(optimizers={"model": {"__tensor__": "nope"}}),
        r"field 'optimizers\.model' references tensor 'nope'",
    ),
}


@pytest.fixture(scope="module")
def toy() -> Iterator[None]:
    with registered_toy_model(two_stage=True):
        yield


def _trainer() -> Trainer:
    model = worldflux.create_world_model("training_toy:ci", obs_shape=(3,), action_dim=1)
    return Trainer(model)


@pytest.fixture(scope="module")
def training_checkpoint(toy: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    trainer = _trainer()
    replay = ReplayBuffer(64, (3,), 1)
    replay.begin_episode([0.0, 0.0, 0.0])
    for i in range(10):
        replay.add([0.1], 1.0, False, i == 9, [float(i)] * 3)
    batch = replay.sample(4, 4)
    trainer.train_step(batch)
    path = tmp_path_factory.mktemp("base") / "training"
    return save_training_checkpoint(path, trainer, replay, {"tag": "base"})


@pytest.mark.parametrize("case", sorted(TRAINING_CASES))
def test_hostile_training_checkpoints_are_refused_in_bounded_time_and_memory(
    case: str, training_checkpoint: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ckpt"
    shutil.copytree(training_checkpoint, path)
    corrupt, message = TRAINING_CASES[case]
    corrupt(path)
    outcome = run_bounded(
        lambda trainer: load_training_checkpoint(path, trainer),
        prepare=_trainer,
        seconds=SECONDS,
        memory_mib=MEMORY_MIB,
    )
    _check(f"training: {case}", outcome, message)


def test_the_clean_checkpoints_load_within_the_same_limits(
    model_checkpoint: Path, training_checkpoint: Path
) -> None:
    """The corpus' originals load under the same limits (the limits are not what refuses)."""
    outcome = run_bounded(lambda _: worldflux.WorldModel.from_pretrained(model_checkpoint))
    assert (outcome.status, outcome.error_type) == ("exited", None), outcome
    record("model: clean (loads)", {"seconds": outcome.seconds, "peak_mib": outcome.peak_mib})
    outcome = run_bounded(
        lambda trainer: load_training_checkpoint(training_checkpoint, trainer), prepare=_trainer
    )
    assert (outcome.status, outcome.error_type) == ("exited", None), outcome
    record("training: clean (loads)", {"seconds": outcome.seconds, "peak_mib": outcome.peak_mib})
