"""DreamerV3 output distributions (official ``embodied/jax/outs.py`` and ``heads.py`` numerics).

* :func:`twohot_bins` / :class:`TwoHot`: symexp-spaced bins, symmetric decode, two-hot loss.
* :func:`unimix_logprobs`: 1% uniform mixture over categories, returned as log-probabilities.
* :func:`onehot_sample`: a categorical draw as a one-hot with straight-through gradients.
* :class:`BoundedNormal`: the continuous policy, ``mean = tanh(m)``, ``std in [minstd, maxstd]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from worldflux.nn.nets import symexp

__all__ = [
    "BoundedNormal",
    "TwoHot",
    "binary_loss",
    "categorical_kl",
    "log_softmax",
    "onehot_from_probs",
    "onehot_sample",
    "softmax",
    "twohot_bins",
    "unimix_logprobs",
]


#: Widest last axis for which the hand-written (faster on CPU) softmax is used.
_SMALL_AXIS = 64


def softmax(x: Tensor) -> Tensor:
    """Softmax over the last axis; for narrow axes (latent classes) computed as
    ``exp(x - max) / sum``, which is several times faster than ``torch.softmax`` on CPU."""
    if x.shape[-1] > _SMALL_AXIS:
        return torch.softmax(x, -1)
    e = (x - x.amax(-1, keepdim=True).detach()).exp()
    return e / e.sum(-1, keepdim=True)


def log_softmax(x: Tensor) -> Tensor:
    """Log-softmax over the last axis (hand-written for narrow axes, see :func:`softmax`)."""
    if x.shape[-1] > _SMALL_AXIS:
        return torch.log_softmax(x, -1)
    z = x - x.amax(-1, keepdim=True).detach()
    return z - z.exp().sum(-1, keepdim=True).log()


def twohot_bins(num: int = 255, low: float = -20.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """Bin centres ``symexp(linspace(low, -low, num))``, exactly antisymmetric in float32.

    For odd ``num`` the first ``(num+1)/2`` values are ``symexp(linspace(low, 0))`` and the rest
    their negated mirror, so the centre bin is exactly 0 and ``bins[-1-i] == -bins[i]``.
    """
    if num % 2 == 1:
        half = symexp(torch.linspace(low, 0.0, (num - 1) // 2 + 1, dtype=dtype))
        return torch.cat([half, -half[:-1].flip(0)])
    half = symexp(torch.linspace(low, 0.0, num // 2, dtype=dtype))
    return torch.cat([half, -half.flip(0)])


@dataclass
class TwoHot:
    """Categorical over ``bins`` (raw units) given ``logits [..., K]``."""

    logits: Tensor
    bins: Tensor

    def probs(self) -> Tensor:
        return torch.softmax(self.logits, -1)

    def pred(self) -> Tensor:
        """Expectation ``sum_i p_i b_i`` over mirrored pairs: with antisymmetric bins
        (``b[-1-i] == -b[i]``) it is ``sum_j (p[m+j] - p[m-j]) * b[m+j]``, exactly 0 for symmetric
        (e.g. uniform) probabilities in any summation order, as in the official symmetric sum.

        Shapes: ``logits [..., K] -> [...]``.
        """
        probs = self.probs()
        n = probs.shape[-1]
        m = n // 2
        diff = probs[..., n - m :] - probs[..., :m].flip(-1)
        return diff @ self.bins[n - m :]

    def indices_weights(self, value: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Two-hot encoding of raw-unit targets ``value [...]``: bin indices below / above and
        their weights (linear in raw units; both the end bin outside the range)."""
        bins = self.bins
        k = bins.shape[0]
        value = value.detach().to(bins.dtype)
        count = torch.searchsorted(bins, value.contiguous(), right=True)  # bins <= value
        below = (count - 1).clamp(0, k - 1)
        above = count.clamp(0, k - 1)
        equal = below == above
        one = torch.ones_like(value)
        dist_below = torch.where(equal, one, (bins[below] - value).abs())
        dist_above = torch.where(equal, one, (bins[above] - value).abs())
        total = dist_below + dist_above
        return below, above, dist_above / total, dist_below / total

    def target(self, value: Tensor) -> Tensor:
        """Two-hot target distribution ``[..., K]`` of raw-unit targets ``value [...]``."""
        below, above, w_below, w_above = self.indices_weights(value)
        shape = (*value.shape, self.bins.shape[0])
        out = torch.zeros(shape, dtype=self.bins.dtype, device=self.bins.device)
        out.scatter_add_(-1, below[..., None], w_below[..., None])
        out.scatter_add_(-1, above[..., None], w_above[..., None])
        return out

    def loss(self, value: Tensor) -> Tensor:
        """Cross-entropy against the two-hot encoding of ``value [...]`` -> ``[...]``."""
        below, above, w_below, w_above = self.indices_weights(value)
        logp = torch.log_softmax(self.logits, -1)
        lb = logp.gather(-1, below[..., None]).squeeze(-1)
        la = logp.gather(-1, above[..., None]).squeeze(-1)
        return -(w_below * lb + w_above * la)


