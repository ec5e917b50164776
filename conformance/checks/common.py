"""Helpers shared by the checks: obligations, tolerances, batch sizes, contract validation,
slicing, batches, encoding a state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor
from worldflux.conformance.context import CheckContext, CheckFailed, as_state

from worldflux.core.exceptions import WorldFluxError
from worldflux.core.types import Batch, State

#: Obligations at (skeleton, experimental, reference) that several checks share.
MUST = ("must", "must", "must")
SHOULD_MUST = ("should", "must", "must")
NA_MUST = ("n/a", "must", "must")

#: Tolerances of the checks that compare two computations of the same values.
ATOL, RTOL = 1e-5, 1e-4


def encode_state(ctx: CheckContext, model: Any, obs: Any) -> State:
    """``model.encode(obs)`` through the context (errors name the call), as a State."""
    return as_state(ctx.call("encode(obs)", model.encode, obs), "encode(obs)")


def same(found: str, what: str) -> None:
    """Fail with ``what: found`` when a comparison (``tensors_equal``, ...) found a difference."""
    if found:
        raise CheckFailed(f"{what}: {found}")


def batch_size(inputs: Mapping[str, Any]) -> int:
    """``B`` of a materialized case (from its single-step action)."""
    return int(inputs["action"].shape[0])


def validated(fn: Callable[[], None]) -> None:
    """Run a contract validation; a violation becomes a CheckFailed with the same message."""
    try:
        fn()
    except WorldFluxError as error:
        raise CheckFailed(error.message) from None


def take(tree: Any, n: int) -> Any:
    """The first ``n`` samples of every tensor of a nested structure (dim 0)."""
    if isinstance(tree, Tensor):
        return tree[:n]
    if isinstance(tree, Mapping):
        return {k: take(v, n) for k, v in tree.items()}
    return tree


def sample(tree: Any, i: int) -> Any:
    """Sample ``i`` of every tensor of a nested structure (kept as a batch of one)."""
    if isinstance(tree, Tensor):
        return tree[i : i + 1]
    if isinstance(tree, Mapping):
        return {k: sample(v, i) for k, v in tree.items()}
    return tree


def as_batch(data: Mapping[str, Any]) -> Batch:
    return Batch(dict(data))


def check_scalar(value: Any, what: str) -> Tensor:
    """A finite floating 0-d tensor, else CheckFailed naming ``what`` (a ``[1]`` per-sample
    loss is not a scalar, even when ``B = 1``)."""
    if not isinstance(value, Tensor):
        raise CheckFailed(f"{what}: expected a scalar tensor, found {type(value).__name__}")
    if value.dim() != 0:
        raise CheckFailed(f"{what}: expected a 0-d scalar tensor, found shape {list(value.shape)}")
    if not value.is_floating_point():
        raise CheckFailed(f"{what}: expected a floating tensor, found {value.dtype}")
    if not bool(value.detach().isfinite().all()):
        raise CheckFailed(f"{what}: expected a finite value, found {value.item()}")
    return value


def within_bounds(contract: Any, action: Any, what: str) -> None:
    """Continuous actions inside the contract's [low, high] (within 1e-6), else CheckFailed."""
    if contract.action.kind != "continuous":
        return
    low, high = float(contract.action.low), float(contract.action.high)
    if bool((action < low - 1e-6).any()) or bool((action > high + 1e-6).any()):
        raise CheckFailed(
            f"{what}: expected actions in [{low}, {high}], found values in "
            f"[{float(action.min()):.4g}, {float(action.max()):.4g}]"
        )
