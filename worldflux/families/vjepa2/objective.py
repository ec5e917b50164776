"""V-JEPA 2-AC-style objective: teacher-forcing L1 + auto-regressive rollout L1 in latent space."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.nn import functional as F

from worldflux.core.components import ActionConditioner, BuildContext, DynamicsModel, Objective
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.shared.tensors import masked_mean, reset_where
from worldflux.families.vjepa2.slots import VJEPA2Encoder

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["VJEPA2Objective", "VJEPA2ObjectiveParams"]


class VJEPA2ObjectiveParams(BaseModel):
    """Loss weights, auto-regressive steps, EMA decay and learning rate (V-JEPA 2-AC: 4.25e-4)."""

    model_config = ConfigDict(extra="forbid")
    teacher_forcing_coef: float = Field(1.0, ge=0.0)
    rollout_coef: float = Field(1.0, ge=0.0)
    rollout_steps: int = Field(1, ge=1, description="auto-regressive steps after the first")
    reward_coef: float = Field(1.0, ge=0.0)
    continue_coef: float = Field(1.0, ge=0.0)
    ema_decay: float = Field(0.99925, ge=0.0, le=1.0)
    lr: float = Field(4.25e-4, gt=0.0)
    weight_decay: float = Field(0.04, ge=0.0)


def _mean_of(terms: list[tuple[Tensor, Tensor]], like: Tensor) -> Tensor:
    kept = [loss for loss, any_valid in terms if bool(any_valid)]
    return torch.stack(kept).mean() if kept else like.new_zeros(())


@register_component("objective", "vjepa2.objective", params_model=VJEPA2ObjectiveParams)
class VJEPA2Objective(Objective):
    """Loss on a ``[B, T, ...]`` batch (T >= 2), through the slots.

    Targets are the EMA target encoder's features of every frame (stop-gradient). The window is
    filled with real context-encoder frames (``observe``; reset where ``is_first``). For each t:
    ``teacher_forcing`` = L1(transition(window_t, a_t), target_{t+1}); ``rollout`` = L1 of the
    next ``rollout_steps`` predictions made from the model's own predictions (V-JEPA 2-AC
    ``auto_steps`` = 2 in total), each masked where it would cross an episode start;
    ``reward`` = MSE and ``continue`` = BCE of the heads on the real next window.
    """

    def __init__(self, ctx: BuildContext, params: VJEPA2ObjectiveParams) -> None:
        super().__init__()
        self.p = params

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions, is_first = batch["obs"], batch["actions"], batch["is_first"]
        b, t = obs.shape[0], obs.shape[1]
        if t < 2:
            raise ConfigurationError(f"vjepa2 loss: batch['obs'] needs T >= 2, found T={t}")
        encoder = slot_as(model, "observation_encoder", VJEPA2Encoder)
        conditioner = slot_as(model, "action_conditioner", ActionConditioner)
        dynamics = slot_as(model, "dynamics_model", DynamicsModel)
        flat = obs.flatten(0, 1)
        frames = encoder(flat)["frame"].unflatten(0, (b, t))
        target = torch.unflatten(encoder.target_tokens(flat), 0, (b, t))
        initial = dynamics.initial_state(b, obs.device, torch.float32)
        state = dynamics.observe(initial, None, State(frame=frames[:, 0]))
        tf, roll, rewards, conts = [], [], [], []
        for step in range(t - 1):
            action_input = conditioner(state, actions[:, step])
            pred = dynamics(state, action_input)
            inside = ~is_first[:, step + 1]
            err = F.l1_loss(pred["frames"][:, -1], target[:, step + 1], reduction="none")
            tf.append((masked_mean(err, inside), inside.any()))
            for extra in range(1, self.p.rollout_steps + 1):
                if step + 1 + extra >= t:
                    break
                pred = dynamics(pred, conditioner(pred, actions[:, step + extra]))
                inside = inside & ~is_first[:, step + 1 + extra]
                err = F.l1_loss(
                    pred["frames"][:, -1], target[:, step + 1 + extra], reduction="none"
                )
                roll.append((masked_mean(err, inside), inside.any()))
            nxt = dynamics.observe(state, action_input, State(frame=frames[:, step + 1]))
            out = model.decode(nxt).predictions
            rewards.append(F.mse_loss(out["reward"], batch["rewards"][:, step].to(err.dtype)))
            cont_target = 1.0 - batch["terminated"][:, step].to(err.dtype)
            conts.append(F.binary_cross_entropy(out["continue"], cont_target))
            fresh = dynamics.observe(initial, None, State(frame=frames[:, step + 1]))
            state = reset_where(is_first[:, step + 1], fresh, nxt)
        teacher_forcing, rollout = _mean_of(tf, frames), _mean_of(roll, frames)
        reward, cont = torch.stack(rewards).mean(), torch.stack(conts).mean()
        loss = (
            self.p.teacher_forcing_coef * teacher_forcing
            + self.p.rollout_coef * rollout
            + self.p.reward_coef * reward
            + self.p.continue_coef * cont
        )
        return LossOutput(
            loss=loss,
            components={
                "teacher_forcing": teacher_forcing,
                "rollout": rollout,
                "reward": reward,
                "continue": cont,
            },
            metrics={"feature_std": float(frames.detach().mean(2).std(0).mean()) if b > 1 else 0.0},
        )

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        groups = self.param_groups(model)
        return {"model": torch.optim.AdamW(groups, lr=self.p.lr, weight_decay=self.p.weight_decay)}

    def after_step(self, model: WorldModel) -> None:
        """EMA update of the target encoder."""
        encoder = slot_as(model, "observation_encoder", VJEPA2Encoder)
        encoder.update_target(self.p.ema_decay)
