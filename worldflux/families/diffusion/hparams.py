"""DIAMOND-style diffusion hyperparameters read from the model config, with ``base`` defaults."""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext

__all__ = ["DEFAULTS", "hp"]

DEFAULTS: dict[str, Any] = {
    "context_frames": 4,
    "action_embed_dim": 64,
    "noise_embed_dim": 64,
    "hidden_dim": 512,
    "denoiser_blocks": 4,
    "head_hidden": 256,
    "head_layers": 2,
    "sigma_data": 0.5,
    "sigma_min": 2e-3,
    "sigma_max": 5.0,
    "rho": 7.0,
    "sampling_steps": 3,
    "train_log_sigma_mean": -0.4,
    "train_log_sigma_std": 1.2,
}


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, or its default."""
    value = ctx.hparam(name, None)
    return DEFAULTS[name] if value is None else value
