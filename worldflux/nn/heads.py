"""DreamerV3 MLP heads (official ``embodied/jax/heads.py`` ``MLPHead``): an MLP trunk and one
output layer per distribution parameter.

* :class:`TwoHotHead`: reward / value, ``bins`` logits with ``outscale`` 0 (all-zero at init);
* :class:`BinaryHead`: continue, one logit;
* :class:`PolicyHead`: bounded normal (continuous) or unimix categorical (discrete).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldflux.nn.dists import (
    BoundedNormal,
    TwoHot,
    UnimixCategorical,
    twohot_bins,
    unimix_logprobs,
)
from worldflux.nn.nets import MLP, Dense, tanh

__all__ = ["BinaryHead", "PolicyHead", "TwoHotHead"]


class TwoHotHead(nn.Module):
    """``feat [..., F] -> logits [..., bins]``; :meth:`dist` gives the symexp two-hot output."""

    bins: Tensor

    def __init__(self, in_dim: int, layers: int, units: int, bins: int = 255) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, layers, units)
        self.out = Dense(self.mlp.out_dim, bins, outscale=0.0)
        self.register_buffer("bins", twohot_bins(bins), persistent=False)

    def forward(self, feat: Tensor) -> Tensor:
        logits: Tensor = self.out(self.mlp(feat))
        return logits

    def dist(self, feat: Tensor) -> TwoHot:
        return TwoHot(self(feat), self.bins)


class BinaryHead(nn.Module):
    """``feat [..., F] -> logit [...]`` (Bernoulli; probability ``sigmoid(logit)``)."""

    def __init__(self, in_dim: int, layers: int, units: int) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, layers, units)
        self.out = Dense(self.mlp.out_dim, 1)

    def forward(self, feat: Tensor) -> Tensor:
        value: Tensor = self.out(self.mlp(feat))
        return value.squeeze(-1)


class PolicyHead(nn.Module):
    """The actor: ``feat [..., F]`` -> a distribution over actions ``[..., A]``.

    Continuous: ``mean = tanh(mean_layer)``, ``std = (maxstd - minstd) * sigmoid(s + 2) + minstd``.
    Discrete: categorical with ``unimix`` over ``A`` logits (actions as one-hot ``[..., A]``).
    Output layers use ``outscale`` 0.01.
    """

    def __init__(
        self,
        in_dim: int,
        layers: int,
        units: int,
        action_dim: int,
        discrete: bool,
        *,
        minstd: float = 0.1,
        maxstd: float = 1.0,
        unimix: float = 0.01,
    ) -> None:
        super().__init__()
        self.discrete = discrete
        self.minstd, self.maxstd, self.unimix = minstd, maxstd, unimix
        self.mlp = MLP(in_dim, layers, units)
        if discrete:
            self.logits = Dense(self.mlp.out_dim, action_dim, outscale=0.01)
        else:
            self.mean = Dense(self.mlp.out_dim, action_dim, outscale=0.01)
            self.stddev = Dense(self.mlp.out_dim, action_dim, outscale=0.01)

    def forward(self, feat: Tensor) -> BoundedNormal | UnimixCategorical:
        x = self.mlp(feat)
        if self.discrete:
            return UnimixCategorical(unimix_logprobs(self.logits(x), self.unimix))
        mean = tanh(self.mean(x))
        std = (self.maxstd - self.minstd) * torch.sigmoid(self.stddev(x) + 2.0) + self.minstd
        return BoundedNormal(mean, std)
