"""The DreamerV3 hyperparameters every slot reads from the model config, with official defaults.

Defaults are the official ``size12m`` dims (``configs.yaml`` ``size12m`` block over ``defaults``);
presets override them. Slots read values through :func:`hp` so a config missing a field still
builds with the official value.
"""

from __future__ import annotations

from typing import Any

from worldflux.core.components import BuildContext
from worldflux.core.exceptions import ConfigurationError

__all__ = ["DEFAULTS", "hp", "obs_layout", "parse_obs_keys"]

DEFAULTS: dict[str, Any] = {
    "deter": 2048,
    "hidden": 256,
    "stoch": 32,
    "classes": 16,
    "blocks": 8,
    "units": 256,
    "depth": 16,
    "enc_layers": 3,
    "dec_layers": 3,
    "rew_layers": 1,
    "con_layers": 1,
    "policy_layers": 3,
    "value_layers": 3,
    "imglayers": 2,
    "obslayers": 1,
    "dynlayers": 1,
    "unimix": 0.01,
    "bins": 255,
    "kernel": 5,
    "mults": (2, 3, 4, 4),
    "bspace": 8,
    "minstd": 0.1,
    "maxstd": 1.0,
    "obs_keys": None,
}


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, or the official default."""
    value = ctx.hparam(name, None)
    return DEFAULTS[name] if value is None else value


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
