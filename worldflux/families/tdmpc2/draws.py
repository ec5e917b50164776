"""Sources of the random draws TD-MPC2's update makes (policy ε and Q-head choices).

The objective asks a :class:`Draws` object for every random number, in the official order
(TD-target ε, TD-target heads, then policy-update ε and heads). :class:`TorchDraws` uses torch's
RNG (the default); :class:`ReplayDraws` replays recorded draws, which is how the parity check
reproduces the official golden update without depending on torch's RNG stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

import torch
from torch import Tensor

from worldflux.core.exceptions import ContractViolation

__all__ = ["Draws", "ReplayDraws", "TorchDraws"]


class Draws(Protocol):
    """Where the objective's random numbers come from."""

    def normal(self, shape: Sequence[int], like: Tensor) -> Tensor:
        """Standard-normal ε of ``shape`` (``like``'s dtype and device)."""
        ...

    def heads(self, num_q: int, device: torch.device) -> Tensor:
        """Two distinct Q-head indices (int64 ``[2]``)."""
        ...


class TorchDraws:
    """Draws from torch's global RNG, in the official call order (``randn``, ``randperm[:2]``)."""

    def normal(self, shape: Sequence[int], like: Tensor) -> Tensor:
        return torch.randn(tuple(shape), dtype=like.dtype, device=like.device)

    def heads(self, num_q: int, device: torch.device) -> Tensor:
        return torch.randperm(num_q, device=device)[:2]


class ReplayDraws:
    """Replays recorded draws in order: ``normals`` for :meth:`normal`, ``heads`` for :meth:`heads`.

    Raises:
        ContractViolation: a draw is requested after the recording ran out, or with another shape.
    """

    def __init__(self, normals: Iterable[Tensor], heads: Iterable[Tensor]) -> None:
        self._normals: deque[Tensor] = deque(normals)
        self._heads: deque[Tensor] = deque(heads)

    def normal(self, shape: Sequence[int], like: Tensor) -> Tensor:
        if not self._normals:
            raise ContractViolation("ReplayDraws: no recorded ε left for a normal draw")
        eps = self._normals.popleft()
        if tuple(eps.shape) != tuple(shape):
            raise ContractViolation(
                f"ReplayDraws: recorded ε has shape {list(eps.shape)}, expected {list(shape)}"
            )
        return eps.to(dtype=like.dtype, device=like.device)

    def heads(self, num_q: int, device: torch.device) -> Tensor:
        if not self._heads:
            raise ContractViolation("ReplayDraws: no recorded Q-head indices left")
        idx = self._heads.popleft().to(device=device, dtype=torch.long)
        if idx.numel() != 2 or int(idx.max()) >= num_q or int(idx.min()) < 0:
            raise ContractViolation(
                f"ReplayDraws: expected 2 head indices in [0, {num_q}), found {idx.tolist()}"
            )
        return idx

    @property
    def exhausted(self) -> bool:
        """Whether every recorded draw was used."""
        return not self._normals and not self._heads
