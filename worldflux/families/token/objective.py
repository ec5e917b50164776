"""IRIS-style objective: the tokenizer (reconstruction + VQ) and the world model (tokens, reward
sign, end), trained as separate parts with their own optimisers and an optional tokenizer-only
warm-up phase."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.components import ActionConditioner, BuildContext, Objective
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.shared.tensors import masked_mean, reset_where
from worldflux.families.token.hparams import hp
from worldflux.families.token.nets import straight_through
from worldflux.families.token.slots import TokenDecoder, Tokenizer, TokenTransformer

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["PhaseGatedAdamW", "TokenObjective", "TokenObjectiveParams", "tokenizer_parameters"]


class TokenObjectiveParams(BaseModel):
    """Loss weights, the reconstruction norm, the commitment beta, the learning rate and the
    per-optimiser gradient clip (IRIS: every term weighs 1, beta 1 in its code, lr 1e-4 for
    every part, max_grad_norm 10). IRIS reconstructs with L1 plus a perceptual (LPIPS) loss;
    without the perceptual term, L1 on mostly black frames settles on black frames (the median),
    so the default here is MSE."""

    model_config = ConfigDict(extra="forbid")
    reconstruction_coef: float = Field(1.0, ge=0.0)
    reconstruction_loss: Literal["l1", "mse"] = "mse"
    commitment_beta: float = Field(1.0, ge=0.0)
    tokens_coef: float = Field(1.0, ge=0.0)
    reward_coef: float = Field(1.0, ge=0.0)
    continue_coef: float = Field(1.0, ge=0.0)
    lr: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    max_grad_norm: float = Field(10.0, gt=0.0)


class PhaseGatedAdamW(torch.optim.AdamW):
    """AdamW that steps only while ``active()`` is true (else leaves parameters and state)."""

    def __init__(
        self, params: Iterable[nn.Parameter], active: Callable[[], bool], **kwargs: Any
    ) -> None:
        super().__init__(params, **kwargs)
        self._active = active

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if not self._active():
            return None
        return super().step(closure)


def tokenizer_parameters(model: WorldModel) -> list[nn.Parameter]:
    """The VQ-VAE's parameters: the encoder slot (conv/MLP encoder, codebook) and the decoder
    slot's observation decoder (``decoder.net``); everything else is the world model."""
    encoder = slot_as(model, "observation_encoder", Tokenizer)
    decoder = slot_as(model, "decoder", TokenDecoder)
    seen: dict[int, nn.Parameter] = {}
    for p in [*encoder.parameters(), *decoder.net.parameters()]:
        if p.requires_grad:
            seen.setdefault(id(p), p)
    return list(seen.values())


