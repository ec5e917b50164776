"""Input variation as data (in the spirit of torch's ``ModuleInfo`` sample-input generators).

Each generator takes a bound contract and one valid input and yields :class:`Variant` records:
a name, the invalid (or equivalent) input, and which tensor a rejection must name. Checks
iterate over them, so adding a kind of wrong input is one line here, not a new check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from worldflux.core.spec import ModelIOContract, TensorSpec

__all__ = [
    "ALL_DTYPES",
    "Variant",
    "action_variants",
    "noncontiguous",
    "obs_dtype_variants",
    "obs_rank_variants",
]

#: Every dtype the wrong-dtype variants try (each float and int width, bool).
ALL_DTYPES: tuple[torch.dtype, ...] = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
)


@dataclass(frozen=True)
class Variant:
    """One generated input: ``name`` describes it, ``value`` is the input, ``names`` the tensor
    a ContractViolation must name."""

    name: str
    value: Any
    names: str


def first_modality(contract: ModelIOContract, obs: Any) -> tuple[str, TensorSpec, Tensor]:
    """The (name, spec, tensor) of the first observation modality."""
    if contract.single_modality:
        return "obs", contract.observation["obs"], obs
    key = sorted(contract.observation)[0]
    return key, contract.observation[key], obs[key]


def replace_obs(contract: ModelIOContract, obs: Any, value: Tensor) -> Any:
    """``obs`` with its first modality replaced by ``value``."""
    if contract.single_modality:
        return value
    key = sorted(contract.observation)[0]
    return {**obs, key: value}


def obs_rank_variants(contract: ModelIOContract, obs: Any) -> Iterator[Variant]:
    """Observations of the wrong rank: unbatched, an extra leading dim, an extra trailing dim."""
    _, _, tensor = first_modality(contract, obs)
    yield Variant("unbatched obs (no B dim)", replace_obs(contract, obs, tensor[0]), "obs")
    yield Variant(
        "obs with an extra leading dim", replace_obs(contract, obs, tensor.unsqueeze(0)), "obs"
    )
    yield Variant(
        "obs with an extra trailing dim", replace_obs(contract, obs, tensor.unsqueeze(-1)), "obs"
    )


def _cast(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype == torch.bool:
        return tensor != 0
    if not dtype.is_floating_point and tensor.is_floating_point():
        return tensor.round().clamp(0, 100).to(dtype)
    return tensor.to(dtype)


def obs_dtype_variants(contract: ModelIOContract, obs: Any) -> Iterator[Variant]:
    """Observations of every dtype the contract rejects (each float and int width, bool)."""
    _, spec, tensor = first_modality(contract, obs)
    for dtype in ALL_DTYPES:
        if spec.accepts(dtype):  # the contract's own dtype rule
            continue
        name = str(dtype).removeprefix("torch.")
        yield Variant(
            f"obs of dtype {name}", replace_obs(contract, obs, _cast(tensor, dtype)), "obs"
        )


def action_variants(contract: ModelIOContract, action: Tensor) -> Iterator[Variant]:
    """Invalid single-step actions ``[B, ...]``.

    Discrete: float indices, int32 indices, a negative index, an index ``>= n``, one-hot
    ``[B, n]``. Continuous: one extra / one missing entry, an integer dtype, a bool dtype,
    unbatched.
    """
    spec = contract.action
    if spec.kind == "discrete":
        n = int(spec.dim)
        yield Variant("float discrete actions", action.to(torch.float32), "action")
        yield Variant("int32 discrete actions", action.to(torch.int32), "action")
        neg = action.clone()
        neg[-1] = -1
        yield Variant("a negative discrete action", neg, "action")
        high = action.clone()
        high[0] = n
        yield Variant("a discrete action == n", high, "action")
        far = action.clone()
        far[-1] = n + 7
        yield Variant("a discrete action > n", far, "action")
        onehot = torch.nn.functional.one_hot(action, n)
        yield Variant("one-hot discrete actions [B, n]", onehot, "action")
        return
    yield Variant(
        "continuous action with one extra entry",
        torch.cat([action, action[..., :1]], dim=-1),
        "action",
    )
    if action.shape[-1] > 1:
        yield Variant("continuous action with one entry missing", action[..., :-1], "action")
    yield Variant("continuous action of dtype int64", action.round().to(torch.int64), "action")
    yield Variant("continuous action of dtype bool", action > 0, "action")
    yield Variant("unbatched continuous action", action[0], "action")


def out_of_bounds(contract: ModelIOContract, action: Tensor) -> Tensor:
    """Continuous actions pushed outside ``[low, high]`` (alternately below and above)."""
    spec = contract.action
    width = float(spec.high) - float(spec.low)
    out = action.clone()
    out[..., 0::2] = float(spec.high) + 0.5 * width
    out[..., 1::2] = float(spec.low) - 0.5 * width
    return out


def noncontiguous(tree: Any) -> Any:
    """The same values as ``tree`` as non-contiguous strided views (every tensor of rank >= 1
    is a stride-2 slice of a larger buffer; rank >= 2 tensors are transposed views)."""
    if isinstance(tree, Tensor):
        if tree.dim() == 0:
            return tree
        if tree.dim() >= 2:
            return tree.transpose(0, 1).contiguous().transpose(0, 1)
        wide = torch.zeros((tree.shape[0] * 2, *tree.shape[1:]), dtype=tree.dtype)
        wide[0::2] = tree
        return wide[0::2]
    if isinstance(tree, dict):
        return {k: noncontiguous(v) for k, v in tree.items()}
    return tree