def unimix_logprobs(logits: Tensor, unimix: float = 0.01) -> Tensor:
    """``log((1 - unimix) * softmax(logits) + unimix / K)`` over the last axis."""
    if not unimix:
        return log_softmax(logits)
    probs = softmax(logits)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


def categorical_kl(logp: Tensor, logq: Tensor) -> Tensor:
    """``KL(p || q)`` over the last axis from (normalised or not) log-probabilities."""
    logp = log_softmax(logp)
    logq = log_softmax(logq)
    return (logp.exp() * (logp - logq)).sum(-1)


def categorical_entropy(logits: Tensor) -> Tensor:
    """Entropy over the last axis."""
    logp = log_softmax(logits)
    return -(logp.exp() * logp).sum(-1)


def onehot_sample(logprobs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One categorical draw per row of ``logprobs [..., K]`` as a one-hot with straight-through
    gradients (``onehot + probs - stop_grad(probs)``)."""
    return onehot_from_probs(softmax(logprobs), generator)


def onehot_from_probs(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row of ``probs [..., K]`` (inverse CDF) as a straight-through one-hot."""
    k = probs.shape[-1]
    u = torch.rand(
        *probs.shape[:-1], 1, device=probs.device, dtype=probs.dtype, generator=generator
    )
    index = (probs.detach().cumsum(-1) < u).sum(-1, keepdim=True).clamp_max_(k - 1)
    onehot = torch.zeros_like(probs, memory_format=torch.contiguous_format).scatter_(-1, index, 1.0)
    if not (probs.requires_grad and torch.is_grad_enabled()):
        return onehot
    return onehot + (probs - probs.detach())


def binary_loss(logit: Tensor, target: Tensor) -> Tensor:
    """Soft-target binary cross-entropy ``-(t log s(l) + (1 - t) log s(-l))``, elementwise."""
    target = target.float()
    return -(target * F.logsigmoid(logit) + (1 - target) * F.logsigmoid(-logit))


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class BoundedNormal:
    """Independent Normal per action dim; ``mean, std [..., A]``; logp/entropy sum over ``A``."""

    mean: Tensor
    std: Tensor

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(
            self.mean.shape, device=self.mean.device, dtype=self.mean.dtype, generator=generator
        )
        return noise * self.std + self.mean

    def logp(self, action: Tensor) -> Tensor:
        z = (action - self.mean) / self.std
        return (-0.5 * z.square() - torch.log(self.std) - _HALF_LOG_2PI).sum(-1)

    def entropy(self) -> Tensor:
        return (torch.log(self.std) + _HALF_LOG_2PI + 0.5).sum(-1)


@dataclass
class UnimixCategorical:
    """Discrete policy: categorical over ``A`` with a uniform mixture; actions are one-hot."""

    logprobs: Tensor

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return onehot_sample(self.logprobs, generator).detach()

    def logp(self, action: Tensor) -> Tensor:
        return (log_softmax(self.logprobs) * action).sum(-1)

    def entropy(self) -> Tensor:
        return categorical_entropy(self.logprobs)
