"""IRIS-style objective: tokenizer (reconstruction + VQ) and world model (tokens, reward, end)."""

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
from worldflux.families.shared.tensors import masked_mean, reset_where
from worldflux.families.token.slots import TokenDecoder, Tokenizer, TokenTransformer

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["TokenObjective", "TokenObjectiveParams"]


class TokenObjectiveParams(BaseModel):
    """Loss weights (IRIS weighs every term 1; commitment beta) and the learning rate."""

    model_config = ConfigDict(extra="forbid")
    reconstruction_coef: float = Field(1.0, ge=0.0)
    commitment_beta: float = Field(0.25, ge=0.0)
    tokens_coef: float = Field(1.0, ge=0.0)
    reward_coef: float = Field(1.0, ge=0.0)
    continue_coef: float = Field(1.0, ge=0.0)
    lr: float = Field(1e-4, gt=0.0)


@register_component("objective", "token.objective", params_model=TokenObjectiveParams)
class TokenObjective(Objective):
    """Loss on a ``[B, T, ...]`` batch (T >= 2), through the slots.

    Tokenizer: ``reconstruction`` = MSE(decoder(straight-through codes), obs) and ``vq`` =
    ||sg(z_e) - z_q||² + beta ||z_e - sg(z_q)||². World model (on stop-gradient tokens, as IRIS
    trains it on a fixed tokenizer): ``tokens`` = cross-entropy of the next frame's N tokens given
    the window of the last K frames and the action (masked across episode starts), ``reward`` =
    MSE at the action token (IRIS classifies the reward sign), ``continue`` = BCE against
    ``1 - terminated``.
    """

    def __init__(self, ctx: BuildContext, params: TokenObjectiveParams) -> None:
        super().__init__()
        self.p = params

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions, is_first = batch["obs"], batch["actions"], batch["is_first"]
        b, t = obs.shape[0], obs.shape[1]
        if t < 2:
            raise ConfigurationError(f"token loss: batch['obs'] needs T >= 2, found T={t}")
        encoder = slot_as(model, "observation_encoder", Tokenizer)
        conditioner = slot_as(model, "action_conditioner", ActionConditioner)
        dynamics = slot_as(model, "dynamics_model", TokenTransformer)
        decoder = slot_as(model, "decoder", TokenDecoder)
        z_e, z_q, tokens = encoder.quantize(obs.flatten(0, 1))
        recon = decoder.reconstruct(z_e + (z_q - z_e).detach())
        reconstruction = F.mse_loss(recon, obs.flatten(0, 1).to(recon.dtype))
        vq = F.mse_loss(z_q, z_e.detach()) + self.p.commitment_beta * F.mse_loss(z_e, z_q.detach())
        tokens = torch.unflatten(tokens.detach(), 0, (b, t))

        def obs_state(step: int) -> State:
            return State(tokens=tokens[:, step])

        initial = dynamics.initial_state(b, obs.device, torch.float32)
        state = dynamics.observe(initial, None, obs_state(0))
        ce, rewards, conts = [], [], []
        for step in range(t - 1):
            action_input = conditioner(state, actions[:, step])
            logits, hidden = dynamics.teacher_forced(state, action_input, tokens[:, step + 1])
            nxt_first = is_first[:, step + 1]
            per_sample = F.cross_entropy(
                logits.flatten(0, 1), tokens[:, step + 1].flatten(), reduction="none"
            ).view(b, -1)
            ce.append((masked_mean(per_sample, ~nxt_first), (~nxt_first).any()))
            nxt = dynamics.observe(state, action_input, obs_state(step + 1)).replace(hidden=hidden)
            pred = model.decode(nxt).predictions
            rewards.append(F.mse_loss(pred["reward"], batch["rewards"][:, step].to(hidden.dtype)))
            target = 1.0 - batch["terminated"][:, step].to(hidden.dtype)
            conts.append(F.binary_cross_entropy(pred["continue"], target))
            fresh = dynamics.observe(initial, None, obs_state(step + 1))
            state = reset_where(nxt_first, fresh, nxt)
        kept = [loss for loss, any_valid in ce if bool(any_valid)]
        token_loss = torch.stack(kept).mean() if kept else ce[0][0] * 0.0
        reward, cont = torch.stack(rewards).mean(), torch.stack(conts).mean()
        total = (
            self.p.reconstruction_coef * reconstruction
            + vq
            + self.p.tokens_coef * token_loss
            + self.p.reward_coef * reward
            + self.p.continue_coef * cont
        )
        usage = float(torch.unique(tokens).numel()) / float(encoder.vocab)
        return LossOutput(
            loss=total,
            components={
                "reconstruction": reconstruction,
                "vq": vq,
                "tokens": token_loss,
                "reward": reward,
                "continue": cont,
            },
            metrics={"codebook_usage": usage},
        )

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        return {
            "model": torch.optim.AdamW(self.param_groups(model), lr=self.p.lr, weight_decay=0.01)
        }
