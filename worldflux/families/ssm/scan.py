"""The selective scan: ``h_t = a_t * h_{t-1} + b_t`` (elementwise) over a sequence, two ways.

* :func:`sequential_scan`: one step at a time (what a rollout does, one ``transition`` per step);
* :func:`parallel_scan`: the Hillis-Steele prefix scan over the associative operator
  ``(a1, b1) . (a2, b2) = (a1 * a2, a2 * b1 + b2)``: ``ceil(log2 T)`` vectorised rounds instead
  of ``T`` dependent steps (Mamba's parallel scan, without the fused kernel). Both give the same
  states up to float rounding (tests/test_families_units.py checks it).

Shapes: ``a``, ``b`` ``[B, T, ...]``; ``h0`` ``[B, ...]``; returns ``h`` ``[B, T, ...]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["parallel_scan", "sequential_scan"]


def sequential_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` for t = 0..T-1 from ``h_{-1} = h0``, step by step."""
    states, h = [], h0
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, 1)


def parallel_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """The same recurrence in ``ceil(log2 T)`` rounds (inclusive prefix scan)."""
    # fold h0 into the first input: h_0 = a_0 * h0 + b_0
    b = torch.cat([(a[:, :1] * h0.unsqueeze(1) + b[:, :1]), b[:, 1:]], 1)
    offset, length = 1, a.shape[1]
    while offset < length:
        # element t combines with t - offset: (a_prev, b_prev) then (a_t, b_t)
        a_prev, b_prev = a[:, :-offset], b[:, :-offset]
        b = torch.cat([b[:, :offset], a[:, offset:] * b_prev + b[:, offset:]], 1)
        a = torch.cat([a[:, :offset], a[:, offset:] * a_prev], 1)
        offset *= 2
    return b
