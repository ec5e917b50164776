"""Shared pieces of the generic slot library: sizes bound to config symbols, MLPs, features.

A *size* in a generic component's params is an int or a symbol expression (``"latent_dim"``,
``"2 * hidden_dim"``) resolved at build time against the config fields, ``obs_dim``,
``action_dim`` and the ``ctx.dims`` set by earlier slots. So presets, which override config
fields, resize generic components without per-component params.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from worldflux.core.components import BuildContext
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.spec import resolve_dim

__all__ = [
    "Activation",
    "Size",
    "activation",
    "build_mlp",
    "flat_obs_dim",
    "resolve_size",
    "state_features",
    "state_features_dim",
]

#: An int, or a symbol expression resolved against config fields and ctx.dims.
Size = int | str
Activation = Literal["relu", "elu", "silu", "mish", "tanh", "gelu"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def symbols(ctx: BuildContext) -> dict[str, Any]:
    """Every name a size may use: config fields, ``obs_dim``, ``action_dim``, then ``ctx.dims``."""
    table: dict[str, Any] = {
        k: v for k, v in ctx.config.model_dump().items() if isinstance(v, int | tuple)
    }
    table["obs_dim"] = int(ctx.obs_shape[-1])
    table["action_dim"] = ctx.action_dim
    table.update(ctx.dims)
    return table


def resolve_size(ctx: BuildContext, value: Size, owner: str, *, minimum: int = 1) -> int:
    """Resolve one size param.

    Raises:
        ConfigurationError: unknown symbol (with "did you mean") or a value below ``minimum``,
            naming ``owner`` (e.g. ``"mlp_encoder.latent"``).
    """
    try:
        size = resolve_dim(value, symbols(ctx))
    except ConfigurationError as error:
        raise ConfigurationError(f"{owner}: {error.message}") from None
    if size < minimum:
        raise ConfigurationError(f"{owner}: expected a size >= {minimum}, found {value!r} = {size}")
    return size


def activation(name: str) -> nn.Module:
    """A fresh activation module by name."""
    return _ACTIVATIONS[name]()


def build_mlp(
    in_dim: int,
    hidden_dim: int,
    layers: int,
    out_dim: int,
    act: str = "silu",
    *,
    norm: bool = True,
) -> nn.Sequential:
    """``layers`` hidden blocks (Linear, LayerNorm?, activation), then a Linear to ``out_dim``.

    ``[B, in_dim] -> [B, out_dim]``; ``layers=0`` is one Linear.
    """
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        blocks.append(nn.Linear(width, hidden_dim))
        if norm:
            blocks.append(nn.LayerNorm(hidden_dim))
        blocks.append(activation(act))
        width = hidden_dim
    blocks.append(nn.Linear(width, out_dim))
    return nn.Sequential(*blocks)


def flat_obs_dim(obs_shape: tuple[int, ...]) -> int:
    """Number of features of one flattened observation."""
    return int(math.prod(obs_shape))


def state_features(state: Mapping[str, Tensor]) -> Tensor:
    """``state["latent"] [B, D]``, else every state tensor flattened and concatenated by key."""
    if "latent" in state:
        return state["latent"]
    if not len(state):
        raise ConfigurationError("state is empty: encode an observation before decoding")
    return torch.cat([v.flatten(1) for _, v in sorted(state.items())], dim=-1)


def state_features_dim(ctx: BuildContext) -> int:
    """Size of :func:`state_features` as announced by earlier slots (``ctx.dims["latent_dim"]``).

    Raises:
        ConfigurationError: no earlier slot announced a latent size.
    """
    if "latent_dim" not in ctx.dims:
        raise ConfigurationError(
            "no earlier slot set ctx.dims['latent_dim']; use an observation encoder that does "
            "(mlp_encoder, cnn_encoder) or set it in your own encoder"
        )
    return int(ctx.dims["latent_dim"])
