"""IRIS-style token world-model hyperparameters read from the model config, with ``base`` defaults.

Defaults follow IRIS where it fits a vector-observation CPU model: 16 tokens per frame, 512-way
vocabulary, transformer of 10 layers, 4 heads, embed 256, 20 frames of context.
"""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext
from worldflux.families.shared.hparams import family_hparam

__all__ = ["hp"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the token spec."""
    return family_hparam(ctx, "token", name)
