"""Save / verified all-or-nothing load of a WorldModel checkpoint.

A checkpoint path is a crash-safe store (:mod:`worldflux.core.checkpoint_store`: a ``CHECKPOINT``
pointer naming the current version directory). A model version directory holds::

    model.safetensors   every tensor of ``state_dict()`` (trainable, targets and buffers)
    config.json         ``{"model_type": ..., "config": {...}, "component_overrides": {...}}``
    metadata.json       format version, worldflux version, maturity, contract fingerprint, ...
    manifest.json       size and SHA-256 of each file (verified on load)

Loading reads and verifies everything through :mod:`worldflux.core.checkpoint_io` (bounded,
hashed, exact dtypes), builds the model on the ``meta`` device first (no memory; at most a few
registrations per stored tensor) to compare every name, shape and dtype with the file, and only
then builds and fills the real model. Every failure is a :class:`CheckpointError`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save as save_safetensors
from torch.nn.modules import module as torch_module

from worldflux.core import checkpoint_io
from worldflux.core.checkpoint_io import (
    CheckpointUnit,
    HeaderCheck,
    TensorInfo,
    check_allocation,
)
from worldflux.core.checkpoint_store import UnitWriter, resolve, write_checkpoint
from worldflux.core.exceptions import CheckpointError, WorldFluxError
from worldflux.core.registry import WorldModelRegistry
from worldflux.version import __version__

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = [
    "FORMAT_VERSION",
    "check_state_dict",
    "exact_header_check",
    "load_pretrained",
    "model_unit",
    "save_pretrained",
    "write_model_unit",
]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METADATA = "metadata.json"
#: 2: crash-safe versioned store, manifest with SHA-256 per file, exact dtypes.
FORMAT_VERSION = 2
#: Files of the format-1 layout, replaced when a new checkpoint is saved over one.
LEGACY_FILES = frozenset({WEIGHTS, CONFIG, METADATA})


def save_pretrained(model: WorldModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (weights, config, metadata) crash-safely.

    Raises:
        CheckpointError: the model type is not registered, a slot holds a module that is not a
            registered implementation (neither could be rebuilt), or ``directory`` holds
            unrelated files.
    """
    fill = model_unit_filler(model)
    return write_checkpoint(Path(directory), "model", FORMAT_VERSION, fill, legacy=LEGACY_FILES)


def model_unit_filler(model: WorldModel) -> Callable[[UnitWriter], None]:
    """Check that ``model`` can be saved and return the writer of its files."""
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
        "contract_fingerprint": model.declared_contract().fingerprint(),
        "trainable_parameters": model.num_parameters(),
        "dtype": str(model._float_dtype()).removeprefix("torch."),
    }

    def fill(writer: UnitWriter) -> None:
        writer.write_bytes(WEIGHTS, save_safetensors(_dedupe_shared(state), {"format": "pt"}))
        writer.write_json(CONFIG, config)
        writer.write_json(METADATA, metadata)

    return fill


def write_model_unit(model: WorldModel, writer: UnitWriter) -> None:
    """Write ``model`` as a nested unit (e.g. ``model/`` of a training checkpoint)."""
    fill = model_unit_filler(model)
    fill(writer)
    writer.close()


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


def exact_header_check(expected: Mapping[str, torch.Tensor], what: str) -> HeaderCheck:
    """A header check: exactly the names, shapes and dtypes of ``expected``."""

    def check(infos: Mapping[str, TensorInfo], path: Path) -> None:
        missing = sorted(set(expected) - set(infos))
        unexpected = sorted(set(infos) - set(expected))
        bad, dtypes = [], []
        for key in sorted(set(expected) & set(infos)):
            want, got = expected[key], infos[key]
            if tuple(want.shape) != got.shape:
                bad.append(f"{key}: expected {list(want.shape)}, found {list(got.shape)}")
            elif want.dtype != got.dtype:
                dtypes.append(f"{key}: expected {want.dtype}, found {got.dtype}")
        problems = []
        if missing:
            problems.append(f"missing {len(missing)}: {', '.join(missing[:10])}")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:10])}")
        if bad:
            problems.append(f"mis-shaped {len(bad)}: {'; '.join(bad[:10])}")
        if dtypes:
            problems.append(f"wrong dtype {len(dtypes)}: {'; '.join(dtypes[:10])}")
        if problems:
            raise CheckpointError(f"{path} does not match {what}: " + " | ".join(problems))

    return check


