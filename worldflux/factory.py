"""Build models by id: ``create_world_model("tdmpc2:5m", obs_shape=(24,), action_dim=6)``.

``MODEL_CATALOG`` and ``MODEL_ALIASES`` are the built-in catalog (``generated/catalog.py``,
written by ``nox -s generate`` from the specs). The registry also holds the models of installed
plugins and of the current project (:mod:`worldflux.discovery.sources`); ``list_models()``
lists them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from worldflux.core.exceptions import ConfigurationError, ModelNotFoundError, did_you_mean
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.spec import ModelMaturity
from worldflux.discovery.sources import source_of

__all__ = [
    "MODEL_ALIASES",
    "MODEL_CATALOG",
    "create_world_model",
    "get_model_info",
    "list_models",
]

from worldflux.generated.catalog import MODEL_ALIASES, MODEL_CATALOG

ComponentOverride = str | tuple[str, dict[str, Any]] | nn.Module


def create_world_model(
    model: str,
    *,
    obs_shape: Sequence[int] | None = None,
    action_dim: int | None = None,
    action_type: str | None = None,
    component_overrides: dict[str, ComponentOverride] | None = None,
    device: str | torch.device = "cpu",
    **config_overrides: Any,
) -> WorldModel:
    """Build a registered model from an id (``type``, ``type:preset``) or alias.

    Args:
        model: e.g. ``"dreamerv3:size12m"``, ``"tdmpc2"`` (alias), ``"tdmpc2-ci"``.
        obs_shape: per-sample observation shape, e.g. ``(24,)`` or ``(3, 64, 64)``.
        action_dim: action dimensions (continuous) or number of actions (discrete).
        action_type: ``"continuous"`` or ``"discrete"``.
        component_overrides: slot -> registry key, ``(key, params)`` or a module.
        device: where the model lives.
        **config_overrides: hyperparameters that replace the preset's.

    Raises:
        ModelNotFoundError: unknown id, alias or preset (with suggestions).
        ConfigurationError: unknown or invalid config field (with "did you mean").
    """
    if not isinstance(model, str):
        raise ConfigurationError(
            f"model id: expected a string such as 'tdmpc2:5m', found {type(model).__name__}"
        )
    target = _device(device)
    model_type, preset = WorldModelRegistry.resolve(model)
    model_cls = WorldModelRegistry.get(model_type)
    config_cls = WorldModelRegistry.get_config_class(model_type)
    values: dict[str, Any] = {}
    if preset is not None:
        values.update(_preset(model_type, model_cls, preset))
    if obs_shape is not None:
        values["obs_shape"] = tuple(obs_shape)
    if action_dim is not None:
        values["action_dim"] = action_dim
    if action_type is not None:
        values["action_type"] = action_type
    values.update(config_overrides)
    values["model_type"] = model_type
    built = model_cls(config_cls(**values))
    for slot, override in (component_overrides or {}).items():
        if isinstance(override, tuple):
            if len(override) != 2 or not isinstance(override[0], str):
                raise ConfigurationError(
                    f"component_overrides[{slot!r}]: expected a key, (key, params) or a module, "
                    f"found {override!r}"
                )
            built.swap_component(slot, override[0], override[1])
        else:
            built.swap_component(slot, override)
    return built.to(target)


def _device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigurationError(f"device {device!r} is not a torch device ({error})") from None


def _preset(model_type: str, model_cls: type[WorldModel], preset: str) -> dict[str, Any]:
    """The config overrides of ``model_type:preset``.

    Raises:
        ModelNotFoundError: no such preset, with the closest names and the full list.
    """
    presets = model_cls.presets
    if preset not in presets:
        raise ModelNotFoundError(
            f"model {model_type!r} has no preset {preset!r}"
            + did_you_mean(preset, presets)
            + (f"; presets: {', '.join(sorted(presets))}" if presets else "; it has no presets")
        )
    return dict(presets[preset])


def list_models(
    maturity: str | ModelMaturity | None = None, verbose: bool = False
) -> list[str] | dict[str, dict[str, Any]]:
    """Catalog ids (``type:preset``), optionally only those of one maturity.

    Returns:
        a sorted list of ids, or with ``verbose`` a dict id -> catalog entry.
    """
    wanted = None if maturity is None else ModelMaturity.parse(maturity).value
    catalog = {
        model_id: entry
        for model_id, entry in WorldModelRegistry.catalog().items()
        if wanted is None or str(entry.get("maturity", "")).lower() == wanted
    }
    return catalog if verbose else sorted(catalog)


def get_model_info(model: str) -> dict[str, Any]:
    """Catalog data for an id or alias: description, params, type, maturity, presets, aliases,
    and where it comes from (``source``: built-in / plugin:<dist> / project:<root>;
    ``spec_file``)."""
    model_type, preset = WorldModelRegistry.resolve(model)
    model_cls = WorldModelRegistry.get(model_type)
    catalog = WorldModelRegistry.catalog()
    model_id = f"{model_type}:{preset}" if preset else model_type
    entry = catalog.get(model_id)
    if entry is None and preset is not None:
        _preset(model_type, model_cls, preset)  # raises ModelNotFoundError for a bad preset
    if entry is None:
        entry = next((v for k, v in catalog.items() if k.split(":")[0] == model_type), None)
    if entry is None:
        entry = {"type": model_type, "maturity": model_cls.maturity.value}
    info = dict(entry)
    source = source_of(model_type)
    if source is not None:
        info["source"] = source.label
        info["spec_file"] = source.spec_file(model_type)
    info.update(
        {
            "id": model_id,
            "type": model_type,
            "preset": preset,
            "presets": sorted(model_cls.presets),
            "aliases": sorted(
                a for a, t in WorldModelRegistry.aliases().items() if t.split(":")[0] == model_type
            ),
        }
    )
    return info
