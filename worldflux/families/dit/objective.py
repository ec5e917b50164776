"""SKELETON DiT objective: reconstruction + EDM denoising of the next latent + reward/continue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

from worldflux.core.components import ActionConditioner, BuildContext, Objective
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.dit.slots import DiTDynamics
from worldflux.families.shared.tensors import masked_mean

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["DiTObjective", "DiTObjectiveParams"]


class DiTObjectiveParams(BaseModel):
    """Loss weights and learning rate."""

    model_config = ConfigDict(extra="forbid")
    reconstruction_coef: float = Field(1.0, ge=0.0)
    denoising_coef: float = Field(1.0, ge=0.0)
    reward_coef: float = Field(1.0, ge=0.0)
    continue_coef: float = Field(1.0, ge=0.0)
    lr: float = Field(1e-4, gt=0.0)


@register_component("objective", "dit.objective", params_model=DiTObjectiveParams)
class DiTObjective(Objective):
    """``reconstruction`` = MSE(decode(z_t).obs, obs_t); ``denoising`` = EDM loss of
    sg(z_{t+1}) given ``[z_t, a_t]`` (within episodes); ``reward`` / ``continue`` from
    ``decode(transition(z_t, a_t))``."""

    def __init__(self, ctx: BuildContext, params: DiTObjectiveParams) -> None:
        super().__init__()
        self.p = params

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions = batch["obs"], batch["actions"]
        b, t = obs.shape[0], obs.shape[1]
        if t < 2:
            raise ConfigurationError(f"dit loss: batch['obs'] needs T >= 2, found T={t}")
        dynamics = slot_as(model, "dynamics_model", DiTDynamics)
        conditioner = slot_as(model, "action_conditioner", ActionConditioner)
        z = model.encode(obs.flatten(0, 1), validate=False)["latent"]
        recon = model.decode(State(latent=z)).predictions["obs"]
        reconstruction = F.mse_loss(recon, obs.flatten(0, 1).to(recon.dtype))
        z = torch.unflatten(z, 0, (b, t))
        state = State(latent=z[:, :-1].flatten(0, 1))
        a_t = actions[:, :-1].flatten(0, 1)
        per = dynamics.denoising_loss(
            conditioner(state, a_t), state["latent"].detach(), z[:, 1:].flatten(0, 1).detach()
        )
        denoising = masked_mean(per, (~batch["is_first"][:, 1:]).flatten())
        pred = model.decode(model.transition(state, a_t, validate=False)).predictions
        reward = F.mse_loss(pred["reward"], batch["rewards"][:, :-1].flatten().to(z.dtype))
        cont_target = 1.0 - batch["terminated"][:, :-1].flatten().to(z.dtype)
        cont = F.binary_cross_entropy(pred["continue"].clamp(1e-6, 1 - 1e-6), cont_target)
        loss = (
            self.p.reconstruction_coef * reconstruction
            + self.p.denoising_coef * denoising
            + self.p.reward_coef * reward
            + self.p.continue_coef * cont
        )
        return LossOutput(
            loss=loss,
            components={
                "reconstruction": reconstruction,
                "denoising": denoising,
                "reward": reward,
                "continue": cont,
            },
        )

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.AdamW(self.param_groups(model), lr=self.p.lr)}
