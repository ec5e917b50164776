"""Generic action conditioners."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

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
