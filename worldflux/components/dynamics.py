"""Generic latent dynamics: ``mlp_dynamics`` (no carry) and ``gru_dynamics`` (recurrent carry).

The state is ``State({"latent": z})`` with ``z [B, latent_dim]`` (``ctx.dims["latent_dim"]``, set
by the encoder). The dynamics input ``[B, D]`` comes from the action conditioner
(``ctx.dims["dynamics_input_dim"]``).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from worldflux.components._common import (
    Activation,
    Size,
    build_mlp,
    resolve_size,
    state_features_dim,
)
from worldflux.core.components import BuildContext, DynamicsModel
from worldflux.core.registry import register_component
from worldflux.core.types import State

__all__ = ["GRUDynamics", "GRUDynamicsParams", "MLPDynamics", "MLPDynamicsParams"]


def _input_dim(ctx: BuildContext, latent: int) -> int:
    return int(ctx.dims.get("dynamics_input_dim", latent + ctx.action_dim))


class MLPDynamicsParams(BaseModel):
    """Params of ``mlp_dynamics``."""

    model_config = ConfigDict(extra="forbid")

    hidden: Size = Field("hidden_dim", description="width of each hidden layer")
    layers: int = Field(2, ge=0, description="number of hidden layers")
    act: Activation = Field("silu", description="activation")
    residual: bool = Field(True, description="predict a change of the latent (z + f(x))")


@register_component("dynamics_model", "mlp_dynamics", params_model=MLPDynamicsParams)
class MLPDynamics(DynamicsModel):
    """``z' = LayerNorm(z + MLP(x))`` (or ``LayerNorm(MLP(x))``); observing replaces the latent.

    No carry: ``initial_state`` is empty and ``observe`` returns the encoder's state.
    """

    def __init__(self, ctx: BuildContext, params: MLPDynamicsParams) -> None:
        super().__init__()
        self.latent_dim = state_features_dim(ctx)
        hidden = resolve_size(ctx, params.hidden, "mlp_dynamics.hidden")
        in_dim = _input_dim(ctx, self.latent_dim)
        self.net = build_mlp(in_dim, hidden, params.layers, self.latent_dim, params.act)
        self.norm = nn.LayerNorm(self.latent_dim)
        self.residual = params.residual

    def forward(self, state: State, action_input: Tensor) -> State:
        delta = self.net(action_input)
        latent = state["latent"] + delta if self.residual and "latent" in state else delta
        return State({"latent": self.norm(latent)})


class GRUDynamicsParams(BaseModel):
    """Params of ``gru_dynamics``."""

    model_config = ConfigDict(extra="forbid")

    hidden: Size = Field("hidden_dim", description="width of the posterior fusion MLP")
    act: Activation = Field("silu", description="activation of the fusion MLP")


@register_component("dynamics_model", "gru_dynamics", params_model=GRUDynamicsParams)
class GRUDynamics(DynamicsModel):
    """A GRU cell over the latent: ``z' = GRU(x, z)``; observing fuses ``z'`` with the embedding.

    ``initial_state`` is ``latent = 0 [B, latent_dim]``; ``observe`` computes the prior step
    (skipped when ``action_input`` is None) and ``z = LayerNorm(MLP([z_prior, embed]))``.
    """

    def __init__(self, ctx: BuildContext, params: GRUDynamicsParams) -> None:
        super().__init__()
        self.latent_dim = state_features_dim(ctx)
        embed = int(ctx.dims.get("embed_dim", self.latent_dim))
        hidden = resolve_size(ctx, params.hidden, "gru_dynamics.hidden")
        self.cell = nn.GRUCell(_input_dim(ctx, self.latent_dim), self.latent_dim)
        self.fuse = build_mlp(self.latent_dim + embed, hidden, 1, self.latent_dim, params.act)
        self.norm = nn.LayerNorm(self.latent_dim)

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return State(
            {"latent": torch.zeros(batch_size, self.latent_dim, device=device, dtype=dtype)}
        )

    def forward(self, state: State, action_input: Tensor) -> State:
        return State({"latent": self.cell(action_input, state["latent"])})

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        prior = state if action_input is None else self(state, action_input)
        fused = self.fuse(torch.cat([prior["latent"], obs_state["latent"]], dim=-1))
        return State({"latent": self.norm(fused)})
