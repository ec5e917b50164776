"""Core contracts: WorldModel, registry, I/O contract, tensor containers, errors."""

from typing import TYPE_CHECKING

from worldflux.lazy import lazy_exports

# Lazy: `import worldflux.core.exceptions` (the CLI, spec loading) must not import torch.
__getattr__ = lazy_exports(
    "worldflux.core",
    {
        "ActionConditioner": "components",
        "ActionSpec": "spec",
        "Batch": "types",
        "BuildContext": "components",
        "Capability": "spec",
        "CapabilityError": "exceptions",
        "CheckpointError": "exceptions",
        "ConfigurationError": "exceptions",
        "ContractViolation": "exceptions",
        "Decoder": "components",
        "DynamicsModel": "components",
        "LossOutput": "types",
        "ModelIOContract": "spec",
        "ModelMaturity": "spec",
        "ModelNotFoundError": "exceptions",
        "ModelOutput": "types",
        "Objective": "components",
        "ObservationEncoder": "components",
        "Planner": "components",
        "RolloutExecutor": "components",
        "ShapeMismatchError": "exceptions",
        "SpecError": "exceptions",
        "SpecWorldModel": "spec_model",
        "State": "types",
        "TensorSpec": "spec",
        "Trajectory": "types",
        "WorldFluxError": "exceptions",
        "WorldModel": "model",
        "WorldModelConfig": "config",
        "WorldModelRegistry": "registry",
        "register_component": "registry",
    },
)

if TYPE_CHECKING:
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
    from worldflux.core.model import WorldModel
    from worldflux.core.registry import WorldModelRegistry, register_component
    from worldflux.core.spec import (
        ActionSpec,
        Capability,
        ModelIOContract,
        ModelMaturity,
        TensorSpec,
    )
    from worldflux.core.spec_model import SpecWorldModel
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
