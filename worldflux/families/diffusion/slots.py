"""DIAMOND-style slots: a frame window state, an EDM denoiser over the next frame, reward heads.

State (per sample): ``frames [K, *obs_shape]`` (the last K observations, newest last),
``actions [K, E]`` (``actions[k]`` embeds the action that led *into* ``frames[k]``) and
``valid [K]`` (1 for a real frame, 0 for padding before the episode start).
Both ``observe`` (a real next frame) and ``forward`` (a sampled one) shift the window by one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldflux.components._common import build_mlp, flat_obs_dim
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
from worldflux.families.diffusion.hparams import hp
from worldflux.families.shared.edm import EDM, sinusoidal_embedding
from worldflux.families.shared.hparams import require_dims, swap_guard
from worldflux.families.shared.tensors import shift_in

__all__ = [
    "DiffusionActionEmbedding",
    "DiffusionDenoiser",
    "DiffusionDynamics",
    "DiffusionFrames",
    "DiffusionHeads",
]


@register_component("observation_encoder", "diffusion.frames")
class DiffusionFrames(ObservationEncoder):
    """obs ``[B, *obs_shape]`` -> ``{"frame": obs}`` (DIAMOND denoises raw frames; no encoder)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        swap_guard(ctx, "diffusion.frames", "diffusion.window", "diffusion.edm")
        ctx.dims["diffusion.frames"] = True

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        if not isinstance(obs, Tensor):
            raise ContractViolation(f"obs: expected a torch.Tensor, found {type(obs).__name__}")
        return State(frame=obs.float())


@register_component("action_conditioner", "diffusion.action")
class DiffusionActionEmbedding(ActionConditioner):
    """action ``[B, A]`` (or ``[B]`` int64) -> embedding ``[B, action_embed_dim]`` (DIAMOND: 64)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.action_dim, self.action_type = ctx.action_dim, ctx.action_type
        self.embed_dim = int(hp(ctx, "action_embed_dim"))
        self.proj = nn.Linear(self.action_dim, self.embed_dim)
        ctx.dims["action_embed_dim"] = self.embed_dim

    def forward(self, state: State, action: Tensor) -> Tensor:
        embedded: Tensor = self.proj(action_features(action, self.action_dim, self.action_type))
        return embedded


class FiLMBlock(nn.Module):
    """Residual block ``h + W2 SiLU(W1 (LN(h) (1 + scale) + shift))`` with per-sample FiLM."""

    def __init__(self, dim: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.film = nn.Linear(cond_dim, 2 * dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.film(cond).chunk(2, dim=-1)
        x = self.norm(h) * (1 + scale) + shift
        update: Tensor = self.fc2(nn.functional.silu(self.fc1(x)))
        return h + update


class DiffusionDenoiser(nn.Module):
    """``F(c_in x, c_noise | past frames, actions)``: an MLP with FiLM conditioning.

    DIAMOND stacks the past frames on the channels of a UNet and conditions its AdaGroupNorms on
    action embeddings + noise features; this is the same conditioning over flattened frames.
    Shapes: ``x [B, *obs_shape]``, ``c_noise [B]``, ``frames [B, K, *obs_shape]``,
    ``actions [B, K, E]``, ``valid [B, K]`` -> ``[B, *obs_shape]``.
    """

    def __init__(self, obs_dim: int, context: int, action_dim: int, ctx: BuildContext) -> None:
        super().__init__()
        hidden, noise_dim = int(hp(ctx, "hidden_dim")), int(hp(ctx, "noise_embed_dim"))
        self.noise_dim = noise_dim
        self.inp = nn.Linear(obs_dim * (context + 1) + context, hidden)
        cond_in = noise_dim + context * action_dim
        self.cond = nn.Sequential(nn.Linear(cond_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(
            FiLMBlock(hidden, hidden) for _ in range(int(hp(ctx, "denoiser_blocks")))
        )
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, obs_dim)

    def forward(
        self, x: Tensor, c_noise: Tensor, frames: Tensor, actions: Tensor, valid: Tensor
    ) -> Tensor:
        feats = torch.cat([x.flatten(1), frames.flatten(1), valid], dim=-1)
        cond_in = torch.cat(
            [sinusoidal_embedding(c_noise, self.noise_dim), actions.flatten(1)], dim=-1
        )
        cond = self.cond(cond_in)
        h = self.inp(feats)
        for block in self.blocks:
            h = block(h, cond)
        out: Tensor = self.out(self.out_norm(h))
        return out.view_as(x)


@register_component("dynamics_model", "diffusion.edm")
class DiffusionDynamics(DynamicsModel):
    """EDM denoiser of the next frame given the last K frames and actions; Euler sampling.

    ``forward`` samples the next frame in ``sampling_steps`` Euler steps (DIAMOND: 3). In eval
    mode the sampler starts from the prior mean (zero noise), so a step is deterministic and
    per-sample; in training mode it starts from standard normal noise.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "diffusion.edm", "diffusion.frames", built_by="diffusion.frames")
        self.obs_shape = ctx.obs_shape
        self.context = int(hp(ctx, "context_frames"))
        if self.context < 2:
            raise ConfigurationError(
                f"diffusion: context_frames must be >= 2, found {self.context}"
            )
        self.embed_dim = int(ctx.dims.get("action_embed_dim", hp(ctx, "action_embed_dim")))
        self.steps = int(hp(ctx, "sampling_steps"))
        self.edm = EDM(
            sigma_data=float(hp(ctx, "sigma_data")),
            sigma_min=float(hp(ctx, "sigma_min")),
            sigma_max=float(hp(ctx, "sigma_max")),
            rho=float(hp(ctx, "rho")),
            log_sigma_mean=float(hp(ctx, "train_log_sigma_mean")),
            log_sigma_std=float(hp(ctx, "train_log_sigma_std")),
        )
        self.denoiser = DiffusionDenoiser(
            flat_obs_dim(ctx.obs_shape), self.context, self.embed_dim, ctx
        )
        ctx.dims["diffusion.window"] = self.context

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        dtype = dtype or torch.float32
        k = self.context
        return State(
            frames=torch.zeros(batch_size, k, *self.obs_shape, device=device, dtype=dtype),
            actions=torch.zeros(batch_size, k, self.embed_dim, device=device, dtype=dtype),
            valid=torch.zeros(batch_size, k, device=device, dtype=dtype),
        )

    def _append(self, state: State, action_input: Tensor | None, frame: Tensor) -> State:
        if action_input is None:
            action_input = state["actions"].new_zeros(state["actions"][:, 0].shape)
        return State(
            frames=shift_in(state["frames"], frame),
            actions=shift_in(state["actions"], action_input),
            valid=shift_in(state["valid"], state["valid"].new_ones(frame.shape[0])),
        )

    def _net(self, state: State, action_input: Tensor) -> _Conditioned:
        actions = shift_in(state["actions"], action_input)
        return _Conditioned(self.denoiser, state["frames"], actions, state["valid"])

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        return self._append(state, action_input, obs_state["frame"])

    def forward(self, state: State, action_input: Tensor) -> State:
        like = state["frames"][:, -1]
        noise = torch.randn_like(like) if self.training else torch.zeros_like(like)
        frame = self.edm.sample(self._net(state, action_input), noise, self.steps)
        return self._append(state, action_input, frame)

    def denoising_loss(self, state: State, action_input: Tensor, target: Tensor) -> Tensor:
        """Per-sample EDM loss ``[B]`` of the next frame ``target [B, *obs_shape]``."""
        target = target.to(state["frames"].dtype)
        sigma = self.edm.sample_sigma(target.shape[0], target)
        noise = torch.randn_like(target)
        return self.edm.loss(self._net(state, action_input), target, sigma, noise)


