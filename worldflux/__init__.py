"""worldflux: one interface for reinforcement-learning world models, declared in YAML specs.

Quick start:
    >>> import worldflux
    >>> model = worldflux.create_world_model("tdmpc2-ci", obs_shape=(24,), action_dim=6)
    >>> worldflux.list_models()[:3]

Importing the package is cheap (no torch): every public name is imported on first use, and the
models of every source (built-in, ``worldflux.models`` plugins, the project of the current
directory) register on the first registry lookup (see :mod:`worldflux.discovery`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worldflux.core.registry import add_loader
from worldflux.discovery import load_components, load_models
from worldflux.lazy import lazy_exports
from worldflux.version import __version__

_CORE = (
    "Batch",
    "Capability",
    "LossOutput",
    "ModelIOContract",
    "ModelMaturity",
    "ModelOutput",
    "State",
    "Trajectory",
    "WorldFluxError",
    "WorldModel",
    "WorldModelConfig",
    "WorldModelRegistry",
)
_FACTORY = ("MODEL_ALIASES", "MODEL_CATALOG", "create_world_model", "get_model_info", "list_models")

# The registries fill themselves on first use through worldflux.discovery (core imports nothing
# above it); registering the loaders is cheap (no torch, no pydantic).
add_loader("components", load_components)
add_loader("models", load_models)

__getattr__ = lazy_exports(
    "worldflux",
    {
        **dict.fromkeys(_CORE, "core"),
        **dict.fromkeys(_FACTORY, "factory"),
        "tune_cpu_allocator": "runtime",
        "compile_model": "training.compile",
    },
)

if TYPE_CHECKING:
    from worldflux.core import (
        Batch,
        Capability,
        LossOutput,
        ModelIOContract,
        ModelMaturity,
        ModelOutput,
        State,
        Trajectory,
        WorldFluxError,
        WorldModel,
        WorldModelConfig,
        WorldModelRegistry,
    )
    from worldflux.factory import (
        MODEL_ALIASES,
        MODEL_CATALOG,
        create_world_model,
        get_model_info,
        list_models,
    )
    from worldflux.runtime import tune_cpu_allocator
    from worldflux.training.compile import compile_model

__all__ = [
    "MODEL_ALIASES",
    "MODEL_CATALOG",
    "Batch",
    "Capability",
    "LossOutput",
    "ModelIOContract",
    "ModelMaturity",
    "ModelOutput",
    "State",
    "Trajectory",
    "WorldFluxError",
    "WorldModel",
    "WorldModelConfig",
    "WorldModelRegistry",
    "__version__",
    "compile_model",
    "create_world_model",
    "get_model_info",
    "list_models",
    "tune_cpu_allocator",
]
