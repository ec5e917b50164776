"""Core contracts: WorldModel, registry, I/O contract, tensor containers, errors."""

from worldflux.core.components import (
    ActionConditioner,
    BuildContext,
    Decoder,
    DynamicsModel,
    Objective,
    ObservationEncoder,
    Planner,
    RolloutExecutor,
)
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import (
    CapabilityError,
    CheckpointError,
    ConfigurationError,
    ContractViolation,
    ModelNotFoundError,
    ShapeMismatchError,
    SpecError,
    WorldFluxError,
)
from worldflux.core.model import SpecWorldModel, WorldModel
from worldflux.core.registry import WorldModelRegistry, register_component
from worldflux.core.spec import ActionSpec, Capability, ModelIOContract, ModelMaturity, TensorSpec
from worldflux.core.types import Batch, LossOutput, ModelOutput, State, Trajectory

__all__ = [
    "ActionConditioner",
    "ActionSpec",
    "Batch",
    "BuildContext",
    "Capability",
    "CapabilityError",
    "CheckpointError",
    "ConfigurationError",
    "ContractViolation",
    "Decoder",
    "DynamicsModel",
    "LossOutput",
    "ModelIOContract",
    "ModelMaturity",
    "ModelNotFoundError",
    "ModelOutput",
    "Objective",
    "ObservationEncoder",
    "Planner",
    "RolloutExecutor",
    "ShapeMismatchError",
    "SpecError",
    "SpecWorldModel",
    "State",
    "TensorSpec",
    "Trajectory",
    "WorldFluxError",
    "WorldModel",
    "WorldModelConfig",
    "WorldModelRegistry",
    "register_component",
]
