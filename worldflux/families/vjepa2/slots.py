"""V-JEPA 2-AC-style slots: patch-token encoder (+ EMA target), block-causal action-conditioned
predictor over a window of frames, reward/continue heads.

State (per sample): ``frames [K, N, D]`` (LayerNorm'd patch features of the last K frames, newest
last), ``actions [K, P]`` (``actions[k]`` is the action token of the action taken *after* frame
k; zeros until taken) and ``valid [K]`` (1 for a real or predicted frame, 0 for padding).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.components._common import build_mlp
from worldflux.components.conditioners import action_features
from worldflux.core.components import (
    ActionConditioner,
    BuildContext,
    Decoder,
    DynamicsModel,
    ObservationEncoder,
)
from worldflux.core.exceptions import ConfigurationError, ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.types import ModelOutput, State
from worldflux.families.shared.hparams import require_dims, swap_guard
from worldflux.families.shared.tensors import shift_in
from worldflux.families.shared.transformer import Transformer
from worldflux.families.vjepa2.hparams import hp, patch_grid
from worldflux.families.vjepa2.pretrained import load_encoder_weights
from worldflux.families.vjepa2.rope import RoPETransformer, window_positions

__all__ = ["VJEPA2Action", "VJEPA2Encoder", "VJEPA2Heads", "VJEPA2Predictor", "block_causal_mask"]


class PatchViT(nn.Module):
    """``[B, C, S, S]`` -> patch features ``[B, N, D]``: conv patchify, positions, ViT, LN."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        channels, side, patch = patch_grid(ctx)
        self.dim = int(hp(ctx, "embed_dim"))
        self.patchify = nn.Conv2d(channels, self.dim, kernel_size=patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(side * side, self.dim) * 0.02)
        self.body = Transformer(
            self.dim,
            int(hp(ctx, "enc_depth")),
            int(hp(ctx, "enc_heads")),
            final_affine=False,
            owner="vjepa2.encoder (embed_dim / enc_heads)",
        )

    def forward(self, obs: Tensor) -> Tensor:
        x = self.patchify(obs.float()).flatten(2).transpose(1, 2) + self.pos
        full = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device)
        tokens: Tensor = self.body(x, full)
        return tokens


@register_component("observation_encoder", "vjepa2.encoder")
class VJEPA2Encoder(ObservationEncoder):
    """obs ``[B, C, S, S]`` -> ``{"frame": [B, N, D]}`` (LayerNorm'd patch tokens), + EMA target.

    The target encoder (frozen copy, ``requires_grad=False``) gives the stop-gradient targets.
    Two modes (config ``freeze_encoder``):

    * joint (default): the context encoder trains with the predictor and the target follows it
      by EMA (:meth:`update_target`), the I-JEPA EMA/stop-grad asymmetry;
    * frozen (V-JEPA 2-AC): the context encoder is frozen too (``requires_grad=False``, always
      in eval mode, no EMA update); target and context hold the same weights, so the predictor
      learns to predict the frozen encoder's own features.

    ``encoder_checkpoint`` (a saved vjepa2 model's directory) initialises both from that model's
    EMA target encoder (:func:`worldflux.families.vjepa2.pretrained.load_encoder_weights`).
    Sets ``ctx.dims["embed_dim"]`` and ``ctx.dims["num_patches"]``.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        swap_guard(ctx, "vjepa2.encoder", "vjepa2.window", "vjepa2.predictor")
        self.context = PatchViT(ctx)
        self.frozen = bool(hp(ctx, "freeze_encoder"))
        source = str(hp(ctx, "encoder_checkpoint"))
        on_meta = any(p.is_meta for p in self.context.parameters())
        if source and not on_meta:  # (a meta build only sizes the model)
            load_encoder_weights(self.context, source)
        self.target = copy.deepcopy(self.context)
        self.target.requires_grad_(False)
        if self.frozen:
            self.context.requires_grad_(False)
            self.context.eval()
        _, side, _ = patch_grid(ctx)
        ctx.dims.update(embed_dim=self.context.dim, num_patches=side * side)
        ctx.dims["vjepa2.encoder"] = True

    def train(self, mode: bool = True) -> VJEPA2Encoder:
        """As ``nn.Module.train``, but a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.context.eval()
            self.target.eval()
        return self

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        if not isinstance(obs, Tensor):
            raise ContractViolation(f"obs: expected a torch.Tensor, found {type(obs).__name__}")
        return State(frame=self.context(obs))

    @torch.no_grad()
    def target_tokens(self, obs: Tensor) -> Tensor:
        """Stop-gradient target features ``[B, N, D]``."""
        tokens: Tensor = self.target(obs)
        return tokens

    @torch.no_grad()
    def update_target(self, decay: float) -> None:
        """``target <- decay * target + (1 - decay) * context``; nothing when frozen."""
        if self.frozen:
            return
        for tgt, src in zip(self.target.parameters(), self.context.parameters(), strict=True):
            tgt.lerp_(src.detach(), 1.0 - decay)


