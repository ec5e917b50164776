"""Lambda-returns and percentile return normalisation (official ``agent.lambda_return`` and
``embodied/jax/utils.Normalize`` with ``impl: perc``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PercentileNorm", "lambda_return"]


def lambda_return(
    last: Tensor, term: Tensor, rew: Tensor, boot: Tensor, disc: float, lam: float
) -> Tensor:
    """Lambda-returns ``[N, T-1]`` from ``[N, T]`` inputs (the official recursion).

    ``R_T-1 = boot_T-1``; for ``t < T-1``:
    ``R_t = rew_t+1 + (1 - c) * live * boot_t+1 + live * c * R_t+1`` with
    ``live = (1 - term_t+1) * disc`` and ``c = (1 - last_t+1) * lam``. Returns ``R_0 .. R_T-2``.
    """
    live = (1.0 - term.float())[:, 1:] * disc
    cont = (1.0 - last.float())[:, 1:] * lam
    interm = rew[:, 1:] + (1.0 - cont) * live * boot[:, 1:]
    rets = [boot[:, -1]]
    for t in reversed(range(live.shape[1])):
        rets.append(interm[:, t] + live[:, t] * cont[:, t] * rets[-1])
    return torch.stack(list(reversed(rets))[:-1], 1)


class PercentileNorm(nn.Module):
    """EMA of the ``perclo``/``perchi`` percentiles of the returns; scale ``max(limit, hi - lo)``.

    Buffers ``lo`` and ``hi`` start at 0 (no debiasing, as configured officially).
    """

    lo: Tensor
    hi: Tensor

    def __init__(
        self, rate: float = 0.01, limit: float = 1.0, perclo: float = 5.0, perchi: float = 95.0
    ) -> None:
        super().__init__()
        self.rate, self.limit, self.perclo, self.perchi = rate, limit, perclo, perchi
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        x = x.detach().float().flatten()
        q = torch.quantile(x, torch.tensor([self.perclo, self.perchi], device=x.device) / 100.0)
        self.lo.mul_(1 - self.rate).add_(self.rate * q[0])
        self.hi.mul_(1 - self.rate).add_(self.rate * q[1])

    def stats(self) -> tuple[Tensor, Tensor]:
        """(offset, scale), both 0-dim and free of gradients."""
        return self.lo.clone(), torch.clamp(self.hi - self.lo, min=self.limit)
