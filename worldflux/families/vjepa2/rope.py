"""3-D (axial) rotary position embeddings for the vjepa2 predictor, as V-JEPA 2 uses them.

Each attention head's ``hd`` channels are split into three equal even segments of
``seg = 2 * ((hd // 3) // 2)`` channels, one per axis (time, height, width); any remainder is not
rotated. Within a segment, channel pairs ``(i, i + seg/2)`` are rotated by the angle
``pos_axis * theta ** (-2i / seg)``. A rotation of both queries and keys makes the score
``<R(p) q, R(p') k> = <q, R(p' - p) k>``: attention depends on positions only through their
differences. Action tokens get the time rotation only (height = width = 0, the identity).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldflux.core.exceptions import ConfigurationError
from worldflux.families.shared.transformer import Block, Rotation

__all__ = [
    "RoPEBlock",
    "RoPETransformer",
    "apply_rope",
    "rope_rotation",
    "rope_segment",
    "window_positions",
]


def rope_segment(head_dim: int) -> int:
    """Channels per axis: ``2 * ((head_dim // 3) // 2)`` (V-JEPA 2's split)."""
    return 2 * ((head_dim // 3) // 2)


def apply_rope(x: Tensor, pos: Tensor, theta: float = 10000.0) -> Tensor:
    """Rotate ``x [..., L, hd]`` by positions ``pos [L, 3]`` (time, height, width; floats).

    Returns:
        ``[..., L, hd]``; channels past ``3 * rope_segment(hd)`` are unchanged.
    """
    seg = rope_segment(x.shape[-1])
    if seg == 0:
        return x
    half = seg // 2
    freqs = theta ** (-torch.arange(half, device=x.device, dtype=torch.float32) * 2.0 / seg)
    parts = []
    for axis in range(3):
        angle = pos[:, axis : axis + 1].float() * freqs  # [L, half]
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        chunk = x[..., axis * seg : (axis + 1) * seg]
        a, b = chunk[..., :half], chunk[..., half:]
        parts += [a * cos - b * sin, a * sin + b * cos]
    parts.append(x[..., 3 * seg :])
    return torch.cat(parts, dim=-1)


def rope_rotation(pos: Tensor, theta: float = 10000.0) -> Rotation:
    """:func:`apply_rope` at positions ``pos [L, 3]`` as a shared-``Block`` ``rotate`` argument."""

    def rotate(x: Tensor) -> Tensor:
        return apply_rope(x, pos, theta)

    return rotate


def window_positions(frames: int, side: int, device: torch.device | None = None) -> Tensor:
    """Positions ``[frames * (1 + side * side), 3]`` of the predictor's tokens: per frame ``f``
    the action token at ``(f, 0, 0)`` (time rotation only), then patch ``(i, j)`` at
    ``(f, i, j)`` in row-major order."""
    rows = torch.arange(side, device=device, dtype=torch.float32)
    hw = torch.stack(torch.meshgrid(rows, rows, indexing="ij"), -1).reshape(-1, 2)
    per_frame = torch.cat([hw.new_zeros(1, 2), hw], 0)  # [1 + N, 2]
    time = torch.arange(frames, device=device, dtype=torch.float32)
    time = time.repeat_interleave(per_frame.shape[0]).unsqueeze(-1)
    return torch.cat([time, per_frame.repeat(frames, 1)], -1)


class RoPEBlock(Block):
    """The shared pre-LN block (:class:`worldflux.families.shared.transformer.Block`: same
    parameters and names) with RoPE on its queries and keys."""

    def __init__(self, dim: int, heads: int, theta: float, owner: str, mlp_ratio: int = 4):
        super().__init__(dim, heads, mlp_ratio=mlp_ratio, owner=owner)
        if rope_segment(dim // heads) == 0:
            raise ConfigurationError(
                f"{owner}: RoPE needs a head width of at least 6 (3 axes x 2), found "
                f"{dim // heads}; use fewer heads or pos_embedding: learned"
            )
        self.theta = theta

    def scores(self, x: Tensor, pos: Tensor) -> Tensor:
        """Pre-softmax attention scores ``[B, H, L, L]`` (exposed for tests)."""
        q, k, _ = self.qkv_heads(x, rope_rotation(pos, self.theta))
        scale: Tensor = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
        return scale


class RoPETransformer(nn.Module):
    """``depth`` RoPE blocks, then LayerNorm: ``x [B, L, D]``, mask, ``pos [L, 3]`` -> same."""

    def __init__(self, dim: int, depth: int, heads: int, theta: float, owner: str) -> None:
        super().__init__()
        self.theta = theta
        self.blocks = nn.ModuleList(RoPEBlock(dim, heads, theta, owner) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor, pos: Tensor) -> Tensor:
        """``x [B, L, D]``, ``mask [B, L, L]`` bool (True: may attend), ``pos [L, 3]``."""
        rotate = rope_rotation(pos, self.theta)  # one for every block
        for block in self.blocks:
            x = block(x, mask, rotate=rotate)
        out: Tensor = self.ln(x)
        return out
