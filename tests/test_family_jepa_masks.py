"""I-JEPA multi-block masking (worldflux/families/jepa/masks.py): block sizes and aspect ratios,
disjoint context and targets, seeded determinism, the same code on 1-D token sequences."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldflux.families.jepa.masks import MaskSpec, area_range, block_shapes, sample_masks

SPEC = MaskSpec()  # I-JEPA: 4 targets, scale 0.15-0.2, aspect 0.75-1.5; context 0.85-1.0


def _feasible(rows: int, cols: int, scale: tuple[float, float], aspect: tuple[float, float]):
    """Brute force: the shapes of the grid with area in range, and those with aspect too."""
    lo, hi = area_range(rows * cols, scale)
    area_ok = [(h, w) for h in range(1, rows + 1) for w in range(1, cols + 1) if lo <= h * w <= hi]
    both = [(h, w) for h, w in area_ok if aspect[0] - 1e-9 <= h / w <= aspect[1] + 1e-9]
    return area_ok, both


def _is_rectangle(mask: torch.Tensor, rows: int, cols: int, h: int, w: int) -> bool:
    grid = mask.view(rows, cols)
    where = grid.nonzero()
    if where.shape[0] != h * w:
        return False
    top, left = where.min(0).values.tolist()
    return bool(grid[top : top + h, left : left + w].all())


grids = st.one_of(
    st.tuples(st.just(1), st.integers(2, 48)),  # a vector: a 1-D token sequence
    st.tuples(st.integers(2, 14), st.integers(2, 14)),  # an image patch grid
)


@settings(max_examples=60, deadline=None)
@given(grid=grids, batch=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_block_sizes_and_aspect_ratios_hold(grid: tuple[int, int], batch: int, seed: int) -> None:
    rows, cols = grid
    masks = sample_masks(batch, grid, SPEC, torch.Generator().manual_seed(seed))
    lo, hi = area_range(rows * cols, SPEC.target_scale)
    area_ok, both = _feasible(rows, cols, SPEC.target_scale, SPEC.target_aspect)
    for h, w in masks.target_shapes.view(-1, 2).tolist():
        assert 1 <= h <= rows and 1 <= w <= cols
        if rows == 1:  # contiguous span; the aspect ratio does not apply
            assert h == 1 and lo <= w <= hi
        elif both:  # the grid has a shape of the right size and aspect: it is one of those
            assert (h, w) in both
        elif area_ok:
            assert lo <= h * w <= hi
    c_area, c_both = _feasible(rows, cols, SPEC.context_scale, SPEC.context_aspect)
    for h, w in masks.context_shape.tolist():
        if rows == 1:
            assert h == 1 and area_range(cols, SPEC.context_scale)[0] <= w
        elif c_both:
            assert (h, w) in c_both
        elif c_area:
            assert (h, w) in c_area
    # every non-empty target mask is the contiguous block of its drawn shape
    for b in range(batch):
        for m in range(SPEC.num_targets):
            mask = masks.targets[b, m]
            if mask.any():
                h, w = masks.target_shapes[b, m].tolist()
                assert _is_rectangle(mask, rows, cols, h, w)


@settings(max_examples=60, deadline=None)
@given(grid=grids, batch=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_context_and_targets_are_disjoint(grid: tuple[int, int], batch: int, seed: int) -> None:
    masks = sample_masks(batch, grid, SPEC, torch.Generator().manual_seed(seed))
    n = grid[0] * grid[1]
    assert masks.context.shape == (batch, n) and masks.targets.shape == (batch, 4, n)
    assert not bool((masks.context[:, None] & masks.targets).any())
    assert bool((masks.context.sum(1) >= SPEC.min_context).all())


def test_block_shapes_on_imagenet_and_small_grids() -> None:
    """I-JEPA's 14x14 grid: targets of 30-39 tokens, aspect 0.75-1.5; a 1 x 24 vector: spans of
    4 tokens; a 4 x 4 grid has no 3-token block of aspect 0.75-1.5, so the area wins, then the
    aspect nearest the range (3 vs 1/3: log 2 from 1.5 beats log 2.25 from 0.75)."""
    for h, w in block_shapes(14, 14, (0.15, 0.2), (0.75, 1.5)):
        assert 30 <= h * w <= 39 and 0.75 <= h / w <= 1.5
    assert block_shapes(1, 24, (0.15, 0.2), (0.75, 1.5)) == ((1, 4),)
    assert block_shapes(4, 4, (0.15, 0.2), (0.75, 1.5)) == ((3, 1),)
    assert block_shapes(4, 4, (0.85, 1.0), (1.0, 1.0)) == ((4, 4),)


def test_scales_are_drawn_across_their_range() -> None:
    """On a large grid the drawn target areas cover the whole scale range (not one size)."""
    masks = sample_masks(64, (14, 14), SPEC, torch.Generator().manual_seed(0))
    areas = masks.target_shapes.prod(-1).flatten().float()
    assert math.isclose(float(areas.min()), 30, abs_tol=3)
    assert math.isclose(float(areas.max()), 39, abs_tol=3)
    ratios = (masks.target_shapes[..., 0] / masks.target_shapes[..., 1]).flatten()
    assert float(ratios.min()) < 0.9 and float(ratios.max()) > 1.3


def test_masks_are_seeded() -> None:
    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        masks = sample_masks(8, (6, 6), SPEC, torch.Generator().manual_seed(seed))
        return masks.context, masks.targets

    a, b, c = draw(3), draw(3), draw(4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    torch.manual_seed(5)  # without a generator: torch's global one
    d = sample_masks(8, (1, 24), SPEC)
    torch.manual_seed(5)
    e = sample_masks(8, (1, 24), SPEC)
    assert torch.equal(d.targets, e.targets) and torch.equal(d.context, e.context)


def test_a_tiny_sequence_keeps_a_context_token() -> None:
    """Four one-token targets can cover a 4-token vector: the draw is retried (I-JEPA's loop)."""
    masks = sample_masks(256, (1, 4), SPEC, torch.Generator().manual_seed(0))
    assert bool((masks.context.sum(1) >= 1).all())
    assert not bool((masks.context[:, None] & masks.targets).any())
    assert bool((masks.targets.sum(-1) == 1).float().mean() > 0.99)
