"""worldflux: one interface for reinforcement-learning world models, declared in YAML specs.

Quick start:
    >>> import worldflux
    >>> model = worldflux.create_world_model("tdmpc2-ci", obs_shape=(24,), action_dim=6)
    >>> worldflux.list_models()[:3]
"""

from __future__ import annotations

__version__ = "0.1.0"

# Registration order: generic components, family components, generated models, then the catalog.
import worldflux.components
import worldflux.families
import worldflux.generated  # noqa: F401
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
    "create_world_model",
    "get_model_info",
    "list_models",
    "tune_cpu_allocator",
]
