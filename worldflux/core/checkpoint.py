"""Atomic save / all-or-nothing load of a WorldModel directory.

Layout of a checkpoint directory:
    model.safetensors   every tensor of ``state_dict()`` (trainable, targets and buffers)
    config.json         ``{"model_type": ..., "config": {...}}``
    metadata.json       worldflux version, maturity, contract fingerprint, parameter count
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from worldflux.core.exceptions import CheckpointError, ConfigurationError, WorldFluxError

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["atomic_write_dir", "check_state_dict", "load_pretrained", "save_pretrained"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METADATA = "metadata.json"
FORMAT_VERSION = 1


def atomic_write_dir(target: Path, fill: Any) -> Path:
    """Create ``target`` by filling a temporary sibling with ``fill(tmp_dir)`` and renaming it.

    An error while filling leaves any existing ``target`` untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        fill(tmp)
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(target, backup)
            os.replace(tmp, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def save_pretrained(model: WorldModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (weights, config, metadata) atomically."""
    from worldflux import __version__

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    config = {"model_type": model.model_type, "config": model.config.model_dump(mode="json")}
    metadata = {
        "format_version": FORMAT_VERSION,
        "worldflux_version": __version__,
        "model_type": model.model_type,
        "maturity": model.maturity.value,
        "contract_fingerprint": model.bound_contract().fingerprint(),
        "trainable_parameters": model.num_parameters(),
    }

    def fill(tmp: Path) -> None:
        save_file(_dedupe_shared(state), str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")

    return atomic_write_dir(Path(directory), fill)


def _dedupe_shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing storage: give each its own copy."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        ptr = value.untyped_storage().data_ptr() if value.numel() else -1
        out[key] = value.clone() if ptr in seen else value
        if ptr != -1:
            seen.add(ptr)
    return out


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (expected a worldflux checkpoint file)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def check_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming each missing, unexpected or mis-shaped entry; loads nothing."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(
        f"{k}: expected {list(own[k].shape)}, found {list(state[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {', '.join(missing[:10])}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:10])}")
    if mis_shaped:
        problems.append(f"mis-shaped {len(mis_shaped)}: {'; '.join(mis_shaped[:10])}")
    if problems:
        raise CheckpointError(f"{source} does not match the model: " + " | ".join(problems))


def load_pretrained(
    directory: str | Path, expected: type | None = None, device: str | torch.device = "cpu"
) -> WorldModel:
    """Rebuild and load a model saved by :func:`save_pretrained`.

    Raises:
        CheckpointError: missing/corrupt files, a different model type, a changed contract, or a
            state dict that does not match; the model is then not returned at all.
    """
    from worldflux.core.registry import WorldModelRegistry

    root = Path(directory)
    if not root.is_dir():
        raise CheckpointError(f"{root}: no such checkpoint directory")
    config_doc = _read_json(root / CONFIG)
    metadata = _read_json(root / METADATA)
    model_type = config_doc.get("model_type")
    if not isinstance(model_type, str) or not isinstance(config_doc.get("config"), dict):
        raise CheckpointError(f"{root / CONFIG}: expected keys 'model_type' and 'config'")
    try:
        model_cls = WorldModelRegistry.get(model_type)
        config = WorldModelRegistry.get_config_class(model_type)(**config_doc["config"])
    except WorldFluxError as error:
        raise CheckpointError(
            f"{root / CONFIG}: cannot rebuild the model: {error.message}"
        ) from None
    if expected is not None and not issubclass(model_cls, expected):
        raise CheckpointError(
            f"{root}: holds a {model_type!r} model ({model_cls.__name__}), "
            f"not a {expected.__name__}"
        )
    try:
        model = model_cls(config)
    except ConfigurationError as error:
        raise CheckpointError(
            f"{root / CONFIG}: cannot rebuild the model: {error.message}"
        ) from None
    found = metadata.get("contract_fingerprint")
    want = model.bound_contract().fingerprint()
    if found != want:
        raise CheckpointError(
            f"{root / METADATA}: contract fingerprint {found!r} differs from the model's {want!r}; "
            "the spec changed since this checkpoint was written"
        )
    weights = root / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights}: corrupt or unreadable ({error})") from None
    check_state_dict(model, state, str(weights))
    model.load_state_dict(state, strict=True)
    return model.to(device)
