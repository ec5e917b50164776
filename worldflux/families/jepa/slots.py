"""I-JEPA-style slots: ViT context encoder with an EMA target, an action-conditioned latent
predictor, reward/continue heads.

Observations are tokenised (:mod:`worldflux.families.jepa.vit`: image patches, or chunks of a
vector's features) and encoded by a small ViT. The state ``latent [S * D]`` keeps ``S`` (config
``state_tokens``) tokens: the encoder's ``N`` tokens averaged in ``S`` groups of consecutive
positions (row-major on an image grid), each LayerNorm'd without affine parameters (as I-JEPA
normalises its targets). ``S = 1`` is the pooled mean of every token; ``S = N`` keeps the whole
token grid, as V-JEPA 2-AC predicts patch tokens: a pooled mean adds the patches up and loses
where things are, the grid keeps it. Encoded latents, targets and predicted latents all live in
the same space, so rollouts can feed predictions back into the predictor.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch.nn import functional as F

from worldflux.components._common import build_mlp
from worldflux.core.components import BuildContext, Decoder, DynamicsModel, ObservationEncoder
from worldflux.core.exceptions import ConfigurationError, ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.types import ModelOutput, State
from worldflux.families.jepa.vit import TokenViT, token_grid
from worldflux.families.shared.hparams import hp, require_dims

__all__ = ["JEPAEncoder", "JEPAHeads", "JEPAPredictor", "per_token_norm", "pool"]


def _as_tensor(obs: Tensor | dict[str, Tensor]) -> Tensor:
    if not isinstance(obs, Tensor):
        raise ContractViolation(f"obs: expected a torch.Tensor, found {type(obs).__name__}")
    return obs


def pool(tokens: Tensor, groups: int = 1) -> Tensor:
    """The state latent of tokens ``[B, N, D]``: the mean of each of ``groups`` runs of
    ``N / groups`` consecutive tokens, LayerNorm'd over ``D`` without affine, flattened to
    ``[B, groups * D]`` (``groups=1``: ``LN(mean over N)``)."""
    b, n, d = tokens.shape
    grouped = tokens.reshape(b, groups, n // groups, d).mean(2)
    return F.layer_norm(grouped, (d,)).flatten(1)


def per_token_norm(latent: Tensor, token_dim: int) -> Tensor:
    """``latent [B, S * D]`` with each of its ``S`` tokens LayerNorm'd over ``D`` (no affine)."""
    tokens = latent.reshape(*latent.shape[:-1], -1, token_dim)
    return F.layer_norm(tokens, (token_dim,)).flatten(-2)


@register_component("observation_encoder", "jepa.encoder")
class JEPAEncoder(ObservationEncoder):
    """ViT context encoder ``obs [B, *obs_shape] -> {"latent": [B, state_tokens * latent_dim]}``
    plus its EMA target.

    ``tokens(obs, keep)`` gives the context encoder's tokens ``[B, N, D]`` seeing only the kept
    tokens; ``target_tokens(obs)`` the target encoder's over all tokens. The target is a frozen
    copy (``requires_grad=False``) moved by :meth:`update_target` (the objective's
    ``after_step``), which also counts the updates in the buffer ``updates`` (the EMA schedule's
    clock, saved with the model). Sets ``ctx.dims["latent_dim"]`` (the state's width,
    ``state_tokens * latent_dim``) and ``ctx.dims["tokens"]``.

    Raises:
        ConfigurationError: ``state_tokens`` does not divide the number of tokens.
    """

    updates: Tensor  # [] int64

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.latent_dim = int(hp(ctx, "latent_dim"))
        self.grid = token_grid(ctx)
        self.state_tokens = int(hp(ctx, "state_tokens"))
        if self.grid.tokens % self.state_tokens:
            raise ConfigurationError(
                f"jepa.encoder: state_tokens={self.state_tokens} must divide the observation's "
                f"{self.grid.tokens} tokens ({self.grid.rows} x {self.grid.cols})"
            )
        state_dim = self.state_tokens * self.latent_dim
        if ctx.dims and ctx.dims.get("latent_dim") != state_dim:
            raise ConfigurationError(
                f"jepa.encoder produces latent [{state_dim}]; this model's slots expect "
                f"latent_dim={ctx.dims.get('latent_dim')}"
            )
        self.context = TokenViT(
            self.grid, self.latent_dim, int(hp(ctx, "enc_depth")), int(hp(ctx, "enc_heads"))
        )
        self.target = copy.deepcopy(self.context)
        self.target.requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        ctx.dims["latent_dim"] = state_dim
        ctx.dims["tokens"] = self.grid.tokens

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        return State(latent=self.pool(self.context(_as_tensor(obs))))

    def pool(self, tokens: Tensor) -> Tensor:
        """The state latent ``[B, state_tokens * latent_dim]`` of tokens ``[B, N, latent_dim]``."""
        return pool(tokens, self.state_tokens)

    def tokens(self, obs: Tensor, keep: Tensor | None = None) -> Tensor:
        """Context-encoder tokens ``[B, N, D]``; with ``keep [B, N]`` only kept ones are seen."""
        out: Tensor = self.context(obs, keep)
        return out

    @torch.no_grad()
    def target_tokens(self, obs: Tensor) -> Tensor:
        """Stop-gradient target-encoder tokens ``[B, N, D]`` over every token."""
        out: Tensor = self.target(obs)
        return out

    @torch.no_grad()
    def target_latent(self, obs: Tensor) -> Tensor:
        """Stop-gradient target latent ``[B, state_tokens * latent_dim]`` (pooled target
        tokens)."""
        return self.pool(self.target(obs))

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """``target <- momentum * target + (1 - momentum) * context``; counts the update."""
        for tgt, src in zip(self.target.parameters(), self.context.parameters(), strict=True):
            tgt.lerp_(src.detach(), 1.0 - momentum)
        self.updates += 1


@register_component("dynamics_model", "jepa.predictor")
class JEPAPredictor(DynamicsModel):
    """Action-conditioned predictor in latent space.

    ``latent' = LN(latent + MLP(action_input))`` where ``action_input [B, S * D + A]`` comes
    from the conditioner (``concat``) and the LayerNorm is per state token (as the encoder's).
    No recurrent carry: ``observe`` returns the encoding.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "jepa.predictor", "latent_dim", built_by="the observation encoder")
        self.latent_dim = int(ctx.dims["latent_dim"])
        self.token_dim = int(hp(ctx, "latent_dim"))
        in_dim = int(ctx.dims.get("dynamics_input_dim", self.latent_dim + ctx.action_dim))
        self.net = build_mlp(
            in_dim, int(hp(ctx, "hidden_dim")), int(hp(ctx, "dyn_layers")), self.latent_dim
        )

    def forward(self, state: State, action_input: Tensor) -> State:
        z = state["latent"] + self.net(action_input)
        return State(latent=per_token_norm(z, self.token_dim))


@register_component("decoder", "jepa.heads")
class JEPAHeads(Decoder):
    """``{"latent": [B, S * D]}`` -> ``reward [B]``, ``continue [B]`` (probability); no obs head."""

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
