"""Training checkpoints: everything needed to continue a run bitwise exactly (on CPU).

This layer only maps trainer state to and from the checkpoint module
(:mod:`worldflux.core.checkpoint_store` writes crash-safely, :mod:`worldflux.core.checkpoint_io`
reads with bounds and hashes, :mod:`worldflux.core.checkpoint_state` validates). A version
directory of a training checkpoint holds::

    model/                    the model unit (as ``save_pretrained`` writes it, own manifest)
    optimizers.safetensors    every tensor of every optimiser state (exp_avg, step, ...)
    training_state.json       optimiser state structure and hyperparameters (tensors referenced by
                              key), RNG states (torch, numpy, python), trainer step, replay
                              position, and the run loop's own state (env RNG, counters)
    replay.safetensors        replay rows + sampling generator   (when a buffer is saved)
    replay.json               replay layout and position
    manifest.json             size and SHA-256 of every file above

Loading reads and validates all of it before the trainer is touched, and restores the
optimisers if applying fails: a failed load leaves the trainer and the global RNGs as they were.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as save_safetensors
from torch import Tensor

from worldflux.core import checkpoint_io
from worldflux.core.checkpoint import (
    FORMAT_VERSION,
    check_fingerprint,
    exact_header_check,
    read_model_documents,
    write_model_unit,
)
from worldflux.core.checkpoint_io import (
    CheckpointUnit,
    check_allocation,
)
from worldflux.core.checkpoint_state import (
    ReplayLayout,
    decode_optimizers,
    parse_replay_layout,
    parse_rng,
)
from worldflux.core.checkpoint_store import UnitWriter, resolve, write_checkpoint
from worldflux.core.exceptions import CheckpointError
from worldflux.core.model import WorldModel
from worldflux.training.replay import ReplayBuffer
from worldflux.training.trainer import Trainer

__all__ = [
    "STATE_FILE",
    "LoadedCheckpoint",
    "get_rng_state",
    "load_run_model",
    "load_training_checkpoint",
    "read_training_extra",
    "save_training_checkpoint",
    "set_rng_state",
]

STATE_FILE = "training_state.json"
OPTIM_FILE = "optimizers.safetensors"
REPLAY_FILE = "replay.safetensors"
REPLAY_META = "replay.json"
_ARRAYS = ("obs", "actions", "rewards", "terminated", "truncated", "is_first", "episode")
#: Names of the format-1 layout, replaced when a new checkpoint is saved over one.
LEGACY = frozenset({"model", OPTIM_FILE, STATE_FILE, REPLAY_FILE, REPLAY_META})


# -- RNG ----------------------------------------------------------------------------------------
def get_rng_state() -> dict[str, Any]:
    """The global torch, numpy and python RNG states as JSON-able data."""
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
        "numpy": {
            "kind": np_state[0],
            "keys": np_state[1].tolist(),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore :func:`get_rng_state` output (validated first: CheckpointError, nothing set)."""
    parse_rng(dict(state), Path("rng state")).apply()