def check_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming each missing, unexpected, mis-shaped or wrongly typed entry
    of ``state`` against ``module``; loads nothing."""
    infos = {k: TensorInfo(v.dtype, tuple(v.shape)) for k, v in state.items()}
    exact_header_check(module.state_dict(), "the model")(infos, Path(source))


def model_unit(directory: str | Path) -> CheckpointUnit:
    """The verified model unit at ``directory`` (a model checkpoint, or the model of a training
    checkpoint); stale temporaries of killed saves are removed on the way."""
    version = resolve(Path(directory))
    root = version / "model" if (version / "model").is_dir() else version
    return CheckpointUnit(root, "model", FORMAT_VERSION)


def read_model_documents(unit: CheckpointUnit) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config.json`` and ``metadata.json`` of a model unit, with every field type-checked."""
    config_doc, metadata = unit.json(CONFIG), unit.json(METADATA)
    config_path, meta_path = unit.root / CONFIG, unit.root / METADATA
    version = metadata.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path}: format_version {version!r} is not supported (expected "
            f"{FORMAT_VERSION}; written by another worldflux version?)"
        )
    model_type = config_doc.get("model_type")
    if not isinstance(model_type, str) or not isinstance(config_doc.get("config"), dict):
        raise CheckpointError(f"{config_path}: expected keys 'model_type' and 'config'")
    if metadata.get("model_type") != model_type:
        raise CheckpointError(
            f"{unit.root}: config.json says model type {model_type!r}, metadata.json says "
            f"{metadata.get('model_type')!r}; the checkpoint was assembled from two models"
        )
    if not isinstance(metadata.get("contract_fingerprint"), str):
        raise CheckpointError(f"{meta_path}: field 'contract_fingerprint' must be a string")
    overrides = config_doc.get("component_overrides") or {}
    if not isinstance(overrides, dict) or not all(
        isinstance(v, dict)
        and isinstance(v.get("impl"), str)
        and isinstance(v.get("params") or {}, dict)
        for v in overrides.values()
    ):
        raise CheckpointError(
            f"{config_path}: field 'component_overrides' must map slots to {{impl, params}}"
        )
    config_doc["component_overrides"] = overrides
    return config_doc, metadata


def check_fingerprint(metadata: Mapping[str, Any], model: WorldModel, meta_path: Path) -> None:
    """The stored contract fingerprint must be the model's."""
    contract = model.declared_contract()
    found, want = metadata.get("contract_fingerprint"), contract.fingerprint()
    if found not in contract.accepted_fingerprints():
        raise CheckpointError(
            f"{meta_path}: contract fingerprint {found!r} differs from the model's {want!r} "
            "(another preset, environment or spec)"
        )


@contextmanager
def bounded_construction(
    limit: int, source: Path, seconds: float | None = None, elements: int | None = None
) -> Iterator[None]:
    """Refuse (CheckpointError) a module construction in this thread that registers more than
    ``limit`` parameters, buffers and submodules, parameters and buffers of more than
    ``elements`` elements in all, or runs longer than ``seconds`` (checked at every Python call
    through ``sys.settrace`` for this thread): a config cannot make a build run for hours. A
    tracer already set (a debugger, coverage) is paused meanwhile."""
    count, size, thread = [0], [0], threading.get_ident()
    budget = checkpoint_io.LIMITS.max_build_seconds if seconds is None else seconds
    deadline = time.monotonic() + budget

    def hook(module: Any, name: str, value: Any) -> None:
        if threading.get_ident() != thread:
            return
        count[0] += 1
        if count[0] > limit:
            raise CheckpointError(
                f"{source}: the config builds a model with more than {limit} parameters, "
                "buffers and modules; the weights file holds far fewer tensors"
            )
        if isinstance(value, torch.Tensor):
            size[0] += value.numel()
            if elements is not None and size[0] > elements:
                raise CheckpointError(
                    f"{source}: the config builds a model of more than {elements} elements; "
                    "the weights file holds far fewer"
                )

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and time.monotonic() > deadline:
            raise CheckpointError(
                f"{source}: building the model the config describes takes longer than "
                f"{budget} s (sizes are checked on the meta device)"
            )

    handles = [
        torch_module.register_module_parameter_registration_hook(hook),
        torch_module.register_module_buffer_registration_hook(hook),
        torch_module.register_module_module_registration_hook(hook),
    ]
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        yield
    finally:
        sys.settrace(previous)
        for handle in handles:
            handle.remove()