class _Conditioned:
    """The denoiser with its conditioning bound: ``(x, c_noise) -> F``."""

    def __init__(self, net: DiffusionDenoiser, frames: Tensor, actions: Tensor, valid: Tensor):
        self.net, self.frames, self.actions, self.valid = net, frames, actions, valid

    def __call__(self, x: Tensor, c_noise: Tensor) -> Tensor:
        denoised: Tensor = self.net(x, c_noise, self.frames, self.actions, self.valid)
        return denoised


@register_component("decoder", "diffusion.heads")
class DiffusionHeads(Decoder):
    """State -> ``obs`` (the newest frame), ``reward`` and ``continue`` of the last transition.

    The reward/continue heads read ``(frames[-2], actions[-1], valid[-2])``: the observation the
    last action was taken in and that action, i.e. ``r(o_t, a_t)``, so a sampled and a real next
    frame give the same reward prediction.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "diffusion.heads", "diffusion.window", built_by="diffusion.edm")
        embed = int(ctx.dims.get("action_embed_dim", hp(ctx, "action_embed_dim")))
        in_dim = flat_obs_dim(ctx.obs_shape) + embed + 1
        hidden, layers = int(hp(ctx, "head_hidden")), int(hp(ctx, "head_layers"))
        self.reward = build_mlp(in_dim, hidden, layers, 1)
        self.cont = build_mlp(in_dim, hidden, layers, 1)

    def forward(self, state: State) -> ModelOutput:
        frames = state["frames"]
        feats = torch.cat(
            [frames[:, -2].flatten(1), state["actions"][:, -1], state["valid"][:, -2:-1]], dim=-1
        )
        return ModelOutput(
            predictions={
                "obs": frames[:, -1].clone(),  # a copy: outputs never alias the input state
                "reward": self.reward(feats).squeeze(-1),
                "continue": torch.sigmoid(self.cont(feats).squeeze(-1)),
            },
            state=state,
        )
