"""V-JEPA 2-AC-style hyperparameters read from the model config, with ``base`` defaults.

The base preset is a small ViT (patch 8 on 64x64 frames = 64 tokens, embed 192, depth 4) and a
predictor of depth 6, dim 192 (V-JEPA 2-AC: frozen ViT-g, predictor depth 24, dim 1024).
"""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext
from worldflux.core.exceptions import ConfigurationError
from worldflux.families.shared.hparams import family_hparam

__all__ = ["hp", "patch_grid"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the vjepa2 spec."""
    return family_hparam(ctx, "vjepa2", name)


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
