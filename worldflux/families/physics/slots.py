"""SKELETON: latent rigid-particle physics integrated with semi-implicit (symplectic) Euler.

State ``{"pos": [B, P, d], "vel": [B, P, d]}``: P latent particles in d dimensions. The posterior
reads positions and velocities off the encoded observation; a prior step asks a force MLP for
accelerations ``f(pos, vel, action)`` and integrates ``v' = v + dt f``, ``x' = x + dt v'``.
Generic encoder / conditioner / decoder / objective complete the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from worldflux.components._common import build_mlp
from worldflux.core.components import BuildContext, DynamicsModel
from worldflux.core.registry import register_component
from worldflux.core.types import State
from worldflux.families.shared.hparams import family_hparam, require_dims

__all__ = ["SemiImplicitEuler", "hp"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the physics spec."""
    return family_hparam(ctx, "physics", name)


@register_component("dynamics_model", "physics.euler")
class SemiImplicitEuler(DynamicsModel):
    """Learned force field + semi-implicit Euler over latent particle positions and velocities.

    ``action_input`` is ``concat``'s ``[pos, vel, action]`` features (the state flattened in key
    order, then the action), of size ``2 P d + A``. Sets ``ctx.dims["latent_dim"] = 2 P d``, the
    state-feature size the generic decoder reads.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "physics.euler", "latent_dim", built_by="the observation encoder")
        self.particles, self.space = int(hp(ctx, "num_particles")), int(hp(ctx, "space_dim"))
        self.dt = float(hp(ctx, "dt"))
        flat = self.particles * self.space
        self.infer = nn.Linear(int(ctx.dims["latent_dim"]), 2 * flat)
        self.force = build_mlp(2 * flat + ctx.action_dim, int(hp(ctx, "force_hidden")), 2, flat)
        ctx.dims["latent_dim"] = 2 * flat

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        shape = (batch_size, self.particles, self.space)
        zeros = torch.zeros(shape, device=device, dtype=dtype)
        return State(pos=zeros, vel=zeros.clone())

    def forward(self, state: State, action_input: Tensor) -> State:
        acc = self.force(action_input).view_as(state["vel"])
        vel = state["vel"] + self.dt * acc
        return State(pos=state["pos"] + self.dt * vel, vel=vel)

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        pos, vel = self.infer(obs_state["latent"]).chunk(2, dim=-1)
        shape = (-1, self.particles, self.space)
        return State(pos=pos.reshape(shape), vel=vel.reshape(shape))