@register_component("objective", "token.objective", params_model=TokenObjectiveParams)
class TokenObjective(Objective):
    """Loss on a ``[B, T, ...]`` batch (T >= 2), through the slots; two parts, as IRIS trains them.

    Tokenizer: ``reconstruction`` = MSE (or L1) of decoder(straight-through codes) to the frame
    and ``vq`` = ||sg(z_e) - z_q||² + beta ||z_e - sg(z_q)||². World model, on the integer tokens
    of the current tokenizer (argmin indices: no gradient can reach the tokenizer): ``tokens`` =
    cross-entropy of the next frame's N tokens given the window of the last K frames and the
    action (masked across episode starts); ``reward`` = cross-entropy of the reward's sign
    (classes {-1, 0, +1}) at the action token; ``continue`` = BCE against ``1 - terminated``.
    The two parts share no parameter: the tokenizer's gradients come only from reconstruction +
    VQ, the transformer's and heads' only from tokens + reward + continue.

    Phases: :meth:`make_optimizers` gives each part its own optimiser (``tokenizer`` Adam,
    ``world_model`` AdamW, and ``behaviour`` Adam for a learning behaviour's parameters); for
    the first ``tokenizer_updates`` updates (config; counted in :meth:`after_step`, saved with
    the model as the buffer ``updates``) only the tokenizer's optimiser steps, as IRIS starts
    the world model once the tokenizer has trained alone. ``metrics["phase"]`` is 0 in that
    warm-up, 1 after.
    """

    def __init__(self, ctx: BuildContext, params: TokenObjectiveParams) -> None:
        super().__init__()
        self.p = params
        self.tokenizer_updates = int(hp(ctx, "tokenizer_updates"))
        self.grad_clip = params.max_grad_norm
        self.updates: Tensor
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def warming_up(self) -> bool:
        """True during the tokenizer-only phase (fewer than ``tokenizer_updates`` updates)."""
        return int(self.updates) < self.tokenizer_updates

    def tokenizer_parameters(self, model: WorldModel) -> list[nn.Parameter]:
        """The parameters the tokenizer optimiser owns (:func:`tokenizer_parameters`)."""
        return tokenizer_parameters(model)

    def tokenizer_losses(self, model: WorldModel, frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The VQ-VAE's own loss on ``frames [M, *obs_shape]``: (reconstruction, vq, tokens
        ``[M, N]`` int64), through the encoder and decoder slots."""
        encoder = slot_as(model, "observation_encoder", Tokenizer)
        decoder = slot_as(model, "decoder", TokenDecoder)
        z_e, z_q, tokens = encoder.quantize(frames)
        recon = decoder.reconstruct(straight_through(z_e, z_q))
        target = frames.to(recon.dtype)
        if self.p.reconstruction_loss == "l1":
            reconstruction = F.l1_loss(recon, target)
        else:
            reconstruction = F.mse_loss(recon, target)
        vq = F.mse_loss(z_q, z_e.detach()) + self.p.commitment_beta * F.mse_loss(z_e, z_q.detach())
        return reconstruction, vq, tokens

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions, is_first = batch["obs"], batch["actions"], batch["is_first"]
        b, t = obs.shape[0], obs.shape[1]
        if t < 2:
            raise ConfigurationError(f"token loss: batch['obs'] needs T >= 2, found T={t}")
        encoder = slot_as(model, "observation_encoder", Tokenizer)
        conditioner = slot_as(model, "action_conditioner", ActionConditioner)
        dynamics = slot_as(model, "dynamics_model", TokenTransformer)
        decoder = slot_as(model, "decoder", TokenDecoder)
        reconstruction, vq, flat_tokens = self.tokenizer_losses(model, obs.flatten(0, 1))
        tokens = torch.unflatten(flat_tokens.detach(), 0, (b, t))

        def obs_state(step: int) -> State:
            return State(tokens=tokens[:, step])

        initial = dynamics.initial_state(b, obs.device, torch.float32)
        state = dynamics.observe(initial, None, obs_state(0))
        ce, rewards, conts, hits = [], [], [], []
        for step in range(t - 1):
            action_input = conditioner(state, actions[:, step])
            logits, hidden = dynamics.teacher_forced(state, action_input, tokens[:, step + 1])
            nxt_first = is_first[:, step + 1]
            per_sample = F.cross_entropy(
                logits.flatten(0, 1), tokens[:, step + 1].flatten(), reduction="none"
            ).view(b, -1)
            ce.append((masked_mean(per_sample, ~nxt_first), (~nxt_first).any()))
            reward_logits, cont_logit = decoder.heads(hidden)
            sign = torch.sign(batch["rewards"][:, step]).long() + 1  # classes 0, 1, 2
            rewards.append(F.cross_entropy(reward_logits, sign))
            hits.append((reward_logits.argmax(-1) == sign).float().mean())
            target = 1.0 - batch["terminated"][:, step].to(hidden.dtype)
            conts.append(F.binary_cross_entropy_with_logits(cont_logit, target))
            nxt = dynamics.observe(state, action_input, obs_state(step + 1)).replace(hidden=hidden)
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
            metrics={
                "codebook_usage": usage,
                "reward_sign_accuracy": float(torch.stack(hits).mean()),
                "phase": 0.0 if self.warming_up else 1.0,
            },
        )

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        """``tokenizer``: Adam on :func:`tokenizer_parameters`; ``world_model``: AdamW on the
        transformer, action embedding and heads; ``behaviour``: Adam (AdamW without decay) on a
        behaviour's own parameters (when it has any). The last two wait for the warm-up."""
        tokenizer = tokenizer_parameters(model)
        taken = {id(p) for p in tokenizer}
        behaviour_module = getattr(model, "behaviour", None)
        behaviour = [
            p
            for p in (behaviour_module.parameters() if behaviour_module is not None else ())
            if p.requires_grad and id(p) not in taken
        ]
        taken |= {id(p) for p in behaviour}
        world = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]

        def active() -> bool:
            return not self.warming_up

        optimizers: dict[str, torch.optim.Optimizer] = {
            "tokenizer": torch.optim.Adam(tokenizer, lr=self.p.lr),
            "world_model": PhaseGatedAdamW(
                world, active, lr=self.p.lr, weight_decay=self.p.weight_decay
            ),
        }
        if behaviour:
            optimizers["behaviour"] = PhaseGatedAdamW(
                behaviour, active, lr=self.p.lr, weight_decay=0.0
            )
        return optimizers

    def after_step(self, model: WorldModel) -> None:
        """Count the update (the phase switch reads the count)."""
        self.updates += 1
