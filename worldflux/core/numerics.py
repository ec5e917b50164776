"""Cheap finiteness tests for hot paths (contract validation, gradient guards).

A NaN or inf anywhere in a tensor makes its sum NaN or inf, so one reduction answers "all
finite?" for the common case at memory speed. A non-finite sum can also come from finite values
whose sum overflows; only then is the elementwise test run, so the answer is always exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["all_finite", "first_non_finite"]


def all_finite(tensor: Tensor) -> bool:
    """True when every element of the floating ``tensor`` (any shape) is finite.

    Integer and boolean tensors are always finite.
    """
    if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.numel() == 0:
        return True
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def first_non_finite(tensors: Sequence[Tensor]) -> int | None:
    """Index of the first tensor holding NaN/inf, or None when all are finite.

    One fused norm over the whole list answers the common case; the per-tensor scan only runs
    when that norm is not finite.
    """
    floats = [t for t in tensors if t.is_floating_point() and t.numel()]
    if not floats:
        return None
    norms = torch._foreach_norm([t.detach() for t in floats])
    if bool(torch.isfinite(torch.stack(norms)).all()):
        return None
    for index, tensor in enumerate(tensors):
        if not all_finite(tensor.detach()):
            return index
    return None
