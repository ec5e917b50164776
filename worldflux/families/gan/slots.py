"""SKELETON: adversarial latent dynamics.

A generator ``z' = z + G([z, a, ε])`` proposes the next latent (``ε`` standard normal in training
mode, zeros in eval mode so rollouts are deterministic); a discriminator (owned by the objective)
tells real transitions ``(z_t, a_t, z_{t+1})`` from generated ones. Generic encoder, conditioner,
decoder and rollout complete the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from worldflux.components._common import build_mlp
from worldflux.core.components import BuildContext, DynamicsModel
from worldflux.core.registry import register_component
from worldflux.core.types import State
from worldflux.families.shared.hparams import family_hparam, require_dims

__all__ = ["Generator", "hp"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the gan spec."""
    return family_hparam(ctx, "gan", name)


@register_component("dynamics_model", "gan.generator")
class Generator(DynamicsModel):
    """``latent' = latent + G([action_input, ε])``; ``action_input`` is ``concat``'s ``[z, a]``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "gan.generator", "latent_dim", built_by="the observation encoder")
        self.latent_dim = int(ctx.dims["latent_dim"])
        self.noise_dim = int(hp(ctx, "noise_dim"))
        in_dim = int(ctx.dims.get("dynamics_input_dim", self.latent_dim + ctx.action_dim))
        self.net = build_mlp(
            in_dim + self.noise_dim, int(hp(ctx, "gen_hidden")), 2, self.latent_dim
        )

    def forward(self, state: State, action_input: Tensor) -> State:
        shape = (action_input.shape[0], self.noise_dim)
        if self.training:
            noise = torch.randn(shape, device=action_input.device, dtype=action_input.dtype)
        else:
            noise = action_input.new_zeros(shape)
        delta = self.net(torch.cat([action_input, noise], dim=-1))
        return State(latent=state["latent"] + delta)