def load_pretrained(
    directory: str | Path, expected: type | None = None, device: str | torch.device = "cpu"
) -> WorldModel:
    """Rebuild and load a model saved by :func:`save_pretrained` (or the model of a training
    checkpoint).

    Raises:
        CheckpointError: missing/corrupt/oversized files, a content hash that differs, a
            different model type, a changed contract, or a state dict whose names, shapes or
            dtypes differ; the model is then not returned at all.
    """
    unit = model_unit(directory)
    config_doc, metadata = read_model_documents(unit)
    config_path, meta_path = unit.root / CONFIG, unit.root / METADATA
    model_type = config_doc["model_type"]
    dtype = _parse_dtype(metadata.get("dtype", "float32"), meta_path)
    try:
        model_cls = WorldModelRegistry.get(model_type)
        config = WorldModelRegistry.get_config_class(model_type)(**config_doc["config"])
    except WorldFluxError as error:
        raise CheckpointError(f"{config_path}: cannot rebuild the model: {error.message}") from None
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path}: field 'config' is invalid ({error})") from None
    if expected is not None and not issubclass(model_cls, expected):
        raise CheckpointError(
            f"{unit.root}: holds a {model_type!r} model ({model_cls.__name__}), "
            f"not a {expected.__name__}"
        )
    weights = unit.tensor_file(WEIGHTS)
    overrides = config_doc["component_overrides"]
    limit = 8 * len(weights.infos) + 4096
    stored = sum(i.nbytes // max(1, i.dtype.itemsize) for i in weights.infos.values())
    elements = 4 * stored + (16 << 20) if overrides else 2 * stored + (1 << 20)

    def build(on_meta: bool, swaps: bool) -> WorldModel:
        try:
            budget = None if on_meta else float("inf")  # the real build matches the file
            with bounded_construction(limit, config_path, budget, elements):
                with torch.device("meta") if on_meta else _no_context():
                    model = model_cls(config)
                    for slot, entry in overrides.items() if swaps else ():
                        model.swap_component(slot, entry["impl"], entry.get("params") or None)
        except CheckpointError:
            raise
        except WorldFluxError as error:
            raise CheckpointError(
                f"{config_path}: cannot rebuild the model: {error.message}"
            ) from None
        return model if dtype == torch.float32 else model.to(dtype)

    try:  # sizes first, on the meta device (allocates nothing)
        sized: WorldModel | None = build(on_meta=True, swaps=False)
    except CheckpointError:
        raise
    except Exception:  # a model that cannot be built on meta: its real build is bounded below
        sized = None
    if sized is not None and not overrides:
        check_fingerprint(metadata, sized, meta_path)
        exact_header_check(sized.state_dict(), "the model")(weights.infos, weights.path)
    elif sized is not None:  # swapped slots change the state: bound the base model's size
        need = sum(t.numel() * t.element_size() for t in sized.state_dict().values())
        check_allocation(need, "the model the config describes", config_path)
        if need > 4 * len(weights.data) + (64 << 20):
            raise CheckpointError(
                f"{config_path}: the config describes a model of {need} bytes, the weights "
                f"file holds {len(weights.data)}"
            )
    with torch.random.fork_rng(devices=[]):  # building must not move the caller's RNG
        model = build(on_meta=False, swaps=True)
    check_fingerprint(metadata, model, meta_path)
    exact_header_check(model.state_dict(), "the model")(weights.infos, weights.path)
    model.load_state_dict(weights.load(), strict=True)
    return model.to(device)


@contextmanager
def _no_context() -> Iterator[None]:
    yield


def _parse_dtype(name: Any, source: Path) -> torch.dtype:
    dtypes = {
        "float32": torch.float32,
        "float64": torch.float64,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }
    if name not in dtypes:
        raise CheckpointError(f"{source}: field 'dtype' {name!r} is not one of {', '.join(dtypes)}")
    return dtypes[name]
