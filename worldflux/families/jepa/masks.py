"""I-JEPA multi-block masking on a token grid ``(rows, cols)`` (a vector is the grid ``(1, N)``).

Per sample: ``M`` target blocks (I-JEPA: 4 blocks, scale 0.15-0.2 of the tokens, aspect ratio
``h / w`` in 0.75-1.5) and one context block (scale 0.85-1.0, aspect 1) from which every target
token is removed, so context and targets are disjoint. On a 1-D grid a block is a contiguous span
and the aspect ratio does not apply, so the same code serves images and vectors.

Block shapes are chosen on the integer grid: the admissible shapes are those whose area lies in
``[lo, hi]`` (``lo = max(1, ceil(s_min N))``, ``hi = max(lo, floor(s_max N))``, capped at ``N``)
and whose aspect ratio lies in the range; where a small grid has no such shape, the ones closest
to the area range come first, then those closest to the aspect range (:func:`block_shapes`). Of
the admissible shapes, each draw takes the one nearest to a continuous draw of scale and aspect
(as I-JEPA's ``_sample_block_size``), then a uniform position. A sample whose context ends up
with fewer than ``min_context`` tokens is redrawn (I-JEPA's retry), up to ``tries`` times; after
that its last target blocks are emptied until enough context remains.

Random numbers come from ``generator`` (or torch's global CPU generator), so a seed fixes the
masks; they are drawn on the CPU and moved to ``device``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["MaskSpec", "Masks", "area_range", "block_shapes", "sample_masks"]


@dataclass(frozen=True)
class MaskSpec:
    """The I-JEPA multi-block recipe (defaults: the paper's ImageNet settings)."""

    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    min_context: int = 1
    tries: int = 20


@dataclass(frozen=True)
class Masks:
    """Boolean token masks of a batch: ``context [B, N]``, ``targets [B, M, N]``; the block
    shapes drawn, ``target_shapes [B, M, 2]`` and ``context_shape [B, 2]`` (rows, cols)."""

    context: Tensor
    targets: Tensor
    target_shapes: Tensor
    context_shape: Tensor


def area_range(n: int, scale: tuple[float, float]) -> tuple[int, int]:
    """``(lo, hi)`` token counts of a block of ``scale`` on ``n`` tokens (at least one token)."""
    lo = min(n, max(1, math.ceil(scale[0] * n - 1e-9)))
    hi = min(n, max(lo, math.floor(scale[1] * n + 1e-9)))
    return lo, hi


@lru_cache(maxsize=64)
def block_shapes(
    rows: int, cols: int, scale: tuple[float, float], aspect: tuple[float, float]
) -> tuple[tuple[int, int], ...]:
    """The admissible ``(h, w)`` block shapes on a ``rows x cols`` grid (see the module doc).

    Candidates minimise first the distance of ``h * w`` to the area range, then the log-distance
    of ``h / w`` to the aspect range (0 on a 1-D grid, where the aspect does not apply).
    """
    lo, hi = area_range(rows * cols, scale)
    one_d = rows == 1 or cols == 1

    def cost(h: int, w: int) -> tuple[int, float]:
        area = h * w
        area_cost = max(lo - area, area - hi, 0)
        ratio = math.log(h / w)
        aspect_cost = (
            0.0 if one_d else max(math.log(aspect[0]) - ratio, ratio - math.log(aspect[1]), 0.0)
        )
        return area_cost, round(aspect_cost, 9)

    shapes = [(h, w) for h in range(1, rows + 1) for w in range(1, cols + 1)]
    best = min(cost(h, w) for h, w in shapes)
    return tuple(s for s in shapes if cost(*s) == best)


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64, device="cpu")


def _draw_shapes(
    count: int,
    grid: tuple[int, int],
    scale: tuple[float, float],
    aspect: tuple[float, float],
    generator: torch.Generator | None,
) -> Tensor:
    """``count`` block shapes ``[count, 2]`` (long): the admissible shape nearest a continuous
    draw ``s ~ U(scale)``, ``r ~ U(aspect)`` of area ``s N`` and aspect ``r``."""
    rows, cols = grid
    shapes = torch.tensor(
        block_shapes(rows, cols, scale, aspect), dtype=torch.float64, device="cpu"
    )
    u = _uniform((count, 2), generator)
    area = (scale[0] + u[:, 0] * (scale[1] - scale[0])) * rows * cols
    ratio = aspect[0] + u[:, 1] * (aspect[1] - aspect[0])
    dist = (torch.log(shapes.prod(1))[None] - torch.log(area)[:, None]).abs()
    if rows > 1 and cols > 1:
        log_ratio = torch.log(shapes[:, 0] / shapes[:, 1])
        dist = dist + (log_ratio[None] - torch.log(ratio)[:, None]).abs()
    return shapes[dist.argmin(1)].long()


def _place(shapes: Tensor, grid: tuple[int, int], generator: torch.Generator | None) -> Tensor:
    """Blocks of ``shapes [S, 2]`` at uniform positions on the grid: masks ``[S, rows * cols]``."""
    rows, cols = grid
    u = _uniform((shapes.shape[0], 2), generator)
    top = (u[:, 0] * (rows - shapes[:, 0] + 1)).long().clamp_max(rows - shapes[:, 0])
    left = (u[:, 1] * (cols - shapes[:, 1] + 1)).long().clamp_max(cols - shapes[:, 1])
    r = torch.arange(rows, device="cpu")[None, :, None]
    c = torch.arange(cols, device="cpu")[None, None, :]
    inside = (r >= top[:, None, None]) & (r < (top + shapes[:, 0])[:, None, None])
    inside = inside & (c >= left[:, None, None]) & (c < (left + shapes[:, 1])[:, None, None])
    return inside.flatten(1)


def sample_masks(
    batch: int,
    grid: tuple[int, int],
    spec: MaskSpec,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> Masks:
    """Multi-block masks for ``batch`` samples on ``grid`` (see the module doc)."""
    m = spec.num_targets
    target_shapes = _draw_shapes(
        batch * m, grid, spec.target_scale, spec.target_aspect, generator
    ).view(batch, m, 2)
    context_shape = _draw_shapes(batch, grid, spec.context_scale, spec.context_aspect, generator)
    targets = _place(target_shapes.flatten(0, 1), grid, generator).view(batch, m, -1)
    block = _place(context_shape, grid, generator)
    context = block & ~targets.any(1)
    for _ in range(spec.tries):
        short = context.sum(1) < spec.min_context
        if not bool(short.any()):
            break
        idx = short.nonzero().squeeze(1)
        redrawn = _place(target_shapes[idx].flatten(0, 1), grid, generator)
        targets[idx] = redrawn.view(idx.numel(), m, -1)
        block[idx] = _place(context_shape[idx], grid, generator)
        context = block & ~targets.any(1)
    for k in range(m - 1, -1, -1):  # last resort: empty target blocks from the last one
        short = context.sum(1) < spec.min_context
        if not bool(short.any()):
            break
        targets[short, k] = False
        context = block & ~targets.any(1)
    return Masks(
        context=context.to(device),
        targets=targets.to(device),
        target_shapes=target_shapes.to(device),
        context_shape=context_shape.to(device),
    )
