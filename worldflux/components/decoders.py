"""Generic decoders: ``mlp_decoder`` (vectors) and ``cnn_decoder`` (images), each with optional
reward and continue heads.

Predictions (per sample, after the batch dim): ``obs [*obs_shape]`` (reconstruction),
``reward []`` and ``continue []`` (a probability in [0, 1]).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from worldflux.components._common import (
    Activation,
    Size,
    build_mlp,
    flat_obs_dim,
    resolve_size,
    state_features,
    state_features_dim,
)
from worldflux.components.conv import (
    DeconvHead,
    ImageConvParams,
    check_image_shape,
    deconv_stages,
    deepest_grid,
)
from worldflux.core.components import BuildContext, Decoder
from worldflux.core.registry import register_component
from worldflux.core.types import ModelOutput, State

__all__ = ["CNNDecoder", "CNNDecoderParams", "MLPDecoder", "MLPDecoderParams", "ScalarHeads"]


class ScalarHeads(nn.Module):
    """Reward ``[B]`` and continue-probability ``[B]`` MLP heads over features ``[B, D]``."""

    def __init__(
        self, in_dim: int, hidden: int, layers: int, act: str, *, reward: bool, cont: bool
    ) -> None:
        super().__init__()
        self.reward = build_mlp(in_dim, hidden, layers, 1, act) if reward else None
        self.cont = build_mlp(in_dim, hidden, layers, 1, act) if cont else None

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if self.reward is not None:
            out["reward"] = self.reward(features).squeeze(-1)
        if self.cont is not None:
            out["continue"] = self.cont(features).squeeze(-1).sigmoid()
        return out


class _HeadParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: Size = Field("hidden_dim", description="width of each hidden layer")
    layers: int = Field(2, ge=0, description="hidden layers of every MLP head")
    act: Activation = Field("silu", description="activation")
    predict_obs: bool = Field(True, description="predict the observation (reconstruction)")
    predict_reward: bool = Field(True, description="predict the reward")
    predict_continue: bool = Field(True, description="predict the continue probability")


class MLPDecoderParams(_HeadParams, ImageConvParams):
    """Params of ``mlp_decoder``."""


@register_component("decoder", "mlp_decoder", params_model=MLPDecoderParams)
class MLPDecoder(Decoder):
    """State features ``[B, D]`` -> ``obs [B, *obs_shape]``, ``reward [B]``, ``continue [B]``."""

    def __init__(self, ctx: BuildContext, params: MLPDecoderParams) -> None:
        super().__init__()
        in_dim = state_features_dim(ctx)
        hidden = resolve_size(ctx, params.hidden, "mlp_decoder.hidden")
        self.obs_shape = ctx.obs_shape
        self.obs: nn.Module | None = None
        if params.predict_obs and params.images == "conv" and len(self.obs_shape) == 3:
            depth = resolve_size(ctx, params.conv_depth, "mlp_decoder.conv_depth")
            self.obs = DeconvHead(
                "mlp_decoder (images: conv)",
                in_dim,
                self.obs_shape,
                depth,
                params.conv_stages,
                params.act,
            )
        elif params.predict_obs:
            self.obs = build_mlp(
                in_dim, hidden, params.layers, flat_obs_dim(self.obs_shape), params.act
            )
        self.heads = ScalarHeads(
            in_dim,
            hidden,
            params.layers,
            params.act,
            reward=params.predict_reward,
            cont=params.predict_continue,
        )

    def forward(self, state: State) -> ModelOutput:
        features = state_features(state)
        predictions = self.heads(features)
        if self.obs is not None:
            predictions["obs"] = self.obs(features).view(-1, *self.obs_shape)
        return ModelOutput(predictions=predictions, state=state)


class CNNDecoderParams(_HeadParams):
    """Params of ``cnn_decoder``."""

    depth: Size = Field(32, description="channels of the last transposed-conv stage")
    stages: int = Field(3, ge=1, le=6, description="transposed-conv stages, each doubling H and W")


@register_component("decoder", "cnn_decoder", params_model=CNNDecoderParams)
class CNNDecoder(Decoder):
    """State features ``[B, D]`` -> image ``obs [B, C, H, W]`` (transposed convs), plus heads."""

    def __init__(self, ctx: BuildContext, params: CNNDecoderParams) -> None:
        super().__init__()
        channels, height, width = check_image_shape("cnn_decoder", ctx.obs_shape, params.stages)
        in_dim = state_features_dim(ctx)
        hidden = resolve_size(ctx, params.hidden, "cnn_decoder.hidden")
        depth = resolve_size(ctx, params.depth, "cnn_decoder.depth")
        self.obs_shape = ctx.obs_shape
        self.start = deepest_grid(height, width, depth, params.stages)
        self.obs: nn.Module | None = None
        if params.predict_obs:
            ch, h, w = self.start
            self.proj = nn.Sequential(nn.Linear(in_dim, ch * h * w))
            self.obs = nn.Sequential(*deconv_stages(channels, depth, params.stages, params.act))
        self.heads = ScalarHeads(
            in_dim,
            hidden,
            params.layers,
            params.act,
            reward=params.predict_reward,
            cont=params.predict_continue,
        )

    def forward(self, state: State) -> ModelOutput:
        features = state_features(state)
        predictions = self.heads(features)
        if self.obs is not None:
            grid = self.proj(features).view(-1, *self.start)
            predictions["obs"] = self.obs(grid)
        return ModelOutput(predictions=predictions, state=state)