@register_component("action_conditioner", "vjepa2.action")
class VJEPA2Action(ActionConditioner):
    """action ``[B, A]`` (or ``[B]`` int64) -> action token ``[B, pred_dim]``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.action_dim, self.action_type = ctx.action_dim, ctx.action_type
        self.proj = nn.Linear(self.action_dim, int(hp(ctx, "pred_dim")))

    def forward(self, state: State, action: Tensor) -> Tensor:
        embedded: Tensor = self.proj(action_features(action, self.action_dim, self.action_type))
        return embedded


def block_causal_mask(valid: Tensor, tokens_per_frame: int) -> Tensor:
    """``[B, L, L]`` with ``L = K * tokens_per_frame``: a query of frame q sees every token of
    the valid frames ``k <= q``, and always its own frame (so no row is empty)."""
    k = valid.shape[1]
    frame = torch.arange(k, device=valid.device).repeat_interleave(tokens_per_frame)
    earlier = frame[None, :] <= frame[:, None]
    same = frame[None, :] == frame[:, None]
    key_valid = valid.bool().repeat_interleave(tokens_per_frame, dim=1)
    return (earlier & key_valid[:, None, :]) | same


@register_component("dynamics_model", "vjepa2.predictor")
class VJEPA2Predictor(DynamicsModel):
    """Block-causal transformer over ``[action token, N patch tokens]`` per frame of the window.

    Positions (config ``pos_embedding``): ``rope`` (default, as V-JEPA 2) rotates queries and keys
    by 3-D RoPE over (time in the window, patch row, patch column), the action token by time only
    (:mod:`worldflux.families.vjepa2.rope`); ``learned`` adds learned space and time embeddings.

    The outputs at the newest frame's patch positions (projected back to ``D`` and LayerNorm'd,
    the target space) are the predicted next frame. One step costs one pass; ``forward`` and the
    loss's teacher forcing use the same call, so training and rollout see identical inputs.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "vjepa2.predictor", "vjepa2.encoder", built_by="vjepa2.encoder")
        self.dim = int(ctx.dims["embed_dim"])
        self.num_patches = int(ctx.dims["num_patches"])
        self.context = int(hp(ctx, "context_frames"))
        if self.context < 2:
            raise ConfigurationError(f"vjepa2: context_frames must be >= 2, found {self.context}")
        self.pred_dim = int(hp(ctx, "pred_dim"))
        self.inp = nn.Linear(self.dim, self.pred_dim)
        depth, heads = int(hp(ctx, "pred_depth")), int(hp(ctx, "pred_heads"))
        owner = "vjepa2.predictor (pred_dim / pred_heads)"
        self.body: Transformer | RoPETransformer
        _, self.side, _ = patch_grid(ctx)
        if str(hp(ctx, "pos_embedding")) == "rope":
            theta = float(hp(ctx, "rope_theta"))
            self.body = RoPETransformer(self.pred_dim, depth, heads, theta, owner)
        else:
            self.pos_space = nn.Parameter(torch.randn(self.num_patches, self.pred_dim) * 0.02)
            self.pos_time = nn.Parameter(torch.randn(self.context, self.pred_dim) * 0.02)
            self.body = Transformer(self.pred_dim, depth, heads, owner=owner)
        self.out = nn.Linear(self.pred_dim, self.dim)
        ctx.dims["vjepa2.window"] = self.context

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        dtype = dtype or torch.float32
        k = self.context
        return State(
            frames=torch.zeros(
                batch_size, k, self.num_patches, self.dim, device=device, dtype=dtype
            ),
            actions=torch.zeros(batch_size, k, self.pred_dim, device=device, dtype=dtype),
            valid=torch.zeros(batch_size, k, device=device, dtype=dtype),
        )

    def _with_action(self, state: State, action_input: Tensor | None) -> Tensor:
        actions = state["actions"]
        if action_input is None:
            action_input = actions.new_zeros(actions[:, -1].shape)
        return torch.cat([actions[:, :-1], action_input.unsqueeze(1).to(actions.dtype)], dim=1)

    def _append(self, state: State, actions: Tensor, frame: Tensor) -> State:
        return State(
            frames=shift_in(state["frames"], frame),
            actions=shift_in(actions, torch.zeros_like(actions[:, 0])),
            valid=shift_in(state["valid"], state["valid"].new_ones(frame.shape[0])),
        )

    def forward(self, state: State, action_input: Tensor) -> State:
        actions = self._with_action(state, action_input)
        frames = state["frames"]
        b, k, n, _ = frames.shape
        mask = block_causal_mask(state["valid"], n + 1)
        if isinstance(self.body, RoPETransformer):
            tokens = torch.cat([actions.unsqueeze(2), self.inp(frames)], dim=2)
            pos = window_positions(k, self.side, frames.device)
            out = self.body(tokens.flatten(1, 2), mask, pos)
        else:
            patches = self.inp(frames) + self.pos_space
            tokens = torch.cat([actions.unsqueeze(2), patches], dim=2)
            tokens = tokens + self.pos_time[None, :, None, :]
            out = self.body(tokens.flatten(1, 2), mask)
        newest = out.view(b, k, n + 1, -1)[:, -1, 1:]
        pred = F.layer_norm(self.out(newest), (self.dim,))
        return self._append(state, actions, pred)

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        return self._append(state, self._with_action(state, action_input), obs_state["frame"])


