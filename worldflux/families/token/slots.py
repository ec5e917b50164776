"""IRIS-style slots: a discrete tokenizer, an autoregressive transformer over tokens, decoders.

The tokenizer is IRIS's VQ-VAE: for images ``[C, H, W]`` a convolutional encoder to an ``h x w``
grid of code vectors (one token per grid cell, ``N = h * w``; :mod:`.nets`), for vectors an MLP
to ``num_tokens`` code vectors; nearest-neighbour codebook lookup with straight-through gradients;
the decoder slot holds the matching conv / MLP decoder and the reward (3 sign classes) and
continue heads.

State (per sample): ``tokens [K, N]`` int64 (the last K frames, N tokens each, newest last),
``actions [K, D]`` (``actions[k]`` embeds the action taken *after* frame k; zeros until taken),
``valid [K]`` (1 for a real or imagined frame, 0 for padding) and ``hidden [D]`` (the transformer
output at the action token of the transition that produced the newest frame; zeros for a state
that came from ``encode``). The tokenizer codebook is shared by the encoder and the decoder.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

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
from worldflux.core.spec import ModelIOContract
from worldflux.core.types import ModelOutput, State
from worldflux.families.shared.hparams import require_dims
from worldflux.families.shared.tensors import shift_in
from worldflux.families.shared.transformer import Transformer, causal_mask
from worldflux.families.token.hparams import hp
from worldflux.families.token.nets import (
    ConvDecoder,
    ConvEncoder,
    grid_shape,
    nearest_codes,
    straight_through,
)

__all__ = [
    "REWARD_VALUES",
    "TokenActionEmbedding",
    "TokenDecoder",
    "TokenTransformer",
    "Tokenizer",
]


@register_component("observation_encoder", "token.tokenizer")
class Tokenizer(ObservationEncoder):
    """VQ-VAE encoder: obs ``[B, *obs_shape]`` -> N codes of a V-entry codebook.

    Images ``[C, H, W]``: :class:`~.nets.ConvEncoder` to ``[code_dim, h, w]``, ``h = H / 2^d``,
    ``w = W / 2^d`` (``d = tokenizer_downsamples``), flattened row-major to ``N = h * w`` code
    vectors; any other shape: an MLP on the flattened observation to ``N = num_tokens`` code
    vectors. ``forward`` returns ``{"tokens": [B, N] int64, "codes": [B, N, C]}`` where ``codes``
    are the quantised vectors with the straight-through estimator (gradients flow to the
    encoder). Shares its codebook (``ctx.dims["token_codebook"]``) and grid
    (``ctx.dims["token_grid"]``: ``(h, w)``, or None for the MLP) with :class:`TokenDecoder`.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        if ctx.dims:
            raise ConfigurationError(
                "token.tokenizer shares its codebook with token.decoder; it cannot be swapped "
                "into an existing model"
            )
        self.code_dim, self.vocab = int(hp(ctx, "code_dim")), int(hp(ctx, "vocab_size"))
        obs_shape = ctx.obs_shape
        self.grid: tuple[int, int] | None = None
        self.net: nn.Module
        if len(obs_shape) == 3:
            downsamples = int(hp(ctx, "tokenizer_downsamples"))
            self.grid = grid_shape(obs_shape, downsamples, "token.tokenizer")
            self.num_tokens = self.grid[0] * self.grid[1]
            self.net = ConvEncoder(
                obs_shape[0],
                int(hp(ctx, "tokenizer_channels")),
                downsamples,
                int(hp(ctx, "tokenizer_res_blocks")),
                self.code_dim,
            )
        else:
            self.num_tokens = int(hp(ctx, "num_tokens"))
            self.net = build_mlp(
                flat_obs_dim(obs_shape),
                int(hp(ctx, "tokenizer_hidden")),
                int(hp(ctx, "tokenizer_layers")),
                self.num_tokens * self.code_dim,
            )
        self.codebook = nn.Embedding(self.vocab, self.code_dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / self.vocab, 1.0 / self.vocab)
        ctx.dims.update(
            token_codebook=self.codebook,
            token_grid=self.grid,
            num_tokens=self.num_tokens,
            vocab_size=self.vocab,
            code_dim=self.code_dim,
        )

    def refine_contract(self, contract: ModelIOContract) -> ModelIOContract:
        """State ``tokens [context_frames, N]`` with this tokenizer's N (``h * w`` for images)."""
        state = dict(contract.state)
        if "tokens" in state:
            state["tokens"] = replace(state["tokens"], shape=("context_frames", self.num_tokens))
        return replace(contract, state=state)

    def encode_continuous(self, obs: Tensor) -> Tensor:
        """``z_e [B, N, C]``: the encoder output before quantisation (grid cells row-major)."""
        if self.grid is not None:
            grid: Tensor = self.net(obs.float())
            return grid.flatten(2).transpose(1, 2)
        out: Tensor = self.net(obs.flatten(1).float())
        return out.view(-1, self.num_tokens, self.code_dim)

    def quantize(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(z_e [B, N, C], z_q [B, N, C], tokens [B, N] int64)``; z_q without straight-through:
        ``tokens = argmin_v ||z_e - codebook[v]||²``, ``z_q = codebook[tokens]``."""
        z_e = self.encode_continuous(obs)
        tokens = nearest_codes(z_e, self.codebook.weight)
        return z_e, self.codebook(tokens), tokens

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        if not isinstance(obs, Tensor):
            raise ContractViolation(f"obs: expected a torch.Tensor, found {type(obs).__name__}")
        z_e, z_q, tokens = self.quantize(obs)
        return State(tokens=tokens, codes=straight_through(z_e, z_q))


@register_component("action_conditioner", "token.action")
class TokenActionEmbedding(ActionConditioner):
    """action ``[B, A]`` (or ``[B]`` int64) -> the action token embedding ``[B, embed_dim]``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.action_dim, self.action_type = ctx.action_dim, ctx.action_type
        self.proj = nn.Linear(self.action_dim, int(hp(ctx, "embed_dim")))

    def forward(self, state: State, action: Tensor) -> Tensor:
        embedded: Tensor = self.proj(action_features(action, self.action_dim, self.action_type))
        return embedded


@register_component("dynamics_model", "token.transformer")
class TokenTransformer(DynamicsModel):
    """Causal transformer over ``[N obs tokens, action token]`` blocks of the last K frames.

    The output at a frame's action token predicts token 0 of the next frame (and gives ``hidden``
    for the reward/continue heads); the output at next-frame token j predicts token j+1.
    ``forward`` generates the N next tokens one by one (greedy in eval mode, sampled in training
    mode); :meth:`teacher_forced` gives all N logits in one pass for the loss.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "token.transformer", "token_codebook", built_by="token.tokenizer")
        self.num_tokens = int(ctx.dims.get("num_tokens", hp(ctx, "num_tokens")))
        self.vocab = int(ctx.dims.get("vocab_size", hp(ctx, "vocab_size")))
        self.context = int(hp(ctx, "context_frames"))
        if self.context < 1:
            raise ConfigurationError(f"token: context_frames must be >= 1, found {self.context}")
        self.dim = int(hp(ctx, "embed_dim"))
        self.embed = nn.Embedding(self.vocab, self.dim)
        max_len = self.context * (self.num_tokens + 1) + self.num_tokens - 1
        self.pos = nn.Parameter(torch.randn(max_len, self.dim) * 0.02)
        self.body = Transformer(
            self.dim,
            int(hp(ctx, "num_layers")),
            int(hp(ctx, "num_heads")),
            owner="token.transformer (embed_dim / num_heads)",
        )
        self.head = nn.Linear(self.dim, self.vocab)
        ctx.dims["token_embed_dim"] = self.dim
        ctx.dims["token.window"] = self.context

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        dtype = dtype or torch.float32
        k, n = self.context, self.num_tokens
        return State(
            tokens=torch.zeros(batch_size, k, n, device=device, dtype=torch.long),
            actions=torch.zeros(batch_size, k, self.dim, device=device, dtype=dtype),
            valid=torch.zeros(batch_size, k, device=device, dtype=dtype),
            hidden=torch.zeros(batch_size, self.dim, device=device, dtype=dtype),
        )

    def _with_action(self, state: State, action_input: Tensor | None) -> Tensor:
        actions = state["actions"]
        if action_input is None:
            action_input = actions.new_zeros(actions[:, -1].shape)
        return torch.cat([actions[:, :-1], action_input.unsqueeze(1).to(actions.dtype)], dim=1)

    def _run(
        self,
        state: State,
        actions: Tensor,
        partial: Tensor,
        caches: list[list[Tensor]] | None = None,
    ) -> Tensor:
        """Outputs ``[B, L, D]`` over the window and ``partial [B, j]`` next-frame tokens."""
        b, n = state["tokens"].shape[0], state["tokens"].shape[2]
        window = torch.cat([self.embed(state["tokens"]), actions.unsqueeze(2)], dim=2)
        seq = torch.cat([window.flatten(1, 2), self.embed(partial)], dim=1)
        seq = seq + self.pos[: seq.shape[1]]
        key_valid = torch.cat(
            [
                state["valid"].repeat_interleave(n + 1, dim=1),
                state["valid"].new_ones(b, partial.shape[1]),
            ],
            dim=1,
        )
        outputs: Tensor = self.body(seq, causal_mask(key_valid), caches)
        return outputs

    def teacher_forced(
        self, state: State, action_input: Tensor, next_tokens: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(logits [B, N, V], hidden [B, D])`` of the next frame given its true tokens."""
        actions = self._with_action(state, action_input)
        out = self._run(state, actions, next_tokens[:, :-1])
        start = self.context * (self.num_tokens + 1) - 1
        return self.head(out[:, start:]), out[:, start]

    def _append(self, state: State, actions: Tensor, tokens: Tensor, hidden: Tensor) -> State:
        return State(
            tokens=shift_in(state["tokens"], tokens),
            actions=shift_in(actions, torch.zeros_like(actions[:, 0])),
            valid=shift_in(state["valid"], state["valid"].new_ones(tokens.shape[0])),
            hidden=hidden,
        )

    def _pick(self, logits: Tensor) -> Tensor:
        """``[B, V]`` -> ``[B, 1]``: greedy in eval mode, sampled in training mode."""
        if self.training:
            return torch.multinomial(F.softmax(logits, dim=-1), 1)
        return logits.argmax(-1, keepdim=True)

    def forward(self, state: State, action_input: Tensor) -> State:
        """Generate the next frame's N tokens: one pass over the window, then N - 1 KV-cached
        single-token passes (as IRIS); equal to re-running :meth:`_run` on the growing prefix."""
        actions = self._with_action(state, action_input)
        empty = state["tokens"].new_zeros(state["tokens"].shape[0], 0)
        caches: list[list[Tensor]] = [[] for _ in self.body.blocks]
        out = self._run(state, actions, empty, caches)
        hidden = out[:, -1]
        tokens = [self._pick(self.head(hidden))]
        length = out.shape[1]
        key_valid = state["valid"].repeat_interleave(self.num_tokens + 1, dim=1).bool()
        for _ in range(self.num_tokens - 1):
            x = self.embed(tokens[-1]) + self.pos[length : length + 1]
            key_valid = torch.cat([key_valid, key_valid.new_ones(key_valid.shape[0], 1)], dim=1)
            out = self.body(x, key_valid.unsqueeze(1), caches)
            tokens.append(self._pick(self.head(out[:, -1])))
            length += 1
        return self._append(state, actions, torch.cat(tokens, dim=1), hidden)

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        actions = self._with_action(state, action_input)
        return self._append(state, actions, obs_state["tokens"], torch.zeros_like(state["hidden"]))


#: The reward classes of IRIS: the sign of the reward, class c stands for the value c - 1.
REWARD_VALUES = (-1.0, 0.0, 1.0)


@register_component("decoder", "token.decoder")
class TokenDecoder(Decoder):
    """State -> ``obs`` (the VQ-VAE decoder of the newest frame's codes), ``reward``, ``continue``.

    ``obs``: :class:`~.nets.ConvDecoder` on the ``[code_dim, h, w]`` code grid for images, else an
    MLP. Reward and continue come from ``hidden`` (IRIS predicts them at the action token): the
    reward head classifies the reward's sign into 3 classes {-1, 0, +1} and the decoded
    ``reward`` is their expected value ``p(+1) - p(-1)`` in [-1, 1] (train and eval mode alike:
    deterministic and differentiable); ``continue`` is the sigmoid of one logit.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "token.decoder", "token.window", built_by="token.transformer")
        self.codebook: nn.Embedding = ctx.dims["token_codebook"]
        self.grid: tuple[int, int] | None = ctx.dims.get("token_grid")
        self.obs_shape = ctx.obs_shape
        n, c = int(ctx.dims["num_tokens"]), int(ctx.dims["code_dim"])
        self.net: nn.Module
        if self.grid is not None:
            self.net = ConvDecoder(
                c,
                int(hp(ctx, "tokenizer_channels")),
                int(hp(ctx, "tokenizer_downsamples")),
                int(hp(ctx, "tokenizer_res_blocks")),
                self.obs_shape[0],
            )
        else:
            self.net = build_mlp(
                n * c,
                int(hp(ctx, "tokenizer_hidden")),
                int(hp(ctx, "tokenizer_layers")),
                flat_obs_dim(ctx.obs_shape),
            )
        dim, hidden, layers = (
            int(ctx.dims.get("token_embed_dim", hp(ctx, "embed_dim"))),
            int(hp(ctx, "head_hidden")),
            int(hp(ctx, "head_layers")),
        )
        self.reward = build_mlp(dim, hidden, layers, len(REWARD_VALUES))
        self.cont = build_mlp(dim, hidden, layers, 1)

    def reconstruct(self, codes: Tensor) -> Tensor:
        """``codes [B, N, C]`` -> observation ``[B, *obs_shape]``."""
        if self.grid is not None:
            grid = codes.transpose(1, 2).reshape(codes.shape[0], codes.shape[2], *self.grid)
            image: Tensor = self.net(grid)
            return image
        flat: Tensor = self.net(codes.flatten(1))
        return flat.view(-1, *self.obs_shape)

    def heads(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """``hidden [B, D]`` -> (reward sign logits ``[B, 3]``, continue logit ``[B]``)."""
        reward: Tensor = self.reward(hidden)
        return reward, self.cont(hidden).squeeze(-1)

    def expected_reward(self, logits: Tensor) -> Tensor:
        """``[B, 3]`` sign logits -> ``[B]`` expected reward ``sum_c softmax(logits)_c v_c``."""
        return F.softmax(logits, dim=-1) @ logits.new_tensor(REWARD_VALUES)

    def forward(self, state: State) -> ModelOutput:
        reward_logits, cont_logit = self.heads(state["hidden"])
        return ModelOutput(
            predictions={
                "obs": self.reconstruct(self.codebook(state["tokens"][:, -1])),
                "reward": self.expected_reward(reward_logits),
                "continue": torch.sigmoid(cont_logit),
            },
            state=state,
        )