# -- optimiser state <-> (JSON, tensors) --------------------------------------------------------
def _encode(value: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    if isinstance(value, Tensor):
        key = prefix
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v, f"{prefix}.{k}", tensors) for k, v in value.items()}
        return {"__items__": [[k, _encode(v, f"{prefix}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise CheckpointError(
        f"optimiser state entry {prefix!r}: cannot store a {type(value).__name__}"
    )


# -- save ---------------------------------------------------------------------------------------
def save_training_checkpoint(
    directory: str | Path,
    trainer: Trainer,
    replay: ReplayBuffer | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write model, optimisers, RNG states, step, replay and ``extra`` (JSON-able) crash-safely.

    A save interrupted at any point (an error, or the process killed) leaves the previous or
    the new checkpoint loadable at ``directory``.
    """
    tensors: dict[str, Tensor] = {}
    trainer_state = trainer.state_dict()
    document = {
        "format_version": FORMAT_VERSION,
        "step": trainer_state["step"],
        "optimizers": _encode(trainer_state["optimizers"], "optimizers", tensors),
        "rng": get_rng_state(),
        "replay": None if replay is None else replay.state(),
        "extra": dict(extra or {}),
    }
    replay_tensors: dict[str, Tensor] = {}
    if replay is not None:
        rows = replay.size
        replay_tensors = {name: getattr(replay, name)[:rows].contiguous() for name in _ARRAYS}
        replay_tensors["generator"] = replay.generator.get_state()

    def fill(writer: UnitWriter) -> None:
        write_model_unit(trainer.model, writer.subunit("model", "model"))
        writer.write_bytes(OPTIM_FILE, save_safetensors(tensors))
        if replay is not None:
            writer.write_bytes(REPLAY_FILE, save_safetensors(replay_tensors))
            writer.write_json(REPLAY_META, document["replay"])
        writer.write_json(STATE_FILE, document)

    return write_checkpoint(Path(directory), "training", FORMAT_VERSION, fill, legacy=LEGACY)


# -- load ---------------------------------------------------------------------------------------
@dataclass
class LoadedCheckpoint:
    """What :func:`load_training_checkpoint` gives back besides the restored trainer."""

    step: int
    replay: ReplayBuffer | None
    extra: dict[str, Any] = field(default_factory=dict)


def _open(directory: str | Path) -> tuple[CheckpointUnit, dict[str, Any]]:
    """The verified training unit and its checked ``training_state.json``."""
    unit = CheckpointUnit(
        resolve(Path(directory)), "training", FORMAT_VERSION, subdirs=frozenset({"model"})
    )
    path = unit.root / STATE_FILE
    document = unit.json(STATE_FILE, checkpoint_io.LIMITS.max_state_json_bytes)
    version = document.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    step = document.get("step")
    if type(step) is not int or not 0 <= step < 1 << 62:
        raise CheckpointError(f"{path}: field 'step' must be a non-negative integer")
    if not isinstance(document.get("extra"), dict):
        raise CheckpointError(f"{path}: field 'extra' must be an object")
    return unit, document


def read_training_extra(directory: str | Path) -> dict[str, Any]:
    """The verified ``extra`` (loop state) of the training checkpoint at ``directory``."""
    return dict(_open(directory)[1]["extra"])


def _read_replay(unit: CheckpointUnit, document: dict[str, Any]) -> ReplayBuffer:
    meta_path = unit.root / REPLAY_META
    raw = unit.json(REPLAY_META)
    if raw != document.get("replay"):
        raise CheckpointError(f"{unit.root / STATE_FILE}: field 'replay' differs from {meta_path}")
    layout: ReplayLayout = parse_replay_layout(raw, meta_path)
    check_allocation(
        layout.capacity * layout.row_bytes(), "the replay buffer (capacity x row)", meta_path
    )
    expected = {
        name: torch.empty(shape, dtype=dtype, device="meta")
        for name, (dtype, shape) in layout.expected(layout.size).items()
    }
    tensors = unit.tensors(REPLAY_FILE, exact_header_check(expected, "replay.json"))
    try:
        torch.Generator().set_state(tensors["generator"])
    except RuntimeError as error:
        raise CheckpointError(
            f"{unit.root / REPLAY_FILE}: tensor 'generator' is not a generator state ({error})"
        ) from None
    buffer = ReplayBuffer(
        layout.capacity,
        layout.obs_shape,
        layout.action_dim,
        layout.action_type,
        obs_dtype=layout.obs_dtype,
    )
    buffer.total, buffer.episodes = layout.total, layout.episodes
    buffer.episode_open = layout.episode_open
    for name in _ARRAYS:
        getattr(buffer, name)[: layout.size] = tensors[name]
    buffer.generator.set_state(tensors["generator"])
    return buffer


def load_training_checkpoint(
    directory: str | Path, trainer: Trainer, *, restore_rng: bool = True
) -> LoadedCheckpoint:
    """Restore weights, optimiser states, step and (optionally) the global RNG states into
    ``trainer``; return the replay buffer (if saved) and the loop's ``extra`` state.

    Every file is read, hashed, bounded and validated (model type, contract fingerprint, every
    weight's name, shape and dtype, the optimiser structure, RNG states, the replay layout and
    its memory) before anything is applied; a failed load leaves the trainer and the global RNGs
    exactly as they were.

    Raises:
        CheckpointError: naming the file and the field.
    """
    unit, document = _open(directory)
    state_path = unit.root / STATE_FILE
    model = trainer.model
    model_unit = CheckpointUnit(unit.root / "model", "model", FORMAT_VERSION)
    _, metadata = read_model_documents(model_unit)
    meta_path = model_unit.root / "metadata.json"
    if metadata["model_type"] != model.model_type:
        raise CheckpointError(
            f"{meta_path}: holds a {metadata['model_type']!r} model, not {model.model_type!r}"
        )
    check_fingerprint(metadata, model, meta_path)
    weights = model_unit.tensors(
        "model.safetensors", exact_header_check(model.state_dict(), "the model")
    )
    opt_tensors = unit.tensors(OPTIM_FILE, lambda infos, path: None)
    optimizers = decode_optimizers(
        document.get("optimizers"), opt_tensors, trainer.optimizers, state_path
    )
    rng = parse_rng(document.get("rng"), state_path)
    replay = _read_replay(unit, document) if document.get("replay") is not None else None
    backup = {
        "step": trainer.step,
        "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
    }
    try:
        trainer.load_state_dict({"step": document["step"], "optimizers": optimizers})
    except Exception as error:
        trainer.load_state_dict(backup)
        raise CheckpointError(
            f"{state_path}: field 'optimizers' does not fit the trainer ({error})"
        ) from None
    with torch.no_grad():
        model.load_state_dict(weights, strict=True)
    if restore_rng:
        rng.apply()
    return LoadedCheckpoint(step=document["step"], replay=replay, extra=document["extra"])


def load_run_model(path: str | Path) -> WorldModel:
    """The trained model of a run directory, in eval mode: its ``model/`` (offline runs,
    ``save_pretrained``), else its training ``checkpoint/`` (online runs), else ``path`` itself
    as either kind of checkpoint.

    Raises:
        CheckpointError: nothing loadable there (naming what was looked for).
    """
    root = Path(path)
    for candidate in (root / "model", root / "checkpoint"):
        if candidate.is_dir():
            return WorldModel.from_pretrained(candidate).eval()
    if not root.exists():
        raise CheckpointError(
            f"{root}: no such run directory (expected RUN/model, RUN/checkpoint or a checkpoint)"
        )
    return WorldModel.from_pretrained(root).eval()
