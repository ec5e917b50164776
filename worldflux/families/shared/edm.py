"""EDM preconditioning (Karras et al. 2022), the Karras sigma schedule and an Euler sampler.

Shared by the ``diffusion`` (DIAMOND-style) and ``dit`` families. ``x`` tensors are ``[B, ...]``,
``sigma`` is ``[B]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["EDM", "sinusoidal_embedding"]


def sinusoidal_embedding(x: Tensor, dim: int) -> Tensor:
    """``x [B]`` -> ``[B, dim]`` sin/cos features at geometric frequencies 1 .. 1000."""
    half = max(dim // 2, 1)
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half, device=x.device, dtype=x.dtype))
    angles = x.unsqueeze(-1) * freqs
    out = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return out[..., :dim] if out.shape[-1] >= dim else torch.cat([out, x.unsqueeze(-1)], -1)


def _expand(sigma: Tensor, like: Tensor) -> Tensor:
    return sigma.reshape(sigma.shape[0], *([1] * (like.dim() - 1)))


@dataclass(frozen=True)
class EDM:
    """EDM preconditioning constants and helpers.

    ``D(x, σ) = c_skip x + c_out F(c_in x, c_noise)`` with ``c_in = 1/√(σ²+σ_d²)``,
    ``c_skip = σ_d²/(σ²+σ_d²)``, ``c_out = σ σ_d/√(σ²+σ_d²)``, ``c_noise = ln(σ)/4``.
    """

    sigma_data: float = 0.5
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0
    log_sigma_mean: float = -0.4
    log_sigma_std: float = 1.2

    def scalings(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_in, c_skip, c_out, c_noise)``, each ``[B]``."""
        var = sigma**2 + self.sigma_data**2
        c_in = var.rsqrt()
        c_skip = self.sigma_data**2 / var
        c_out = sigma * self.sigma_data * c_in
        c_noise = sigma.log() / 4.0
        return c_in, c_skip, c_out, c_noise

    def denoise(self, net: Callable[[Tensor, Tensor], Tensor], x: Tensor, sigma: Tensor) -> Tensor:
        """``D(x, σ)``: the denoised estimate; ``net(c_in x, c_noise) -> F`` (same shape as x)."""
        c_in, c_skip, c_out, c_noise = self.scalings(sigma)
        raw = net(_expand(c_in, x) * x, c_noise)
        return _expand(c_skip, x) * x + _expand(c_out, x) * raw

    def sample_sigma(self, batch: int, like: Tensor) -> Tensor:
        """Training noise levels ``[B]``: log-normal, clipped to ``[sigma_min, 20]`` (DIAMOND)."""
        log_sigma = self.log_sigma_mean + self.log_sigma_std * torch.randn(
            batch, device=like.device, dtype=like.dtype
        )
        return log_sigma.exp().clamp(self.sigma_min, 20.0)

    def loss(
        self, net: Callable[[Tensor, Tensor], Tensor], x0: Tensor, sigma: Tensor, noise: Tensor
    ) -> Tensor:
        """Per-sample denoising loss ``[B]``: MSE of ``F`` to ``(x0 - c_skip x)/c_out``."""
        x = x0 + _expand(sigma, x0) * noise
        c_in, c_skip, c_out, c_noise = self.scalings(sigma)
        raw = net(_expand(c_in, x) * x, c_noise)
        target = (x0 - _expand(c_skip, x) * x) / _expand(c_out, x)
        return (raw - target).pow(2).flatten(1).mean(-1)

    def schedule(self, steps: int, like: Tensor) -> Tensor:
        """Karras sigmas ``[steps + 1]`` from ``sigma_max`` down to ``sigma_min``, then 0."""
        ramp = torch.linspace(0.0, 1.0, steps, device=like.device, dtype=like.dtype)
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        sigmas = (hi + ramp * (lo - hi)) ** self.rho
        if steps == 1:
            sigmas = sigmas.new_full((1,), self.sigma_max)
        return torch.cat([sigmas, sigmas.new_zeros(1)])

    def sample(
        self,
        net: Callable[[Tensor, Tensor], Tensor],
        noise: Tensor,
        steps: int,
        *,
        churn: float = 0.0,
        churn_tmin: float = 0.0,
        churn_tmax: float = math.inf,
    ) -> Tensor:
        """Euler sampling from ``x = sigma_max * noise`` in ``steps`` steps (EDM Algorithm 2,
        first order; DIAMOND's sampler with ``order=1``).

        ``noise`` decides the start: pass zeros for a deterministic sample (the ODE started from
        the prior mean), standard normal noise for a stochastic one. ``churn > 0`` first raises
        each noise level ``sigma`` inside ``[churn_tmin, churn_tmax]`` to ``sigma (1 + gamma)``,
        ``gamma = min(churn / steps, sqrt(2) - 1)``, by adding fresh Gaussian noise
        (``torch.randn_like``, the global generator); ``churn = 0`` is the plain Euler sampler.
        """
        sigmas = self.schedule(steps, noise)
        x = noise * sigmas[0]
        batch = noise.shape[0]
        gamma_max = min(churn / steps, math.sqrt(2.0) - 1.0) if churn > 0 else 0.0
        for i in range(steps):
            sigma = sigmas[i]
            if gamma_max > 0 and churn_tmin <= float(sigma) <= churn_tmax:
                raised = sigma * (1.0 + gamma_max)
                x = x + (raised**2 - sigma**2).sqrt() * torch.randn_like(x)
                sigma = raised
            denoised = self.denoise(net, x, sigma.expand(batch))
            if float(sigmas[i + 1]) == 0.0:
                x = denoised  # the Euler step to sigma = 0 lands on the denoised estimate
            else:
                x = x + (x - denoised) / sigma * (sigmas[i + 1] - sigma)
        return x
