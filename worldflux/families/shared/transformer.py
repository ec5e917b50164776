"""A small pre-LayerNorm transformer with an explicit boolean attention mask.

Used by the ``token`` (IRIS-style, token-causal) and ``vjepa2`` (block-causal) families. Every op
is per sample, so outputs never depend on other samples of the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.exceptions import ConfigurationError

__all__ = ["Block", "Rotation", "Transformer", "causal_mask"]

#: A map of queries or keys ``[B, H, L, D/H]`` to the same shape (a rotary position embedding).
Rotation = Callable[[Tensor], Tensor]


class Block(nn.Module):
    """``x + Attn(LN(x))`` then ``x + MLP(LN(x))`` (GELU, 4x); ``x [B, L, D]``."""

    def __init__(
        self, dim: int, heads: int, mlp_ratio: int = 4, owner: str = "transformer"
    ) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ConfigurationError(f"{owner}: width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def qkv_heads(self, x: Tensor, rotate: Rotation | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values ``[B, H, L, D/H]`` of ``x [B, L, D]``; ``rotate`` (e.g. a
        rotary position embedding) is applied to the queries and keys."""
        b, length, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.heads, -1).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if rotate is not None:
            q, k = rotate(q), rotate(k)
        return q, k, v

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        cache: list[Tensor] | None = None,
        rotate: Rotation | None = None,
    ) -> Tensor:
        """``x [B, L, D]`` new tokens; ``mask [B, L, P + L]`` (or ``[L, P + L]``) bool: True where
        query i may attend to key j, over the ``P`` cached and the ``L`` new keys.

        ``cache`` (a list, empty at first) holds this block's keys and values ``[B, H, P, D/H]``;
        it is extended in place with the new ones (KV caching for token-by-token generation).
        ``rotate`` maps queries and keys ``[B, H, L, D/H]`` before attention (positions).
        """
        b, length, dim = x.shape
        q, k, v = self.qkv_heads(x, rotate)
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        attn_mask = mask.unsqueeze(1) if mask.dim() == 3 else mask
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + self.proj(out.transpose(1, 2).reshape(b, length, dim))
        mlp: Tensor = self.mlp(self.ln2(x))
        return x + mlp


class Transformer(nn.Module):
    """``depth`` blocks, then LayerNorm: ``x [B, L, D]``, ``mask [B, L, L]`` -> ``[B, L, D]``."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        final_affine: bool = True,
        owner: str = "transformer",
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, owner=owner) for _ in range(depth))
        self.ln = nn.LayerNorm(dim, elementwise_affine=final_affine)

    def forward(self, x: Tensor, mask: Tensor, caches: list[list[Tensor]] | None = None) -> Tensor:
        """``caches``: one list per block (see :meth:`Block.forward`), or None for no caching."""
        for i, block in enumerate(self.blocks):
            x = block(x, mask, None if caches is None else caches[i])
        out: Tensor = self.ln(x)
        return out


def causal_mask(key_valid: Tensor) -> Tensor:
    """Token-causal mask ``[B, L, L]`` from ``key_valid [B, L]``: keys at or before the query that
    are valid, and always the query itself (so no row is empty)."""
    length = key_valid.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=key_valid.device).tril()
    eye = torch.eye(length, dtype=torch.bool, device=key_valid.device)
    return (causal & key_valid.bool().unsqueeze(1)) | eye
