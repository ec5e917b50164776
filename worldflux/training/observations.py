"""Dict observations: a layout of named vector keys, stored flat and served per key.

An environment with ``gymnasium.spaces.Dict`` observations of Box keys of rank 0 or 1 has an
*observation layout*: key -> per-sample shape, keys in sorted order (``{"position": (2,),
"velocity": ()}``). The replay buffer stores such an observation as one flat float32 row
(the keys flattened and concatenated in sorted order, :func:`flatten`) and serves batches as a
dict of ``[B, T, *shape]`` tensors (:func:`split`); models take dict observations through their
config's ``obs_keys`` (``["position:2", "velocity:"]``, :func:`obs_keys_entries`), and a model
whose contract does not match the layout is refused before training (:func:`check_layout`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldflux.core.exceptions import ConfigurationError

__all__ = [
    "ObsLayout",
    "check_layout",
    "flat_size",
    "flatten",
    "obs_keys_entries",
    "split",
]

#: key -> per-sample shape, in sorted key order
ObsLayout = dict[str, tuple[int, ...]]


def flat_size(layout: Mapping[str, tuple[int, ...]]) -> int:
    """Values per flat row: the sum of every key's element count."""
    return sum(math.prod(shape) for shape in layout.values())


def flatten(obs: Mapping[str, Any], layout: Mapping[str, tuple[int, ...]], what: str) -> Tensor:
    """One dict observation (numpy arrays or tensors, per-sample shapes) -> a flat ``[D]`` float32
    tensor, keys in sorted order.

    Raises:
        ValueError: a key is missing or unexpected, or has another shape (naming the key, the
            expected and the found shape); callers wrap it in their own error type.
    """
    keys = sorted(layout)
    if sorted(obs) != keys:
        missing = sorted(set(keys) - set(obs))
        unexpected = sorted(set(obs) - set(keys))
        raise ValueError(
            f"{what}: expected keys {keys}, missing {missing}, unexpected {unexpected}"
        )
    parts = []
    for key in keys:
        value = torch.as_tensor(np.asarray(obs[key]))
        if tuple(value.shape) != tuple(layout[key]):
            raise ValueError(
                f"{what}[{key!r}]: expected shape {list(layout[key])}, found {list(value.shape)}"
            )
        parts.append(value.reshape(-1).to(torch.float32))
    return torch.cat(parts)


def split(flat: Tensor, layout: Mapping[str, tuple[int, ...]]) -> dict[str, Tensor]:
    """Flat rows ``[..., D]`` -> ``{key: [..., *shape]}`` (views, sorted key order)."""
    lead = flat.shape[:-1]
    out: dict[str, Tensor] = {}
    offset = 0
    for key in sorted(layout):
        shape = tuple(layout[key])
        size = math.prod(shape)
        out[key] = flat[..., offset : offset + size].reshape(*lead, *shape)
        offset += size
    return out


def obs_keys_entries(layout: Mapping[str, tuple[int, ...]]) -> list[str]:
    """The model config form of a layout: ``["position:2", "velocity:"]`` (sorted keys)."""
    return [f"{key}:{'x'.join(str(d) for d in layout[key])}" for key in sorted(layout)]


def check_layout(
    observation: Mapping[str, Any], layout: Mapping[str, tuple[int, ...]], model: str, env: str
) -> None:
    """Refuse a model whose contract's observation keys or shapes differ from the environment's
    dict observations (``observation``: the bound contract's ``observation`` specs).

    Raises:
        ConfigurationError: one error naming the first differing key, the expected (model) and
            the found (environment) shape.
    """
    if set(observation) == {"obs"} and "obs" not in layout:
        raise ConfigurationError(
            f"model {model!r} takes one observation tensor, but environment {env!r} has dict "
            f"observations with keys {sorted(layout)}; use a model whose config has 'obs_keys' "
            "(dreamerv3, tdmpc2)"
        )
    for key in sorted(set(observation) | set(layout)):
        spec = observation.get(key)
        found = layout.get(key)
        expected = None if spec is None else [int(d) for d in spec.shape]
        if expected is None or found is None or expected != list(found):
            raise ConfigurationError(
                f"dict observation key {key!r}: model {model!r} expects shape "
                f"{expected if expected is not None else 'no such key'}, environment {env!r} "
                f"gives {list(found) if found is not None else 'no such key'}"
            )
