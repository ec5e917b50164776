"""DIAMOND-style objective: EDM denoising of each next frame + the reward/termination model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldflux.core.components import ActionConditioner, BuildContext, Objective, ObservationEncoder
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.diffusion.slots import DiffusionDynamics, DiffusionHeads
from worldflux.families.shared.tensors import masked_mean, reset_where

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["DiffusionObjective", "DiffusionObjectiveParams", "scaled_action"]


def scaled_action(action_input: Tensor, keep: Tensor) -> Tensor:
    """Zero the action features ``[B, ...]`` of samples where ``keep [B]`` is false."""
    return action_input * keep.view(-1, *([1] * (action_input.dim() - 1))).to(action_input.dtype)


class DiffusionObjectiveParams(BaseModel):
    """Loss weights and learning rate (DIAMOND: AdamW 1e-4, wd 1e-2)."""

    model_config = ConfigDict(extra="forbid")
    denoising_coef: float = Field(1.0, ge=0.0)
    reward_coef: float = Field(1.0, ge=0.0)
    continue_coef: float = Field(1.0, ge=0.0)
    lr: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(1e-2, ge=0.0)


@register_component("objective", "diffusion.objective", params_model=DiffusionObjectiveParams)
class DiffusionObjective(Objective):
    """Loss on a ``[B, T, ...]`` batch (T >= 2), step by step through the slots.

    The window state is built from real frames (``observe``; reset where ``is_first``), which
    also runs the reward/termination model's LSTM over the real transitions. For each ``t``:
    ``denoising`` = EDM loss of ``obs_{t+1}`` given the window at ``t`` and ``a_t`` (masked
    where ``obs_{t+1}`` starts a new episode; the ``T - 1`` steps are denoised in one batched
    call); ``reward`` = the reward head's loss (cross-entropy of the sign class, DIAMOND, or
    squared error) and ``continue`` = termination cross-entropy, on the state after ``t``,
    against ``r_t`` and ``terminated_t``. The reward/termination model sees only real frames
    and raw actions, so its terms send no gradient into the denoiser or its action embedding.
    """

    def __init__(self, ctx: BuildContext, params: DiffusionObjectiveParams) -> None:
        super().__init__()
        self.p = params

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions, is_first = batch["obs"], batch["actions"], batch["is_first"]
        b, t = obs.shape[0], obs.shape[1]
        if t < 2:
            raise ConfigurationError(f"diffusion loss: batch['obs'] needs T >= 2, found T={t}")
        encoder = slot_as(model, "observation_encoder", ObservationEncoder)
        conditioner = slot_as(model, "action_conditioner", ActionConditioner)
        dynamics = slot_as(model, "dynamics_model", DiffusionDynamics)
        heads = slot_as(model, "decoder", DiffusionHeads)
        initial = dynamics.initial_state(b, obs.device, torch.float32)
        state = dynamics.observe(initial, None, encoder(obs[:, 0]))
        windows, inputs, rewards, ends = [], [], [], []
        for step in range(t - 1):
            action_input = conditioner(state, actions[:, step])
            nxt_first = is_first[:, step + 1]
            windows.append(state)
            inputs.append(action_input)
            nxt = dynamics.observe(state, action_input, encoder(obs[:, step + 1]))
            rew_logits, end_logits = heads.logits(nxt)
            rewards.append(heads.heads.reward_loss(rew_logits, batch["rewards"][:, step]))
            ends.append(heads.heads.end_loss(end_logits, batch["terminated"][:, step]))
            # the window for the next step: a real frame, or a fresh one at episode starts
            fresh = dynamics.observe(initial, None, encoder(obs[:, step + 1]))
            state = reset_where(nxt_first, fresh, nxt)
        stacked = State({key: torch.cat([w[key] for w in windows]) for key in windows[0]})
        targets = obs[:, 1:].transpose(0, 1).reshape(b * (t - 1), *obs.shape[2:])
        per_sample = dynamics.denoising_loss(stacked, torch.cat(inputs), targets)
        keep = (~is_first[:, 1:]).transpose(0, 1).reshape(-1)
        denoising = masked_mean(per_sample, keep)
        reward, cont = torch.stack(rewards).mean(), torch.stack(ends).mean()
        total = self.p.denoising_coef * denoising + self.p.reward_coef * reward
        total = total + self.p.continue_coef * cont
        return LossOutput(
            loss=total, components={"denoising": denoising, "reward": reward, "continue": cont}
        )

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        return {
            "model": torch.optim.AdamW(
                self.param_groups(model), lr=self.p.lr, weight_decay=self.p.weight_decay
            )
        }
