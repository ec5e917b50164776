"""DIAMOND-style diffusion hyperparameters read from the model config, with ``base`` defaults."""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext
from worldflux.families.shared.hparams import family_hparam

__all__ = ["hp"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the diffusion spec."""
    return family_hparam(ctx, "diffusion", name)
