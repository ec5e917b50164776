"""The DreamerV3 hyperparameters every slot reads from the model config.

Their defaults live in one place, the spec (``specs/models/dreamerv3.yaml``: the official
``size12m`` dims, ``configs.yaml`` ``size12m`` over ``defaults``); presets override them. Slots
read values through :func:`hp`, so a config missing a field still builds with the spec's value.
"""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext
from worldflux.core.exceptions import ConfigurationError
from worldflux.families.shared.hparams import family_hparam

__all__ = ["hp", "obs_layout", "parse_obs_keys"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the dreamerv3 spec."""
    return family_hparam(ctx, "dreamerv3", name)


def parse_obs_keys(entries: list[str] | tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Parse ``["height:", "orientations:14", "image:3x64x64"]`` into key -> per-sample shape.

    Raises:
        ConfigurationError: an entry is not ``name:dims`` with ``x``-separated positive ints.
    """
    layout: dict[str, tuple[int, ...]] = {}
    for entry in entries:
        name, sep, dims = str(entry).partition(":")
        try:
            shape = tuple(int(d) for d in dims.split("x")) if dims else ()
        except ValueError:
            shape = (-1,)
        if not sep or not name or any(d < 1 for d in shape) or name in layout:
            raise ConfigurationError(
                f"dreamerv3 config obs_keys: expected unique entries 'name:dims' such as "
                f"'orientations:14', 'height:' or 'image:3x64x64', found {entry!r}"
            )
        layout[name] = shape
    return layout


def obs_layout(ctx: BuildContext) -> dict[str, tuple[int, ...]]:
    """Observation keys and per-sample shapes.

    A plain tensor observation is one key ``obs`` with ``ctx.obs_shape``. The config field
    ``obs_keys`` (entries ``"name:dims"``) declares dict observations instead, e.g. the DMC
    walker's ``["height:", "orientations:14", "velocity:9"]``.
    """
    keys = hp(ctx, "obs_keys")
    if keys:
        return parse_obs_keys(list(keys))
    return {"obs": tuple(ctx.obs_shape)}
