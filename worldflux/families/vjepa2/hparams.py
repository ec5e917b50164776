"""V-JEPA 2-AC-style hyperparameters read from the model config, with ``base`` defaults.

The base preset is a small ViT (patch 8 on 64x64 frames = 64 tokens, embed 192, depth 4) and a
predictor of depth 6, dim 192 (V-JEPA 2-AC: frozen ViT-g, predictor depth 24, dim 1024).
"""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext
from worldflux.core.exceptions import ConfigurationError

__all__ = ["DEFAULTS", "hp", "patch_grid"]

DEFAULTS: dict[str, Any] = {
    "patch_size": 8,
    "embed_dim": 192,
    "enc_depth": 4,
    "enc_heads": 4,
    "pred_dim": 192,
    "pred_depth": 6,
    "pred_heads": 4,
    "context_frames": 4,
    "head_hidden": 256,
    "head_layers": 1,
}


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, or its default."""
    value = ctx.hparam(name, None)
    return DEFAULTS[name] if value is None else value


def patch_grid(ctx: BuildContext) -> tuple[int, int, int]:
    """``(channels, patches per side, patch size)`` of square ``[C, S, S]`` image observations.

    Raises:
        ConfigurationError: obs_shape is not ``[C, S, S]`` with ``S`` divisible by patch_size.
    """
    shape, patch = ctx.obs_shape, int(hp(ctx, "patch_size"))
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] % patch:
        raise ConfigurationError(
            f"vjepa2: obs_shape must be square images [C, S, S] with S divisible by "
            f"patch_size={patch}, found {list(shape)}"
        )
    return int(shape[0]), int(shape[1]) // patch, patch
