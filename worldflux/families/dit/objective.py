"""SKELETON DiT objective: reconstruction + EDM denoising of the next latent + reward/continue.

With ``rollout_steps`` K > 1 the denoiser is also trained from its own predictions (scheduled
sampling, against exposure bias): for k = 2..K, the next latent ``z_{t+k}`` is denoised given the
model's own (k-1)-step open-loop estimate of ``z_{t+k-1}`` (sampled as in a rollout, eval mode,
no gradient) instead of the encoded one, so a rollout's small errors are states it has learnt to
come back from rather than inputs it never saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
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
    rollout_steps: int = Field(
        1,
        ge=1,
        description="K: the denoising term also conditions on the model's own 1..K-1-step "
        "open-loop estimates (scheduled sampling); 1: on encoded latents only",
    )
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
        if self.p.rollout_steps > 1:
            own = self._own_rollout_terms(model, z.detach(), actions, batch["is_first"])
            denoising = torch.stack([denoising, *own]).mean()
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

    def _own_rollout_terms(
        self, model: WorldModel, z: Tensor, actions: Tensor, is_first: Tensor
    ) -> list[Tensor]:
        """The k-step denoising terms, k = 2..``rollout_steps``, from encoded latents ``z [B, T,
        L]`` (stop-gradient): the target ``z_{i+k}`` given the model's own estimate of
        ``z_{i+k-1}`` (``k - 1`` eval-mode transitions from ``z_i``, no gradient) and the action
        ``a_{i+k-1}``; starts whose window crosses an episode start are masked out."""
        dynamics = slot_as(model, "dynamics_model", DiTDynamics)
        conditioner = slot_as(model, "action_conditioner", ActionConditioner)
        t = z.shape[1]
        estimate, inside, terms = z, torch.ones_like(is_first), []
        was_training = dynamics.training
        for k in range(2, min(self.p.rollout_steps, t - 1) + 1):
            # estimate[:, i]: z_{i+k-2} (k-2 own steps from z_i), i = 0..T-k+1
            prev = estimate[:, : t - k + 1]
            dynamics.train(False)  # sampled as in a rollout: deterministic, from zero noise
            try:
                with torch.no_grad():
                    step = model.transition(
                        State(latent=prev.flatten(0, 1)),
                        actions[:, k - 2 : t - 1].flatten(0, 1),
                        validate=False,
                    )
            finally:
                dynamics.train(was_training)
            estimate = step["latent"].reshape(prev.shape)  # z_{i+k-1}, i = 0..T-k
            inside = inside[:, : t - k + 1] & ~is_first[:, k - 1 :]
            mask = inside[:, : t - k] & ~is_first[:, k:]
            start = State(latent=estimate[:, : t - k].flatten(0, 1))
            per = dynamics.denoising_loss(
                conditioner(start, actions[:, k - 1 : t - 1].flatten(0, 1)),
                start["latent"],
                z[:, k:].flatten(0, 1),
            )
            terms.append(masked_mean(per, mask.flatten()))
        return terms

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.AdamW(self.param_groups(model), lr=self.p.lr)}
