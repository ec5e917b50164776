"""I-JEPA networks at small scale: the patch-token ViT encoder and the mask-token predictor.

Observations become a grid of tokens (:class:`TokenGrid`): ``[C, H, W]`` images are cut into
``patch x patch`` patches by a strided convolution (grid ``H/p x W/p``); any other observation is
flattened and cut into chunks of ``feature_patch`` features (zero-padded), a 1-D grid
``1 x ceil(F / feature_patch)`` embedded by one linear map. Positions are I-JEPA's fixed
sin-cos embeddings (2-D on an image grid, 1-D on a sequence). Attention masks restrict which
tokens a pass sees: a masked token never influences a kept one, so running on all positions with
the others masked equals running on the kept tokens alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.components import BuildContext
from worldflux.core.exceptions import ConfigurationError
from worldflux.families.shared.hparams import hp
from worldflux.families.shared.transformer import Transformer

__all__ = ["MaskedPredictor", "TokenGrid", "TokenViT", "key_mask", "sincos_positions", "token_grid"]


@dataclass(frozen=True)
class TokenGrid:
    """How observations become tokens: ``image`` (``channels``, ``patch``) or ``vector``
    (``features``, ``patch`` features per token); ``rows x cols`` tokens."""

    kind: str
    rows: int
    cols: int
    patch: int
    channels: int = 0
    features: int = 0

    @property
    def tokens(self) -> int:
        return self.rows * self.cols


def token_grid(ctx: BuildContext) -> TokenGrid:
    """The token grid of ``ctx.obs_shape`` (``[C, H, W]`` -> image patches, else a vector).

    Raises:
        ConfigurationError: an image side is not a multiple of ``patch_size``.
    """
    shape = tuple(int(s) for s in ctx.obs_shape)
    if len(shape) == 3:
        patch = int(hp(ctx, "patch_size"))
        if shape[1] % patch or shape[2] % patch:
            raise ConfigurationError(
                f"jepa.encoder: image obs_shape {list(shape)} needs H and W divisible by "
                f"patch_size={patch}"
            )
        return TokenGrid("image", shape[1] // patch, shape[2] // patch, patch, channels=shape[0])
    features = math.prod(shape)
    patch = int(hp(ctx, "feature_patch"))
    return TokenGrid("vector", 1, -(-features // patch), patch, features=features)


def _sincos_1d(dim: int, pos: Tensor) -> Tensor:
    """``[len(pos), dim]``: sines then cosines of ``pos / 10000^(2i/dim)`` (odd dims truncated)."""
    half = (dim + 1) // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64, device="cpu") / max(half, 1))
    angle = pos.double()[:, None] * omega[None]
    return torch.cat([angle.sin(), angle.cos()], dim=1)[:, :dim].float()


def sincos_positions(rows: int, cols: int, dim: int) -> Tensor:
    """Fixed positions ``[rows * cols, dim]`` (I-JEPA's ``get_2d_sincos_pos_embed``; 1-D on a
    ``1 x cols`` grid): half the dims encode the row, half the column. Computed on the CPU
    (also while a checkpoint's model is sized on the meta device)."""
    if rows == 1:
        return _sincos_1d(dim, torch.arange(cols, device="cpu"))
    r, c = torch.meshgrid(
        torch.arange(rows, device="cpu"), torch.arange(cols, device="cpu"), indexing="ij"
    )
    dim_r = dim // 2
    return torch.cat([_sincos_1d(dim_r, r.flatten()), _sincos_1d(dim - dim_r, c.flatten())], 1)


def key_mask(keep: Tensor) -> Tensor:
    """Attention mask ``[B, N, N]`` from ``keep [B, N]``: every query sees the kept keys, and
    itself (so no row is empty; a dropped token's own output is never read)."""
    eye = torch.eye(keep.shape[1], dtype=torch.bool, device=keep.device)
    return keep.bool()[:, None, :] | eye


class TokenViT(nn.Module):
    """``obs [B, *obs_shape]`` -> tokens ``[B, N, D]``: patchify, + positions, pre-LN
    transformer blocks, final LayerNorm (I-JEPA's ViT encoder)."""

    pos: Tensor  # [N, D], fixed

    def __init__(self, grid: TokenGrid, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.grid, self.dim = grid, dim
        self.patchify: nn.Module
        if grid.kind == "image":
            self.patchify = nn.Conv2d(grid.channels, dim, grid.patch, stride=grid.patch)
        else:
            self.patchify = nn.Linear(grid.patch, dim)
        self.register_buffer("pos", sincos_positions(grid.rows, grid.cols, dim), persistent=False)
        self.body = Transformer(dim, depth, heads, owner="jepa.encoder (latent_dim / enc_heads)")

    def embed(self, obs: Tensor) -> Tensor:
        """Patch embeddings plus positions ``[B, N, D]``."""
        x = obs.float()
        if self.grid.kind == "image":
            tokens: Tensor = self.patchify(x).flatten(2).transpose(1, 2)
        else:
            flat = x.flatten(1)
            pad = self.grid.tokens * self.grid.patch - flat.shape[1]
            tokens = self.patchify(F.pad(flat, (0, pad)).view(x.shape[0], self.grid.tokens, -1))
        return tokens + self.pos.to(tokens.dtype)

    def forward(self, obs: Tensor, keep: Tensor | None = None) -> Tensor:
        """Tokens ``[B, N, D]``; with ``keep [B, N]`` (bool) only kept tokens are attended to, so
        a kept token's output depends on the kept tokens alone (I-JEPA's context encoder)."""
        x = self.embed(obs)
        if keep is None:
            mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device)
        else:
            mask = key_mask(keep)
        out: Tensor = self.body(x, mask)
        return out


class MaskedPredictor(nn.Module):
    """I-JEPA's predictor: context tokens plus learned mask tokens at the target positions ->
    predicted target features.

    ``forward(context_tokens [B, N, D], context [B, N], targets [B, M, N]) -> [B, M, N, D]``:
    context tokens are projected to ``pred_dim`` and given their positions; for each of the ``M``
    target blocks separately, every target position holds the shared mask token plus its
    position; a transformer over the context and that block's tokens (others masked out) runs,
    and the outputs are projected back to ``D``. Only the outputs at target positions are meant
    to be read.
    """

    pos: Tensor  # [N, pred_dim], fixed

    def __init__(self, grid: TokenGrid, dim: int, pred_dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, pred_dim)
        self.mask_token = nn.Parameter(torch.randn(pred_dim) * 0.02)
        self.register_buffer(
            "pos", sincos_positions(grid.rows, grid.cols, pred_dim), persistent=False
        )
        self.body = Transformer(
            pred_dim, depth, heads, owner="jepa predictor (pred_dim / pred_heads)"
        )
        self.out = nn.Linear(pred_dim, dim)

    def forward(self, context_tokens: Tensor, context: Tensor, targets: Tensor) -> Tensor:
        b, n, _ = context_tokens.shape
        m = targets.shape[1]
        pos = self.pos.to(context_tokens.dtype)
        x = self.inp(context_tokens) + pos
        queries = (self.mask_token + pos).expand_as(x)
        is_target = targets[..., None]
        seq = torch.where(is_target, queries[:, None], x[:, None]).flatten(0, 1)
        keep = (context[:, None] | targets).flatten(0, 1)
        out: Tensor = self.out(self.body(seq, key_mask(keep)))
        return out.view(b, m, n, -1)
