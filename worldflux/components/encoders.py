"""Generic observation encoders: ``mlp_encoder`` (vectors) and ``cnn_encoder`` (images).

Both return ``State({"latent": z})`` with ``z [B, latent]`` and announce
``ctx.dims["latent_dim"]`` and ``ctx.dims["embed_dim"]`` for the slots built after them.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from worldflux.components._common import (
    Activation,
    Size,
    build_mlp,
    flat_obs_dim,
    resolve_size,
)
from worldflux.components.conv import (
    ConvTrunk,
    ImageConvParams,
    check_image_shape,
    conv_stages,
    deepest_grid,
)
from worldflux.core.components import BuildContext, ObservationEncoder
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.types import State

__all__ = ["CNNEncoder", "CNNEncoderParams", "MLPEncoder", "MLPEncoderParams"]

OutputNorm = Literal["none", "layer", "tanh"]


def _output_norm(kind: str, dim: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "tanh":
        return nn.Tanh()
    return nn.Identity()


def _announce(ctx: BuildContext, latent: int) -> None:
    ctx.dims["latent_dim"] = latent
    ctx.dims["embed_dim"] = latent


class MLPEncoderParams(ImageConvParams):
    """Params of ``mlp_encoder``. Sizes are ints or config symbols (see _common)."""

    model_config = ConfigDict(extra="forbid")

    latent: Size = Field("latent_dim", description="output size (the state's latent)")
    hidden: Size = Field("hidden_dim", description="width of each hidden layer")
    layers: int = Field(2, ge=0, description="number of hidden layers")
    act: Activation = Field("silu", description="activation")
    output_norm: OutputNorm = Field("layer", description="normalisation of the latent")


@register_component("observation_encoder", "mlp_encoder", params_model=MLPEncoderParams)
class MLPEncoder(ObservationEncoder):
    """Flatten ``obs [B, *obs_shape]`` and map it through an MLP to ``latent [B, latent]``;
    with ``images: conv`` an image observation ``[B, C, H, W]`` goes through conv stages
    instead (:class:`~worldflux.components.conv.ConvTrunk`), vectors still through the MLP."""

    def __init__(self, ctx: BuildContext, params: MLPEncoderParams) -> None:
        super().__init__()
        latent = resolve_size(ctx, params.latent, "mlp_encoder.latent")
        hidden = resolve_size(ctx, params.hidden, "mlp_encoder.hidden")
        self.obs_shape = ctx.obs_shape
        self.net: nn.Module
        if params.images == "conv" and len(self.obs_shape) == 3:
            depth = resolve_size(ctx, params.conv_depth, "mlp_encoder.conv_depth")
            self.net = ConvTrunk(
                "mlp_encoder (images: conv)",
                self.obs_shape,
                depth,
                params.conv_stages,
                latent,
                params.act,
            )
        else:
            self.net = build_mlp(
                flat_obs_dim(self.obs_shape), hidden, params.layers, latent, params.act
            )
        self.norm = _output_norm(params.output_norm, latent)
        _announce(ctx, latent)

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        if isinstance(obs, dict):
            raise ConfigurationError(
                "mlp_encoder takes one observation tensor, found a dict of modalities "
                f"{sorted(obs)}"
            )
        return State({"latent": self.norm(self.net(obs.float().flatten(1)))})


class CNNEncoderParams(BaseModel):
    """Params of ``cnn_encoder``."""

    model_config = ConfigDict(extra="forbid")

    latent: Size = Field("latent_dim", description="output size (the state's latent)")
    depth: Size = Field(32, description="channels of the first conv stage (doubled per stage)")
    stages: int = Field(3, ge=1, le=6, description="conv stages, each halving height and width")
    act: Activation = Field("silu", description="activation")
    output_norm: OutputNorm = Field("layer", description="normalisation of the latent")


@register_component("observation_encoder", "cnn_encoder", params_model=CNNEncoderParams)
class CNNEncoder(ObservationEncoder):
    """Images ``obs [B, C, H, W]`` -> conv stages (kernel 4, stride 2) -> ``latent [B, latent]``.

    ``uint8`` images are scaled to ``[-0.5, 0.5]``; float images are used as they are.
    """

    def __init__(self, ctx: BuildContext, params: CNNEncoderParams) -> None:
        super().__init__()
        channels, height, width = check_image_shape("cnn_encoder", ctx.obs_shape, params.stages)
        latent = resolve_size(ctx, params.latent, "cnn_encoder.latent")
        depth = resolve_size(ctx, params.depth, "cnn_encoder.depth")
        self.convs = nn.Sequential(*conv_stages(channels, depth, params.stages, params.act))
        grid = deepest_grid(height, width, depth, params.stages)
        self.proj = nn.Linear(grid[0] * grid[1] * grid[2], latent)
        self.norm = _output_norm(params.output_norm, latent)
        ctx.dims["cnn_depth"] = depth
        ctx.dims["cnn_stages"] = params.stages
        _announce(ctx, latent)

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        if isinstance(obs, dict):
            raise ConfigurationError(
                f"cnn_encoder takes one image tensor, found a dict of modalities {sorted(obs)}"
            )
        x = obs.float() / 255.0 - 0.5 if obs.dtype == torch.uint8 else obs.float()
        return State({"latent": self.norm(self.proj(self.convs(x).flatten(1)))})