@register_component("decoder", "vjepa2.heads")
class VJEPA2Heads(Decoder):
    """State -> ``reward [B]``, ``continue [B]`` of the last transition (no pixel decoder).

    Features: mean-pooled ``frames[-2]`` and ``frames[-1]``, the action token ``actions[-2]``
    (taken after ``frames[-2]``) and ``valid[-2]``.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "vjepa2.heads", "vjepa2.window", built_by="vjepa2.predictor")
        dim, act = int(ctx.dims["embed_dim"]), int(hp(ctx, "pred_dim"))
        hidden, layers = int(hp(ctx, "head_hidden")), int(hp(ctx, "head_layers"))
        self.reward = build_mlp(2 * dim + act + 1, hidden, layers, 1)
        self.cont = build_mlp(2 * dim + act + 1, hidden, layers, 1)

    def forward(self, state: State) -> ModelOutput:
        frames = state["frames"]
        feats = torch.cat(
            [
                frames[:, -2].mean(1),
                frames[:, -1].mean(1),
                state["actions"][:, -2],
                state["valid"][:, -2:-1],
            ],
            dim=-1,
        )
        return ModelOutput(
            predictions={
                "reward": self.reward(feats).squeeze(-1),
                "continue": torch.sigmoid(self.cont(feats).squeeze(-1)),
            },
            state=state,
        )
