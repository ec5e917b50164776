"""JEPA hyperparameters read from the model config, with the defaults of the ``base`` preset."""

from __future__ import annotations

from typing import Any

from torch import nn

from worldflux.core.components import BuildContext

__all__ = ["DEFAULTS", "hp", "mlp", "obs_numel"]

DEFAULTS: dict[str, Any] = {
    "latent_dim": 256,
    "hidden_dim": 512,
    "enc_layers": 2,
    "pred_layers": 2,
    "head_layers": 1,
}


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, or its default."""
    value = ctx.hparam(name, None)
    return DEFAULTS[name] if value is None else value


def obs_numel(ctx: BuildContext) -> int:
    """Number of entries of one observation (``prod(obs_shape)``)."""
    n = 1
    for d in ctx.obs_shape:
        n *= int(d)
    return n


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int) -> nn.Sequential:
    """``layers`` x (Linear, LayerNorm, SiLU), then Linear to ``out_dim``; per-sample ops only."""
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        mods += [nn.Linear(dim, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*mods)
