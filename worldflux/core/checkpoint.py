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

from worldflux.core.exceptions import CheckpointError, WorldFluxError

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["atomic_write_dir", "check_state_dict", "load_pretrained", "save_pretrained"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METADATA = "metadata.json"
FORMAT_VERSION = 1
#: The names a checkpoint directory may hold (anything else makes it non-replaceable).
CHECKPOINT_FILES = frozenset({WEIGHTS, CONFIG, METADATA})


def atomic_write_dir(target: Path, fill: Any, replaceable: frozenset[str] | None = None) -> Path:
    """Create ``target`` by filling a temporary sibling with ``fill(tmp_dir)`` and renaming it.

    An error while filling (or renaming) leaves any existing ``target`` untouched.

    Args:
        target: the directory to create or replace.
        fill: writes the files into the temporary directory it is given.
        replaceable: when given, an existing non-empty ``target`` is replaced only if it holds
            nothing but these names (so a typo cannot wipe an unrelated directory).

    Raises:
        CheckpointError: ``target`` is a file, or holds files that are not ``replaceable``.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target}: exists and is not a directory")
    if replaceable is not None and target.is_dir():
        foreign = sorted(p.name for p in target.iterdir() if p.name not in replaceable)
        if foreign:
            raise CheckpointError(
                f"{target}: exists and holds files that are not part of a worldflux checkpoint "
                f"({', '.join(foreign[:5])}); refusing to replace it, choose an empty or new "
                "directory"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        fill(tmp)
        _fsync_tree(tmp)
        os.chmod(tmp, 0o755)
        if target.exists():
            backup = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.rmdir(backup)
            os.replace(target, backup)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(backup, target)  # put the old checkpoint back
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _fsync_tree(directory: Path) -> None:
    """Flush every file of ``directory`` to disk before it is renamed into place."""
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def save_pretrained(model: WorldModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (weights, config, metadata) atomically.

    Raises:
        CheckpointError: the model type is not registered, a slot holds a module that is not a
            registered implementation (neither could be rebuilt), or ``directory`` holds
            unrelated files.
    """
    from worldflux import __version__
    from worldflux.core.registry import WorldModelRegistry

    registered = WorldModelRegistry._models.get(model.model_type)
    if registered is not type(model):
        raise CheckpointError(
            f"cannot save {type(model).__name__}: it is not the class registered as model type "
            f"{model.model_type!r}, so from_pretrained could not rebuild it; decorate it with "
            "@WorldModelRegistry.register(...)"
        )
    overrides = dict(model.component_overrides)
    unsaveable = sorted(slot for slot, entry in overrides.items() if entry is None)
    if unsaveable:
        raise CheckpointError(
            f"cannot save {type(model).__name__}: slot(s) {unsaveable} hold modules that are not "
            "registered implementations; register them with @register_component and swap them "
            "in by key"
        )
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    config = {
        "model_type": model.model_type,
        "config": model.config.model_dump(mode="json"),
        "component_overrides": overrides,
    }
    metadata = {
        "format_version": FORMAT_VERSION,
        "worldflux_version": __version__,
        "model_type": model.model_type,
        "maturity": model.maturity.value,
        "contract_fingerprint": model.bound_contract().fingerprint(),
        "trainable_parameters": model.num_parameters(),
        "dtype": str(model._float_dtype()).removeprefix("torch."),
    }
    try:
        config_text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    except TypeError as error:
        raise CheckpointError(f"cannot save the config as JSON: {error}") from None

    def fill(tmp: Path) -> None:
        save_file(_dedupe_shared(state), str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(config_text)
        (tmp / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")

    return atomic_write_dir(Path(directory), fill, replaceable=CHECKPOINT_FILES)


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
    version = metadata.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{root / METADATA}: format_version {version!r} is not supported "
            f"(expected 1..{FORMAT_VERSION}; a newer worldflux wrote it?)"
        )
    model_type = config_doc.get("model_type")
    if not isinstance(model_type, str) or not isinstance(config_doc.get("config"), dict):
        raise CheckpointError(f"{root / CONFIG}: expected keys 'model_type' and 'config'")
    if metadata.get("model_type", model_type) != model_type:
        raise CheckpointError(
            f"{root}: config.json says model type {model_type!r}, metadata.json says "
            f"{metadata.get('model_type')!r}; the checkpoint was assembled from two models"
        )
    overrides = config_doc.get("component_overrides") or {}
    if not isinstance(overrides, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("impl"), str) for v in overrides.values()
    ):
        raise CheckpointError(
            f"{root / CONFIG}: 'component_overrides' must map slots to {{impl, params}}"
        )
    dtype = _parse_dtype(metadata.get("dtype", "float32"), root / METADATA)
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
        for slot, entry in overrides.items():
            model.swap_component(slot, entry["impl"], entry.get("params") or None)
    except WorldFluxError as error:
        raise CheckpointError(
            f"{root / CONFIG}: cannot rebuild the model: {error.message}"
        ) from None
    if dtype != torch.float32:
        model = model.to(dtype)
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
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{weights}: corrupt or unreadable ({error})") from None
    check_state_dict(model, state, str(weights))
    model.load_state_dict(state, strict=True)
    return model.to(device)


def _parse_dtype(name: Any, source: Path) -> torch.dtype:
    dtypes = {
        "float32": torch.float32,
        "float64": torch.float64,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }
    if name not in dtypes:
        raise CheckpointError(f"{source}: dtype {name!r} is not one of {', '.join(dtypes)}")
    return dtypes[name]
