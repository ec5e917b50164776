"""Helpers shared by the families: hyperparameters read from the model config with the spec's
defaults (:func:`family_hparam`) and slot-build guards. MLPs and observation sizes come from
:mod:`worldflux.components` (``build_mlp``, ``flat_obs_dim``): one implementation each."""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext
from worldflux.core.exceptions import ConfigurationError, did_you_mean
from worldflux.core.registry import WorldModelRegistry

__all__ = [
    "family_hparam",
    "hp",
    "require_dims",
    "spec_default",
    "swap_guard",
]


def spec_default(family: str, name: str) -> Any:
    """The default of hyperparameter ``name`` in ``family``'s spec: the field default of its
    generated config class, the one source of every default (lists come back as tuples).

    Raises:
        ConfigurationError: the family's spec has no such hyperparameter.
    """
    fields = WorldModelRegistry.get_config_class(family).model_fields
    if name not in fields:
        raise ConfigurationError(
            f"{family} spec has no hyperparameter {name!r}" + did_you_mean(name, fields)
        )
    default = fields[name].default
    return tuple(default) if isinstance(default, list) else default


def family_hparam(ctx: BuildContext, family: str, name: str) -> Any:
    """The model config's ``name``, or (for a slot swapped into a model whose config lacks it)
    the default in ``family``'s spec."""
    value = ctx.hparam(name, None)
    return spec_default(family, name) if value is None else value


def hp(ctx: BuildContext, name: str) -> Any:
    """A JEPA hyperparameter (:func:`family_hparam` of ``jepa``)."""
    return family_hparam(ctx, "jepa", name)


def require_dims(ctx: BuildContext, owner: str, *keys: str, built_by: str) -> None:
    """Refuse to build ``owner`` unless earlier slots announced every ``ctx.dims`` key.

    Raises:
        ConfigurationError: naming the missing keys and the slot that provides them.
    """
    missing = [k for k in keys if k not in ctx.dims]
    if missing:
        raise ConfigurationError(
            f"{owner} needs ctx.dims {missing}, set by {built_by}; this model has "
            f"{sorted(ctx.dims)}"
        )


def swap_guard(ctx: BuildContext, owner: str, marker: str, partner: str) -> None:
    """Refuse to swap an encoder into a model whose dynamics cannot read its output.

    An observation encoder is the first slot built, so a non-empty ``ctx.dims`` means it is being
    swapped into an existing model; that is allowed only when ``partner`` (which sets ``marker``)
    is the model's dynamics.

    Raises:
        ConfigurationError: the model's dynamics is not ``partner``.
    """
    if ctx.dims and marker not in ctx.dims:
        raise ConfigurationError(
            f"{owner} produces the observation state of {partner}; it cannot replace the "
            "encoder of a model with other dynamics"
        )
