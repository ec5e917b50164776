"""SKELETON GAN objective: non-saturating generator loss, discriminator BCE, and the generic
reconstruction / reward / continue terms, all through the slots."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.func import functional_call
from torch.nn import functional as F

from worldflux.components._common import build_mlp
from worldflux.components.conditioners import action_features
from worldflux.core.components import BuildContext, Objective
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.gan.slots import hp
from worldflux.families.shared.hparams import require_dims

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["GANObjective", "GANObjectiveParams"]


class GANObjectiveParams(BaseModel):
    """Loss weights and learning rate."""

    model_config = ConfigDict(extra="forbid")
    adversarial_coef: float = Field(1.0, ge=0.0)
    reconstruction_coef: float = Field(1.0, ge=0.0)
    latent_coef: float = Field(
        1.0,
        ge=0.0,
        description="weight of the regression of the generated next latent (with noise) onto "
        "the encoded next latent (stop-gradient), the L1/L2 term of conditional GANs (pix2pix): "
        "the adversarial term alone leaves the generator free to drift off the data",
    )
    reward_coef: float = Field(1.0, ge=0.0)
    continue_coef: float = Field(1.0, ge=0.0)
    lr: float = Field(2e-4, gt=0.0)


@register_component("objective", "gan.objective", params_model=GANObjectiveParams)
class GANObjective(Objective):
    """Owns the discriminator ``D([z_t, a_t, z_{t+1}]) -> logit``.

    ``discriminator`` = BCE(D(real), 1) + BCE(D(sg(fake)), 0) on stop-gradient inputs;
    ``generator`` = BCE(D(fake), 1) through a parameter-detached copy of D, so each player's loss
    only moves its own parameters even under one optimiser. ``latent`` = MSE of the generated
    ``z'`` to ``sg(z_{t+1})`` inside episodes (conditional GANs' regression term).
    ``reconstruction`` = MSE of ``decode(z_t).obs``; ``reward`` / ``continue`` from
    ``decode(fake)``.
    """

    def __init__(self, ctx: BuildContext, params: GANObjectiveParams) -> None:
        super().__init__()
        self.p = params
        self.action_dim, self.action_type = ctx.action_dim, ctx.action_type
        require_dims(ctx, "gan.objective", "latent_dim", built_by="the observation encoder")
        latent = int(ctx.dims["latent_dim"])
        self.discriminator = build_mlp(
            2 * latent + ctx.action_dim, int(hp(ctx, "disc_hidden")), 2, 1
        )

    def _features(self, z: Tensor, action: Tensor, z_next: Tensor) -> Tensor:
        a = action_features(action, self.action_dim, self.action_type).to(z.dtype)
        return torch.cat([z, a, z_next], dim=-1)

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions = batch["obs"], batch["actions"]
        b, t = obs.shape[0], obs.shape[1]
        if t < 2:
            raise ConfigurationError(f"gan loss: batch['obs'] needs T >= 2, found T={t}")
        z = torch.unflatten(model.encode(obs.flatten(0, 1), validate=False)["latent"], 0, (b, t))
        reconstruction = F.mse_loss(
            model.decode(State(latent=z.flatten(0, 1))).predictions["obs"],
            obs.flatten(0, 1).to(z.dtype),
        )
        z_t, z_next = z[:, :-1].flatten(0, 1), z[:, 1:].flatten(0, 1)
        a_t = actions[:, :-1].flatten(0, 1)
        fake = model.transition(State(latent=z_t), a_t, validate=False)["latent"]
        inside: Tensor = (~batch["is_first"][:, 1:]).flatten().to(z.dtype)

        def inside_mean(per_step: Tensor) -> Tensor:
            return (per_step * inside).sum() / inside.sum().clamp_min(1.0)

        def bce(logits: Tensor, label: float) -> Tensor:
            return inside_mean(
                F.binary_cross_entropy_with_logits(
                    logits.squeeze(-1), torch.full_like(inside, label), reduction="none"
                )
            )

        d_real = self.discriminator(self._features(z_t.detach(), a_t, z_next.detach()))
        d_fake = self.discriminator(self._features(z_t.detach(), a_t, fake.detach()))
        discriminator = bce(d_real, 1.0) + bce(d_fake, 0.0)
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        g_logits = functional_call(self.discriminator, frozen, (self._features(z_t, a_t, fake),))
        generator = bce(g_logits, 1.0)
        latent = inside_mean((fake - z_next.detach()).pow(2).mean(-1))
        pred = model.decode(State(latent=fake)).predictions
        reward = F.mse_loss(pred["reward"], batch["rewards"][:, :-1].flatten().to(z.dtype))
        cont_target = 1.0 - batch["terminated"][:, :-1].flatten().to(z.dtype)
        cont = F.binary_cross_entropy(pred["continue"].clamp(1e-6, 1 - 1e-6), cont_target)
        loss = (
            self.p.adversarial_coef * (generator + discriminator)
            + self.p.reconstruction_coef * reconstruction
            + self.p.latent_coef * latent
            + self.p.reward_coef * reward
            + self.p.continue_coef * cont
        )
        return LossOutput(
            loss=loss,
            components={
                "reconstruction": reconstruction,
                "latent": latent,
                "reward": reward,
                "continue": cont,
                "generator": generator,
                "discriminator": discriminator,
            },
        )

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.param_groups(model), lr=self.p.lr, betas=(0.5, 0.9))}
