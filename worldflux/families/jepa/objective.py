"""JEPA objective: I-JEPA multi-block masked prediction against the EMA target encoder, an
action-conditioned open-loop latent term, a variance-covariance term, reward / continue
regression, and the EMA momentum schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.nn import functional as F

from worldflux.core.components import BuildContext, Objective
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.jepa.masks import MaskSpec, sample_masks
from worldflux.families.jepa.slots import JEPAEncoder
from worldflux.families.jepa.vit import MaskedPredictor, token_grid
from worldflux.families.shared.hparams import hp
from worldflux.families.shared.tensors import masked_mean

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["JEPAObjective", "JEPAObjectiveParams", "ema_momentum", "spread_loss"]

Range = tuple[float, float]


class JEPAObjectiveParams(BaseModel):
    """Loss weights, the open-loop horizon and latent target, the multi-block masks (I-JEPA's
    ImageNet settings) and the EMA momentum range (its horizon is the config's ``ema_steps``)."""

    model_config = ConfigDict(extra="forbid")
    latent_coef: float = Field(1.0, ge=0.0)
    masked_coef: float = Field(1.0, ge=0.0)
    reward_coef: float = Field(1.0, ge=0.0)
    continue_coef: float = Field(1.0, ge=0.0)
    rollout_steps: int = Field(5, ge=1, description="open-loop steps of the latent term")
    rollout_discount: float = Field(1.0, gt=0.0, le=1.0, description="weight rho^(k-1) of step k")
    num_targets: int = Field(4, ge=1)
    target_scale: Range = (0.15, 0.2)
    target_aspect: Range = (0.75, 1.5)
    context_scale: Range = (0.85, 1.0)
    ema_start: float = Field(0.996, ge=0.0, le=1.0)
    ema_end: float = Field(1.0, ge=0.0, le=1.0)
    lr: float = Field(3e-4, gt=0.0)
    latent_target: Literal["context", "ema"] = Field(
        "context", description="targets of the latent term: sg(context encoder) or EMA encoder"
    )
    spread_coef: float = Field(1.0, ge=0.0, description="weight of the variance-covariance term")
    spread_std: float = Field(0.5, gt=0.0, description="per-dimension std the hinge asks for")


def ema_momentum(update: int, start: float, end: float, steps: int) -> float:
    """I-JEPA's momentum schedule: linear from ``start`` (update 0) to ``end`` (update
    ``steps``), then held at ``end``."""
    return start + (end - start) * min(update, steps) / max(steps, 1)


def spread_loss(z: Tensor, std: float) -> Tensor:
    """VICReg's variance and covariance terms of latents ``z [N, D]`` (N > 1, else 0): the mean
    hinge ``relu(std - std_d)`` over dimensions plus the squared off-diagonal covariances / D.

    It keeps every latent direction informative, so the linear read-out of the latent (the
    evaluation's ridge probe, goal energies) is well conditioned; I-JEPA has no such term.
    """
    if z.shape[0] < 2:
        return z.new_zeros(())
    centred = z - z.mean(0)
    var = F.relu(std - (centred.var(0) + 1e-4).sqrt()).mean()
    cov = centred.T @ centred / (z.shape[0] - 1)
    off = cov - torch.diag(torch.diag(cov))
    return var + off.pow(2).sum() / z.shape[1]


@register_component("objective", "jepa.objective", params_model=JEPAObjectiveParams)
class JEPAObjective(Objective):
    """Loss on a ``[B, T, ...]`` batch (T >= 2), through the slots. Components:

    - ``masked`` (I-JEPA): per frame, multi-block masks (:mod:`~worldflux.families.jepa.masks`);
      the context encoder sees only the context tokens, the predictor (:class:`MaskedPredictor`,
      owned here) fills each target block with mask tokens and predicts the EMA target encoder's
      LayerNorm'd features there; smooth-L1 over the target tokens only.
    - ``latent``: from ``z_t = encode(obs_t)``, ``k = 1..rollout_steps`` open-loop transitions
      with the recorded actions (the predictor is fed its own outputs, as in a rollout);
      smooth-L1 of ``z_hat_{t+k}`` to the stop-gradient latent of ``obs_{t+k}``, where no
      episode starts in ``t+1..t+k``, weighted ``rho^(k-1)``. The target latent is the context
      encoder's (``latent_target: context``, the space ``encode`` and the rollouts start from)
      or the EMA encoder's (``ema``).
    - ``spread`` (:func:`spread_loss`) of the encoded latents.
    - ``reward`` (MSE) and ``continue`` (BCE) of the heads on the one-step predictions.

    Metric ``latent_std`` monitors collapse (ijepa#25); ``ema_momentum`` the schedule.
    """

    def __init__(self, ctx: BuildContext, params: JEPAObjectiveParams) -> None:
        super().__init__()
        self.p = params
        self.ema_steps = int(hp(ctx, "ema_steps"))
        self.masks = MaskSpec(
            num_targets=params.num_targets,
            target_scale=params.target_scale,
            target_aspect=params.target_aspect,
            context_scale=params.context_scale,
        )
        self.grid = token_grid(ctx)
        self.predictor = MaskedPredictor(
            self.grid,
            int(hp(ctx, "latent_dim")),
            int(hp(ctx, "pred_dim")),
            int(hp(ctx, "pred_depth")),
            int(hp(ctx, "pred_heads")),
        )

    def momentum(self, encoder: JEPAEncoder) -> float:
        """The EMA momentum of the encoder's next target update."""
        return ema_momentum(int(encoder.updates), self.p.ema_start, self.p.ema_end, self.ema_steps)

    def masked_loss(self, encoder: JEPAEncoder, obs: Tensor, targets: Tensor) -> Tensor:
        """I-JEPA's loss on frames ``obs [F, *obs_shape]`` with target tokens ``[F, N, D]``."""
        masks = sample_masks(obs.shape[0], (self.grid.rows, self.grid.cols), self.masks)
        context, blocks = masks.context.to(obs.device), masks.targets.to(obs.device)
        tokens = encoder.tokens(obs, keep=context)
        pred = self.predictor(tokens, context, blocks)
        wanted = F.layer_norm(targets, (targets.shape[-1],))
        err = F.smooth_l1_loss(pred, wanted[:, None].expand_as(pred), reduction="none")
        return masked_mean(err, blocks)

    def latent_loss(
        self, model: WorldModel, z: Tensor, target: Tensor, batch: Batch
    ) -> tuple[Tensor, State]:
        """Open-loop latent term from every start ``z [B, T, D]``; also the one-step states."""
        b, t = z.shape[0], z.shape[1]
        actions, is_first = batch["actions"], batch["is_first"]
        cur, inside = z[:, :-1], torch.ones_like(is_first[:, 1:])
        total, weights, one_step = z.new_zeros(()), 0.0, None
        for k in range(1, min(self.p.rollout_steps, t - 1) + 1):
            n = t - k
            act = actions[:, k - 1 : k - 1 + n]
            pred = model.transition(
                State(latent=cur[:, :n].flatten(0, 1)), act.flatten(0, 1), validate=False
            )
            one_step = pred if one_step is None else one_step
            cur = torch.unflatten(pred["latent"], 0, (b, n))
            inside = inside[:, :n] & ~is_first[:, k : k + n]
            err = F.smooth_l1_loss(cur, target[:, k : k + n], reduction="none")
            weight = self.p.rollout_discount ** (k - 1)
            total, weights = total + weight * masked_mean(err, inside), weights + weight
        assert one_step is not None
        return total / weights, one_step

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs = batch["obs"]
        b, t = obs.shape[0], obs.shape[1]
        if t < 2:
            raise ConfigurationError(f"jepa loss: batch['obs'] needs T >= 2 steps, found T={t}")
        encoder = slot_as(model, "observation_encoder", JEPAEncoder)
        flat = obs.flatten(0, 1)
        z = torch.unflatten(model.encode(flat, validate=False)["latent"], 0, (b, t))
        target_tokens = encoder.target_tokens(flat)
        target = torch.unflatten(encoder.pool(target_tokens), 0, (b, t))
        if self.p.latent_target == "context":
            target = z.detach()
        masked = self.masked_loss(encoder, flat, target_tokens)
        latent, pred = self.latent_loss(model, z, target, batch)
        out = model.decode(pred).predictions
        reward_pred = torch.unflatten(out["reward"], 0, (b, t - 1))
        reward = F.mse_loss(reward_pred, batch["rewards"][:, :-1].to(reward_pred.dtype))
        cont_pred = torch.unflatten(out["continue"], 0, (b, t - 1))
        cont_target = 1.0 - batch["terminated"][:, :-1].to(cont_pred.dtype)
        cont = F.binary_cross_entropy(cont_pred, cont_target)
        loss = self.p.latent_coef * latent + self.p.masked_coef * masked
        spread = spread_loss(z.flatten(0, 1), self.p.spread_std)
        loss = loss + self.p.spread_coef * spread
        loss = loss + self.p.reward_coef * reward + self.p.continue_coef * cont
        return LossOutput(
            loss=loss,
            components={
                "latent": latent,
                "masked": masked,
                "spread": spread,
                "reward": reward,
                "continue": cont,
            },
            metrics={
                "latent_std": float(z.detach().std(dim=0).mean()) if b > 1 else 0.0,
                "ema_momentum": self.momentum(encoder),
            },
        )

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.param_groups(model), lr=self.p.lr)}

    def after_step(self, model: WorldModel) -> None:
        """EMA update of the target encoder with the scheduled momentum."""
        encoder = slot_as(model, "observation_encoder", JEPAEncoder)
        encoder.update_target(self.momentum(encoder))
