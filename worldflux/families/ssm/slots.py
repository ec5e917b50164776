"""SKELETON: a diagonal linear state-space dynamics (S4D / Mamba-style discretisation, no
selectivity, no convolution) with a sequential scan, so it runs on CPU.

State ``{"latent": h [B, state_dim]}``. With ``A = -exp(log_a)`` (negative real, stable) and a
per-channel step ``dt = exp(log_dt)`` (initialised log-uniform in ``[dt_min, dt_max]``, Mamba's
``[1e-3, 0.1]``), one step is the zero-order-hold-style update ``h' = exp(dt A) h + dt u``, with
``u = B_a a`` for a prior step and ``u = B_a a + B_x x`` for a posterior step that sees the
encoded observation ``x``. Generic encoder / decoder / objective complete the model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.components.conditioners import action_features
from worldflux.core.components import ActionConditioner, BuildContext, DynamicsModel
from worldflux.core.registry import register_component
from worldflux.core.types import State
from worldflux.families.shared.hparams import family_hparam, require_dims

__all__ = ["DiagonalSSM", "SSMActionInput", "hp"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the ssm spec."""
    return family_hparam(ctx, "ssm", name)


@register_component("action_conditioner", "ssm.action")
class SSMActionInput(ActionConditioner):
    """action ``[B, A]`` (or ``[B]`` int64) -> SSM input ``B_a a`` ``[B, state_dim]``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.action_dim, self.action_type = ctx.action_dim, ctx.action_type
        self.proj = nn.Linear(self.action_dim, int(hp(ctx, "state_dim")), bias=False)
        ctx.dims["ssm.action"] = int(hp(ctx, "state_dim"))

    def forward(self, state: State, action: Tensor) -> Tensor:
        embedded: Tensor = self.proj(action_features(action, self.action_dim, self.action_type))
        return embedded


@register_component("dynamics_model", "ssm.diagonal")
class DiagonalSSM(DynamicsModel):
    """``h' = exp(dt A) h + dt u``, diagonal ``A``; ``observe`` adds the observation input.

    Reads ``ctx.dims["latent_dim"]`` (the encoder's output size) and then sets it to
    ``state_dim`` for the decoder, which reads the state.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "ssm.diagonal", "latent_dim", built_by="the observation encoder")
        require_dims(ctx, "ssm.diagonal", "ssm.action", built_by="ssm.action (inputs [state_dim])")
        self.state_dim = int(hp(ctx, "state_dim"))
        embed = int(ctx.dims["latent_dim"])
        self.log_a = nn.Parameter(torch.log(torch.arange(1, self.state_dim + 1).float() * 0.5))
        lo, hi = math.log(float(hp(ctx, "dt_min"))), math.log(float(hp(ctx, "dt_max")))
        self.log_dt = nn.Parameter(lo + torch.rand(self.state_dim) * (hi - lo))
        self.obs_in = nn.Linear(embed, self.state_dim)
        ctx.dims["latent_dim"] = self.state_dim

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return State(latent=torch.zeros(batch_size, self.state_dim, device=device, dtype=dtype))

    def _step(self, h: Tensor, u: Tensor) -> Tensor:
        dt = self.log_dt.exp()
        decay = torch.exp(-dt * self.log_a.exp())
        return decay * h + dt * u

    def forward(self, state: State, action_input: Tensor) -> State:
        return State(latent=self._step(state["latent"], action_input))

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        u = self.obs_in(obs_state["latent"])
        if action_input is not None:
            u = u + action_input
        return State(latent=self._step(state["latent"], u))
