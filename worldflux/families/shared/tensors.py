"""Small tensor utilities shared by family slots and objectives (shapes in each docstring)."""

from __future__ import annotations

import torch
from torch import Tensor

from worldflux.core.types import State

__all__ = ["masked_mean", "reset_where", "shift_in"]


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over entries where ``mask`` (same leading shape) is 1; 0 when none is."""
    mask = mask.to(x.dtype)
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(x)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def shift_in(window: Tensor, new: Tensor) -> Tensor:
    """Drop the oldest entry of ``window [B, K, ...]`` and append ``new [B, ...]``."""
    return torch.cat([window[:, 1:], new.unsqueeze(1).to(window.dtype)], dim=1)


def reset_where(is_first: Tensor, initial: State, state: State) -> State:
    """Per sample: ``initial`` where ``is_first [B]`` is true, else ``state``."""
    out = {}
    for key, value in state.items():
        mask = is_first.view(-1, *([1] * (value.dim() - 1)))
        out[key] = torch.where(mask, initial[key].to(value.dtype), value)
    return State(out)
