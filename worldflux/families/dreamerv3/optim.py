"""The official DreamerV3 optimiser (``agent._make_opt`` with ``embodied/jax/opt.py``), in PyTorch.

Per step, for every parameter tensor ``p`` with gradient ``g`` (LaProp order):

1. adaptive gradient clipping: ``g *= 1 / max(1, |g| / (agc * max(pmin, |p|)))`` (norms per tensor);
2. RMS scaling: ``nu = beta2 nu + (1 - beta2) g^2``; ``g /= sqrt(nu / (1 - beta2^t)) + eps``;
3. momentum: ``mu = beta1 mu + (1 - beta1) g``; ``u = mu / (1 - beta1^t)``;
4. ``p -= lr_t * u`` with ``lr_t = lr * min(1, (t - 1) / warmup)`` (optax's linear warmup counts
   from 0, so the very first update has learning rate 0), then constant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["DreamerOptimizer"]


class DreamerOptimizer(torch.optim.Optimizer):
    """AGC + RMS scaling + momentum with a linear warmup (official defaults)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 4e-5,
        agc: float = 0.3,
        pmin: float = 1e-3,
        eps: float = 1e-20,
        beta1: float = 0.9,
        beta2: float = 0.999,
        warmup: int = 1000,
    ) -> None:
        if lr < 0 or agc < 0 or not 0 <= beta1 < 1 or not 0 <= beta2 < 1 or warmup < 0:
            raise ValueError(
                f"DreamerOptimizer: invalid settings lr={lr}, agc={agc}, beta1={beta1}, "
                f"beta2={beta2}, warmup={warmup}"
            )
        defaults = {
            "lr": lr,
            "agc": agc,
            "pmin": pmin,
            "eps": eps,
            "beta1": beta1,
            "beta2": beta2,
            "warmup": warmup,
        }
        super().__init__(params, defaults)

    def current_lr(self, group: dict[str, Any], step: int) -> float:
        """Learning rate of update number ``step`` (1-based)."""
        warmup = int(group["warmup"])
        if warmup and step - 1 < warmup:
            return float(group["lr"]) * (step - 1) / warmup
        return float(group["lr"])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter with a gradient.

        The arithmetic is the per-tensor recipe of the module docstring, applied with
        ``torch._foreach_*`` ops over all parameters that share an update count (normally all of
        them): a few dozen kernel launches per step instead of a dozen per tensor, with the same
        float32 results (the foreach norm and elementwise kernels are the per-tensor ones).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_step: dict[int, list[Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["nu"] = torch.zeros_like(p, dtype=torch.float32)
                    state["mu"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                by_step.setdefault(int(state["step"]), []).append(p)
            for t, params in by_step.items():
                self._update(group, t, params)
        return loss

    def _update(self, group: dict[str, Any], t: int, params: list[Tensor]) -> None:
        """Apply update number ``t`` (1-based) to ``params`` (all with gradients)."""
        beta1, beta2, eps = group["beta1"], group["beta2"], group["eps"]
        grads = [p.grad.float() for p in params]  # type: ignore[union-attr]
        if group["agc"]:
            pnorm = torch.stack(torch._foreach_norm(params))
            gnorm = torch.stack(torch._foreach_norm(grads))
            upper = group["agc"] * torch.clamp(pnorm, min=group["pmin"])
            factor = 1.0 / torch.clamp(gnorm / upper, min=1.0)
            grads = list(torch._foreach_mul(grads, list(factor.unbind())))
        nus = [self.state[p]["nu"] for p in params]
        mus = [self.state[p]["mu"] for p in params]
        torch._foreach_mul_(nus, beta2)
        torch._foreach_addcmul_(nus, grads, grads, value=1 - beta2)
        denom = torch._foreach_div(nus, 1 - beta2**t)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, eps)
        updates = torch._foreach_div(grads, denom)
        torch._foreach_mul_(mus, beta1)
        torch._foreach_add_(mus, updates, alpha=1 - beta1)
        lr = self.current_lr(group, t)
        if lr:
            steps = torch._foreach_div(mus, 1 - beta1**t)
            if all(p.dtype == torch.float32 for p in params):
                torch._foreach_add_(params, steps, alpha=-lr)
                return
            for p, step in zip(params, steps, strict=True):
                p.add_(step.to(p.dtype), alpha=-lr)
