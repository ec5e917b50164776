"""Validators for the state a training checkpoint restores: RNG states, optimiser states and
the replay layout. Each turns untrusted JSON (and tensors) into values that can be applied
without failing, or raises :class:`CheckpointError` naming the file and the field; none of them
touches global or caller state.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldflux.core.exceptions import CheckpointError

__all__ = ["ReplayLayout", "RngState", "decode_optimizers", "parse_replay_layout", "parse_rng"]

_MAX_DIM = 1 << 31


def _fail(source: Path | str, field: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{source}: field {field!r} {problem}")


@dataclass(frozen=True)
class RngState:
    """Validated global RNG states, ready to apply with :meth:`apply`."""

    torch_state: Tensor
    numpy_state: tuple[Any, ...]
    python_state: tuple[Any, ...]

    def apply(self) -> None:
        """Set the global torch, numpy and python RNGs."""
        torch.set_rng_state(self.torch_state)
        np.random.set_state(self.numpy_state)
        random.setstate(self.python_state)


def parse_rng(doc: Any, source: Path) -> RngState:
    """Check an RNG document by setting it on scratch generators (never the global ones)."""
    if not isinstance(doc, dict) or set(doc) != {"torch", "numpy", "python"}:
        raise _fail(source, "rng", "must hold exactly 'torch', 'numpy' and 'python'")
    try:
        raw = base64.b64decode(str(doc["torch"]), validate=True)
        torch_state = torch.frombuffer(bytearray(raw), dtype=torch.uint8).clone()
        torch.Generator().set_state(torch_state)
    except Exception as error:  # scratch state only: any failure means a bad document
        raise _fail(source, "rng.torch", f"is not a torch RNG state ({error})") from None
    npy = doc["numpy"]
    try:
        keys = npy["keys"]
        if not isinstance(keys, list) or not all(type(k) is int for k in keys):
            raise TypeError("keys must be integers")
        numpy_state = (
            str(npy["kind"]),
            np.asarray(keys, dtype=np.uint32),
            int(npy["pos"]),
            int(npy["has_gauss"]),
            float(npy["cached_gaussian"]),
        )
        np.random.RandomState().set_state(numpy_state)
    except Exception as error:  # scratch state only: any failure means a bad document
        raise _fail(source, "rng.numpy", f"is not a numpy RNG state ({error!r})") from None
    py = doc["python"]
    try:
        internal = py["internal"]
        if not isinstance(internal, list) or not all(type(k) is int for k in internal):
            raise TypeError("internal must be integers")
        gauss = py["gauss"]
        if gauss is not None and not isinstance(gauss, float):
            raise TypeError("gauss must be a float or null")
        python_state = (int(py["version"]), tuple(internal), gauss)
        random.Random().setstate(python_state)
    except Exception as error:  # scratch state only: any failure means a bad document
        raise _fail(source, "rng.python", f"is not a python RNG state ({error!r})") from None
    return RngState(torch_state, numpy_state, python_state)


def _decode(
    value: Any, tensors: Mapping[str, Tensor], used: set[str], field: str, src: Path
) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            key = value["__tensor__"]
            if len(value) != 1 or not isinstance(key, str) or key not in tensors or key in used:
                raise _fail(src, field, f"references tensor {key!r}, which is missing or reused")
            used.add(key)
            return tensors[key]
        if "__items__" in value:
            items = value["__items__"]
            if len(value) != 1 or not isinstance(items, list):
                raise _fail(src, field, "has a malformed '__items__'")
            out = {}
            for item in items:
                if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int):
                    raise _fail(src, field, "has an '__items__' entry that is not [int, value]")
                out[item[0]] = _decode(item[1], tensors, used, f"{field}.{item[0]}", src)
            return out
        if "__tuple__" in value:
            items = value["__tuple__"]
            if len(value) != 1 or not isinstance(items, list):
                raise _fail(src, field, "has a malformed '__tuple__'")
            return tuple(
                _decode(v, tensors, used, f"{field}.{i}", src) for i, v in enumerate(items)
            )
        return {k: _decode(v, tensors, used, f"{field}.{k}", src) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, tensors, used, f"{field}.{i}", src) for i, v in enumerate(value)]
    return value


def decode_optimizers(
    doc: Any,
    tensors: Mapping[str, Tensor],
    optimizers: Mapping[str, Any],
    source: Path,
) -> dict[str, dict[str, Any]]:
    """Rebuild optimiser state dicts from their JSON structure and tensors, and check that each
    fits the live optimiser exactly (groups, parameter counts, state shapes and dtypes)."""
    used: set[str] = set()
    decoded = _decode(doc, tensors, used, "optimizers", source)
    if not isinstance(decoded, dict) or set(decoded) != set(optimizers):
        found = sorted(decoded) if isinstance(decoded, dict) else type(decoded).__name__
        raise _fail(source, "optimizers", f"names {found} differ from {sorted(optimizers)}")
    if used != set(tensors):
        raise _fail(
            source, "optimizers", f"leaves tensors unused: {sorted(set(tensors) - used)[:5]}"
        )
    for name, state in decoded.items():
        _check_optimizer(name, state, optimizers[name], source)
    return decoded


def _check_optimizer(name: str, state: Any, optimizer: Any, source: Path) -> None:
    field = f"optimizers.{name}"
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise _fail(source, field, "must hold exactly 'state' and 'param_groups'")
    live_groups = optimizer.param_groups
    groups = state["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(live_groups):
        raise _fail(source, f"{field}.param_groups", f"must be {len(live_groups)} groups")
    params: dict[int, Tensor] = {}
    index = 0
    for g, (group, live) in enumerate(zip(groups, live_groups, strict=True)):
        ids = group.get("params") if isinstance(group, dict) else None
        want = list(range(index, index + len(live["params"])))
        if ids != want:
            raise _fail(source, f"{field}.param_groups.{g}.params", f"must be {want}")
        for key, value in group.items():
            if key != "params" and not _plain(value):
                raise _fail(source, f"{field}.param_groups.{g}.{key}", "is not a plain value")
        params.update(zip(want, live["params"], strict=True))
        index += len(want)
    entries = state["state"]
    if not isinstance(entries, dict) or not set(entries) <= set(params):
        raise _fail(source, f"{field}.state", "names parameters the optimiser does not have")
    for pid, slots in entries.items():
        if not isinstance(slots, dict):
            raise _fail(source, f"{field}.state.{pid}", "must be an object")
        param = params[pid]
        for key, value in slots.items():
            where = f"{field}.state.{pid}.{key}"
            if isinstance(value, Tensor):
                if value.dim() == 0:
                    if value.dtype not in (torch.float32, torch.float64, torch.int64):
                        raise _fail(source, where, f"has dtype {value.dtype}")
                elif tuple(value.shape) != tuple(param.shape) or value.dtype != param.dtype:
                    raise _fail(
                        source,
                        where,
                        f"is {value.dtype} {list(value.shape)}, the parameter is "
                        f"{param.dtype} {list(param.shape)}",
                    )
            elif not _plain(value):
                raise _fail(source, where, "is not a tensor or a plain value")


def _plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple) and depth < 4:
        return all(_plain(v, depth + 1) for v in value)
    return False


@dataclass(frozen=True)
class ReplayLayout:
    """A validated ``replay.json``."""

    capacity: int
    obs_shape: tuple[int, ...]
    action_dim: int
    action_type: str
    obs_dtype: torch.dtype
    total: int
    episodes: int
    episode_open: bool

    @property
    def size(self) -> int:
        """Rows held."""
        return min(self.total, self.capacity)

    def row_bytes(self) -> int:
        """Bytes one preallocated row takes (obs, action, reward, flags, episode id)."""
        obs = self.obs_dtype.itemsize
        for dim in self.obs_shape:
            obs *= dim
        action = 8 if self.action_type == "discrete" else 4 * self.action_dim
        return obs + action + 4 + 3 + 8

    def expected(self, n: int) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
        """dtype and shape of every tensor of ``replay.safetensors`` holding ``n`` rows."""
        action = (n,) if self.action_type == "discrete" else (n, self.action_dim)
        return {
            "obs": (self.obs_dtype, (n, *self.obs_shape)),
            "actions": (torch.int64 if self.action_type == "discrete" else torch.float32, action),
            "rewards": (torch.float32, (n,)),
            "terminated": (torch.bool, (n,)),
            "truncated": (torch.bool, (n,)),
            "is_first": (torch.bool, (n,)),
            "episode": (torch.int64, (n,)),
            "generator": (torch.uint8, tuple(torch.Generator().get_state().shape)),
        }


def parse_replay_layout(doc: Mapping[str, Any], source: Path) -> ReplayLayout:
    """Check every field of ``replay.json`` (types and ranges) without allocating anything."""

    def integer(key: str, low: int, high: int) -> int:
        value = doc.get(key)
        if type(value) is not int or not low <= value <= high:
            raise _fail(source, key, f"must be an integer in [{low}, {high}], found {value!r}")
        return value

    if doc.get("format") != 1:
        raise _fail(source, "format", f"must be 1, found {doc.get('format')!r}")
    capacity = integer("capacity", 2, 1 << 40)
    shape = doc.get("obs_shape")
    if not (
        isinstance(shape, list)
        and 1 <= len(shape) <= 8
        and all(type(d) is int and 1 <= d <= _MAX_DIM for d in shape)
    ):
        raise _fail(source, "obs_shape", f"must be 1-8 positive integers, found {shape!r}")
    action_type = doc.get("action_type")
    if action_type not in ("continuous", "discrete"):
        raise _fail(source, "action_type", f"must be continuous or discrete, found {action_type!r}")
    dtypes = {"float32": torch.float32, "uint8": torch.uint8}
    if doc.get("obs_dtype") not in dtypes:
        raise _fail(source, "obs_dtype", f"must be one of {sorted(dtypes)}")
    if not isinstance(doc.get("episode_open"), bool):
        raise _fail(source, "episode_open", "must be true or false")
    total = integer("total", 0, 1 << 62)
    return ReplayLayout(
        capacity=capacity,
        obs_shape=tuple(shape),
        action_dim=integer("action_dim", 1, _MAX_DIM),
        action_type=action_type,
        obs_dtype=dtypes[doc["obs_dtype"]],
        total=total,
        episodes=integer("episodes", 0, total),
        episode_open=doc["episode_open"],
    )
