"""Generic action conditioners: ``concat`` and ``film``."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.components._common import (
    Activation,
    Size,
    build_mlp,
    resolve_size,
    state_features,
    state_features_dim,
)
from worldflux.core.components import ActionConditioner, BuildContext
from worldflux.core.registry import register_component
from worldflux.core.types import State


def action_features(action: Tensor, action_dim: int, action_type: str) -> Tensor:
    """Continuous ``[B, A]`` -> float ``[B, A]``; discrete ``[B]`` int64 -> one-hot ``[B, A]``."""
    if action_type == "discrete":
        return F.one_hot(action.long(), action_dim).float()
    return action.float()


@register_component("action_conditioner", "concat")
class ConcatConditioner(ActionConditioner):
    """Concatenate the state's ``latent`` (or every state tensor, flattened) with the action.

    Output: ``[B, D + A]``; discrete actions are one-hot encoded first. Sets
    ``ctx.dims["dynamics_input_dim"]`` when ``ctx.dims["latent_dim"]`` is known.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.action_dim = ctx.action_dim
        self.action_type = ctx.action_type
        if "latent_dim" in ctx.dims:
            ctx.dims["dynamics_input_dim"] = int(ctx.dims["latent_dim"]) + self.action_dim

    def forward(self, state: State, action: Tensor) -> Tensor:
        if "latent" in state:
            features = state["latent"]
        else:
            features = torch.cat([v.flatten(1) for _, v in sorted(state.items())], dim=-1)
        return torch.cat([features, action_features(action, self.action_dim, self.action_type)], -1)


class FiLMParams(BaseModel):
    """Params of ``film``."""

    model_config = ConfigDict(extra="forbid")

    hidden: Size = Field(0, description="hidden width of the action MLP (0: one linear layer)")
    act: Activation = Field("silu", description="activation of the action MLP")


@register_component("action_conditioner", "film", params_model=FiLMParams)
class FiLMConditioner(ActionConditioner):
    """Feature-wise modulation of the latent by the action: ``z * (1 + gamma(a)) + beta(a)``.

    Input: ``state["latent"] [B, D]`` (or every state tensor, flattened) and the action
    (``[B, A]`` float or ``[B]`` int64, one-hot encoded). Output: ``[B, D]``; sets
    ``ctx.dims["dynamics_input_dim"] = D``. gamma and beta start at zero (identity modulation).
    """

    def __init__(self, ctx: BuildContext, params: FiLMParams) -> None:
        super().__init__()
        self.action_dim = ctx.action_dim
        self.action_type = ctx.action_type
        latent = state_features_dim(ctx)
        hidden = resolve_size(ctx, params.hidden, "film.hidden", minimum=0)
        if hidden:
            self.net: nn.Module = build_mlp(self.action_dim, hidden, 1, 2 * latent, params.act)
        else:
            self.net = nn.Linear(self.action_dim, 2 * latent)
        last = self.net[-1] if isinstance(self.net, nn.Sequential) else self.net
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        ctx.dims["dynamics_input_dim"] = latent

    def forward(self, state: State, action: Tensor) -> Tensor:
        features = state_features(state)
        film: Tensor = self.net(action_features(action, self.action_dim, self.action_type))
        gamma, beta = film.chunk(2, dim=-1)
        return features * (1.0 + gamma) + beta
