"""Training checkpoints: everything needed to continue a run bitwise exactly (on CPU).

Layout of a checkpoint directory (written atomically: filled in a temporary sibling, then renamed):

    model/                    the model, as ``WorldModel.save_pretrained`` writes it
                              (model.safetensors + config.json + metadata.json; loadable alone)
    optimizers.safetensors    every tensor of every optimiser state (exp_avg, step, ...)
    training_state.json       optimiser state structure and hyperparameters (tensors referenced by
                              key), RNG states (torch, numpy, python), trainer step, replay
                              position, and the run loop's own state (env RNG, counters)
    replay.safetensors        replay rows + sampling generator   (when a buffer is saved)
    replay.json               replay layout and position
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from worldflux.core.checkpoint import atomic_write_dir, check_state_dict, save_pretrained
from worldflux.core.exceptions import CheckpointError
from worldflux.training.replay import ReplayBuffer
from worldflux.training.trainer import Trainer

__all__ = [
    "STATE_FILE",
    "LoadedCheckpoint",
    "get_rng_state",
    "load_training_checkpoint",
    "save_training_checkpoint",
    "set_rng_state",
]

STATE_FILE = "training_state.json"
OPTIM_FILE = "optimizers.safetensors"
FORMAT_VERSION = 1


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
    """Restore :func:`get_rng_state` output."""
    raw = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(raw))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["kind"],
            np.asarray(npy["keys"], dtype=np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))


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


def _decode(value: Any, tensors: Mapping[str, Tensor], source: str) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            key = value["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"{source}: tensor {key!r} is missing")
            return tensors[key]
        if "__items__" in value:
            return {k: _decode(v, tensors, source) for k, v in value["__items__"]}
        if "__tuple__" in value:
            return tuple(_decode(v, tensors, source) for v in value["__tuple__"])
        return {k: _decode(v, tensors, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, tensors, source) for v in value]
    return value


# -- save / load --------------------------------------------------------------------------------
def save_training_checkpoint(
    directory: str | Path,
    trainer: Trainer,
    replay: ReplayBuffer | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write model, optimisers, RNG states, step, replay and ``extra`` (JSON-able) atomically.

    An existing checkpoint at ``directory`` is replaced only once the new one is complete.
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

    def fill(tmp: Path) -> None:
        save_pretrained(trainer.model, tmp / "model")
        save_file(tensors, str(tmp / OPTIM_FILE))
        if replay is not None:
            replay.save(tmp)
        (tmp / STATE_FILE).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")

    return atomic_write_dir(Path(directory), fill)


@dataclass
class LoadedCheckpoint:
    """What :func:`load_training_checkpoint` gives back besides the restored trainer."""

    step: int
    replay: ReplayBuffer | None
    extra: dict[str, Any] = field(default_factory=dict)


def _read_state(root: Path) -> dict[str, Any]:
    path = root / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (not a worldflux training checkpoint)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: expected format_version {FORMAT_VERSION}, "
            f"found {data.get('format_version')!r}"
        )
    return dict(data)


def load_training_checkpoint(
    directory: str | Path, trainer: Trainer, *, restore_rng: bool = True
) -> LoadedCheckpoint:
    """Restore weights, optimiser states, step and (optionally) the global RNG states into
    ``trainer``; return the replay buffer (if saved) and the loop's ``extra`` state.

    Everything is read and checked before anything is loaded, so a bad checkpoint leaves the
    trainer untouched.

    Raises:
        CheckpointError: missing/corrupt files, a different model type or contract, or weights /
            optimisers that do not match.
    """
    root = Path(directory)
    if not root.is_dir():
        raise CheckpointError(f"{root}: no such checkpoint directory")
    document = _read_state(root)
    model = trainer.model
    meta_path = root / "model" / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{meta_path}: unreadable ({error})") from None
    if meta.get("model_type") != model.model_type:
        raise CheckpointError(
            f"{meta_path}: holds a {meta.get('model_type')!r} model, not {model.model_type!r}"
        )
    want = model.bound_contract().fingerprint()
    if meta.get("contract_fingerprint") != want:
        raise CheckpointError(
            f"{meta_path}: contract fingerprint {meta.get('contract_fingerprint')!r} differs "
            f"from the model's {want!r} (another preset, environment or spec)"
        )
    weights_path = root / "model" / "model.safetensors"
    try:
        weights = load_file(str(weights_path))
        opt_tensors = load_file(str(root / OPTIM_FILE))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{root}: corrupt or unreadable tensors ({error})") from None
    check_state_dict(model, weights, str(weights_path))
    optimizers = _decode(document["optimizers"], opt_tensors, str(root / OPTIM_FILE))
    replay = ReplayBuffer.load(root) if document.get("replay") is not None else None
    model.load_state_dict(weights, strict=True)
    try:
        trainer.load_state_dict({"step": document["step"], "optimizers": optimizers})
    except (ValueError, KeyError) as error:
        raise CheckpointError(
            f"{root / STATE_FILE}: optimiser state does not fit ({error})"
        ) from None
    if restore_rng:
        set_rng_state(document["rng"])
    return LoadedCheckpoint(step=int(document["step"]), replay=replay, extra=document["extra"])
