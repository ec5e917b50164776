"""JEPA objective: latent prediction against the EMA target, plus reward / continue regression."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn import functional as F

from worldflux.core.components import BuildContext, Objective
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.jepa.slots import JEPAEncoder
from worldflux.families.shared.tensors import masked_mean

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["JEPAObjective", "JEPAObjectiveParams"]


class JEPAObjectiveParams(BaseModel):
    """Loss weights and the EMA decay of the target encoder."""

    model_config = ConfigDict(extra="forbid")
    latent_coef: float = Field(1.0, ge=0.0)
    reward_coef: float = Field(1.0, ge=0.0)
    continue_coef: float = Field(1.0, ge=0.0)
    ema_decay: float = Field(0.996, ge=0.0, le=1.0)
    lr: float = Field(3e-4, gt=0.0)


@register_component("objective", "jepa.objective", params_model=JEPAObjectiveParams)
class JEPAObjective(Objective):
    """Loss on a ``[B, T, ...]`` batch (T >= 2), through the slots.

    For every transition ``t -> t+1``: ``z_t = encode(obs_t)``, ``z_hat = transition(z_t, a_t)``;
    ``latent`` = smooth-L1(z_hat, sg(target_encoder(obs_{t+1}))) over transitions that stay inside
    an episode (``~is_first[t+1]``); ``reward`` = MSE(decode(z_hat).reward, r_t); ``continue`` =
    BCE(decode(z_hat).continue, 1 - terminated_t). Components: ``latent``, ``reward``, ``continue``.
    Metric ``latent_std`` monitors collapse (ijepa#25).
    """

    def __init__(self, ctx: BuildContext, params: JEPAObjectiveParams) -> None:
        super().__init__()
        self.p = params

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions = batch["obs"], batch["actions"]
        b, t = obs.shape[0], obs.shape[1]
        if t < 2:
            raise ConfigurationError(f"jepa loss: batch['obs'] needs T >= 2 steps, found T={t}")
        encoder = slot_as(model, "observation_encoder", JEPAEncoder)
        flat = obs.flatten(0, 1)
        z = torch.unflatten(model.encode(flat, validate=False)["latent"], 0, (b, t))
        target = torch.unflatten(encoder.target_latent(flat), 0, (b, t))
        state = State(latent=z[:, :-1].flatten(0, 1))
        pred = model.transition(state, actions[:, :-1].flatten(0, 1), validate=False)
        z_hat = torch.unflatten(pred["latent"], 0, (b, t - 1))
        inside = ~batch["is_first"][:, 1:]
        latent = masked_mean(F.smooth_l1_loss(z_hat, target[:, 1:], reduction="none"), inside)
        out = model.decode(pred).predictions
        reward_pred = torch.unflatten(out["reward"], 0, (b, t - 1))
        reward = F.mse_loss(reward_pred, batch["rewards"][:, :-1].to(reward_pred.dtype))
        cont_pred = torch.unflatten(out["continue"], 0, (b, t - 1))
        cont_target = 1.0 - batch["terminated"][:, :-1].to(cont_pred.dtype)
        cont = F.binary_cross_entropy(cont_pred, cont_target)
        loss = self.p.latent_coef * latent + self.p.reward_coef * reward
        loss = loss + self.p.continue_coef * cont
        return LossOutput(
            loss=loss,
            components={"latent": latent, "reward": reward, "continue": cont},
            metrics={"latent_std": float(z.detach().std(dim=0).mean()) if b > 1 else 0.0},
        )

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.param_groups(model), lr=self.p.lr)}

    def after_step(self, model: WorldModel) -> None:
        """EMA update of the target encoder."""
        encoder = slot_as(model, "observation_encoder", JEPAEncoder)
        encoder.update_target(self.p.ema_decay)
