"""The plugin's own slot implementation: ``wf_tinyrnn/leaky`` (a leaky-integrator dynamics).

Importing this module registers it (the ``worldflux.components`` entry point names this module).
Third-party keys are namespaced ``<package>/<name>``.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from worldflux.core.components import BuildContext, DynamicsModel
from worldflux.core.registry import register_component
from worldflux.core.types import State


class LeakyParams(BaseModel):
    """Params of ``wf_tinyrnn/leaky``."""

    model_config = ConfigDict(extra="forbid")

    leak: float = Field(0.5, gt=0.0, lt=1.0, description="initial mixing rate of the new input")


@register_component("dynamics_model", "wf_tinyrnn/leaky", params_model=LeakyParams)
class LeakyDynamics(DynamicsModel):
    """``z' = LayerNorm((1 - a) * z + a * tanh(W x))`` with a learned rate ``a`` per channel.

    State: ``latent [B, latent_dim]``; ``action_input [B, D]`` from the action conditioner.
    """

    def __init__(self, ctx: BuildContext, params: LeakyParams) -> None:
        super().__init__()
        latent = int(ctx.dims["latent_dim"])
        inputs = int(ctx.dims.get("dynamics_input_dim", latent + ctx.action_dim))
        self.drive = nn.Linear(inputs, latent)
        rate = torch.full((latent,), params.leak)
        self.rate_logit = nn.Parameter(torch.log(rate / (1 - rate)))
        self.norm = nn.LayerNorm(latent)

    def forward(self, state: State, action_input: Tensor) -> State:
        rate = torch.sigmoid(self.rate_logit)
        latent = (1 - rate) * state["latent"] + rate * torch.tanh(self.drive(action_input))
        return State({"latent": self.norm(latent)})
