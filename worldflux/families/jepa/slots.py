"""I-JEPA-style slots: context encoder with an EMA target, latent predictor, reward/continue heads.

The latent space is LayerNorm'd without affine parameters (as I-JEPA normalises its targets), so
encoded latents, targets and predicted latents all live in the same space and rollouts can feed
predictions back into the predictor.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.components._common import build_mlp, flat_obs_dim
from worldflux.core.components import BuildContext, Decoder, DynamicsModel, ObservationEncoder
from worldflux.core.exceptions import ConfigurationError, ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.types import ModelOutput, State
from worldflux.families.shared.hparams import hp, require_dims

__all__ = ["JEPAEncoder", "JEPAHeads", "JEPAPredictor"]


def _as_tensor(obs: Tensor | dict[str, Tensor]) -> Tensor:
    if not isinstance(obs, Tensor):
        raise ContractViolation(f"obs: expected a torch.Tensor, found {type(obs).__name__}")
    return obs


@register_component("observation_encoder", "jepa.encoder")
class JEPAEncoder(ObservationEncoder):
    """Context encoder ``obs [B, *obs_shape] -> {"latent": [B, latent_dim]}`` plus its EMA target.

    The target encoder is a frozen copy (``requires_grad=False``) updated by :meth:`update_target`
    (called from the objective's ``after_step``); it gives the stop-gradient prediction targets.
    Sets ``ctx.dims["latent_dim"]``.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.latent_dim = int(hp(ctx, "latent_dim"))
        if ctx.dims and ctx.dims.get("latent_dim") != self.latent_dim:
            raise ConfigurationError(
                f"jepa.encoder produces latent [{self.latent_dim}]; this model's slots expect "
                f"latent_dim={ctx.dims.get('latent_dim')}"
            )
        self.context = build_mlp(
            flat_obs_dim(ctx.obs_shape),
            int(hp(ctx, "hidden_dim")),
            int(hp(ctx, "enc_layers")),
            self.latent_dim,
        )
        self.target = copy.deepcopy(self.context)
        self.target.requires_grad_(False)
        ctx.dims["latent_dim"] = self.latent_dim

    def _embed(self, net: nn.Module, obs: Tensor) -> Tensor:
        z = net(obs.flatten(1).float())
        return F.layer_norm(z, (self.latent_dim,))

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        return State(latent=self._embed(self.context, _as_tensor(obs)))

    @torch.no_grad()
    def target_latent(self, obs: Tensor) -> Tensor:
        """Stop-gradient target ``[B, latent_dim]`` from the EMA encoder."""
        return self._embed(self.target, obs)

    @torch.no_grad()
    def update_target(self, decay: float) -> None:
        """``target <- decay * target + (1 - decay) * context``."""
        for tgt, src in zip(self.target.parameters(), self.context.parameters(), strict=True):
            tgt.lerp_(src.detach(), 1.0 - decay)


@register_component("dynamics_model", "jepa.predictor")
class JEPAPredictor(DynamicsModel):
    """Action-conditioned predictor in latent space.

    ``latent' = LN(latent + MLP(action_input))`` where ``action_input [B, latent_dim + A]`` comes
    from the conditioner (``concat``). No recurrent carry: ``observe`` returns the encoding.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "jepa.predictor", "latent_dim", built_by="the observation encoder")
        self.latent_dim = int(ctx.dims["latent_dim"])
        in_dim = int(ctx.dims.get("dynamics_input_dim", self.latent_dim + ctx.action_dim))
        self.net = build_mlp(
            in_dim, int(hp(ctx, "hidden_dim")), int(hp(ctx, "pred_layers")), self.latent_dim
        )

    def forward(self, state: State, action_input: Tensor) -> State:
        z = state["latent"] + self.net(action_input)
        return State(latent=F.layer_norm(z, (self.latent_dim,)))


@register_component("decoder", "jepa.heads")
class JEPAHeads(Decoder):
    """``{"latent": [B, D]}`` -> ``reward [B]``, ``continue [B]`` (probability); no obs head."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "jepa.heads", "latent_dim", built_by="the observation encoder")
        latent, hidden, layers = (
            int(ctx.dims["latent_dim"]),
            int(hp(ctx, "hidden_dim")),
            int(hp(ctx, "head_layers")),
        )
        self.reward = build_mlp(latent, hidden, layers, 1)
        self.cont = build_mlp(latent, hidden, layers, 1)

    def forward(self, state: State) -> ModelOutput:
        z = state["latent"]
        return ModelOutput(
            predictions={
                "reward": self.reward(z).squeeze(-1),
                "continue": torch.sigmoid(self.cont(z).squeeze(-1)),
            },
            state=state,
        )
