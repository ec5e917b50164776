"""The stochastic Euler sampler of EDM (Karras et al. 2022, Algorithm 2, first order).

DIAMOND's ``DiffusionSampler`` with ``order=1``: at each noise level ``sigma_i`` of the Karras
schedule, "churn" first raises the noise to ``sigma_hat = sigma_i (1 + gamma)`` by adding fresh
Gaussian noise of variance ``sigma_hat^2 - sigma_i^2``, then one Euler step of the probability
flow ODE goes from ``sigma_hat`` to ``sigma_{i+1}``. ``gamma = min(churn / steps, sqrt(2) - 1)``
inside ``[churn_tmin, churn_tmax]``, else 0. With ``churn = 0`` this is exactly the shared
deterministic :meth:`worldflux.families.shared.edm.EDM.sample` (which it does not change).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from worldflux.families.shared.edm import EDM

__all__ = ["euler_sample"]


def euler_sample(
    edm: EDM,
    net: Callable[[Tensor, Tensor], Tensor],
    noise: Tensor,
    steps: int,
    *,
    churn: float = 0.0,
    churn_tmin: float = 0.0,
    churn_tmax: float = math.inf,
    churn_noise: float = 1.0,
) -> Tensor:
    """Sample ``[B, ...]`` from ``x = sigma_max * noise`` in ``steps`` (stochastic) Euler steps.

    ``noise`` sets the start: zeros give the ODE from the prior mean, standard normal noise a
    draw from ``N(0, sigma_max^2)`` (DIAMOND starts from noise). ``churn > 0`` adds fresh noise
    (``torch.randn_like``, the global generator) at every step inside the churn window.
    """
    sigmas = edm.schedule(steps, noise)
    x = noise * sigmas[0]
    batch = noise.shape[0]
    gamma_max = min(churn / steps, math.sqrt(2.0) - 1.0) if churn > 0 else 0.0
    for i in range(steps):
        sigma, nxt = float(sigmas[i]), float(sigmas[i + 1])
        gamma = gamma_max if churn_tmin <= sigma <= churn_tmax else 0.0
        sigma_hat = sigma * (1.0 + gamma)
        if gamma > 0:
            x = x + churn_noise * math.sqrt(sigma_hat**2 - sigma**2) * torch.randn_like(x)
        denoised = edm.denoise(net, x, x.new_full((batch,), sigma_hat))
        if nxt == 0.0:
            x = denoised  # the Euler step to sigma = 0 lands on the denoised estimate
        else:
            x = x + (x - denoised) / sigma_hat * (nxt - sigma_hat)
    return x
