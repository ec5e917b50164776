"""What a model declares about itself besides its tensors: its maturity level and capabilities."""

from __future__ import annotations

import enum

from worldflux.core.exceptions import ConfigurationError

__all__ = ["MATURITY_DEFINITIONS", "Capability", "ModelMaturity"]


class ModelMaturity(str, enum.Enum):
    """How much a model promises; each level is an obligation the conformance suite checks
    (:data:`MATURITY_DEFINITIONS` says what each promises, once for every doc)."""

    SKELETON = "skeleton"
    EXPERIMENTAL = "experimental"
    REFERENCE = "reference"

    @property
    def rank(self) -> int:
        """0 for SKELETON, 1 for EXPERIMENTAL, 2 for REFERENCE."""
        return _MATURITY_ORDER.index(self)

    @classmethod
    def parse(cls, value: str | ModelMaturity) -> ModelMaturity:
        """Accept ``"reference"``, ``"REFERENCE"`` or a member."""
        if isinstance(value, ModelMaturity):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ConfigurationError(
                f"unknown maturity {value!r}: expected one of {names}"
            ) from None


_MATURITY_ORDER = (ModelMaturity.SKELETON, ModelMaturity.EXPERIMENTAL, ModelMaturity.REFERENCE)


class Capability(str, enum.Enum):
    """What a model can do beyond the five-slot interface every model has."""

    LATENT_DYNAMICS = "latent_dynamics"
    OBS_DECODER = "obs_decoder"
    REWARD_PRED = "reward_pred"
    CONTINUE_PRED = "continue_pred"
    VALUE = "value"
    POLICY = "policy"
    PLANNING = "planning"
    GOAL_PLANNING = "goal_planning"
    REPRESENTATION = "representation"
    GENERATIVE = "generative"


#: The one definition of each level. The spec schema's ``maturity`` description (and so
#: docs/spec-reference.md) and docs/families.md quote these sentences verbatim (a test keeps them
#: equal); the clause-by-clause obligations are docs/conformance.md's table.
MATURITY_DEFINITIONS: dict[ModelMaturity, str] = {
    ModelMaturity.SKELETON: (
        "builds from every preset and honours its I/O contract on valid inputs; honest "
        "minimal logic, no performance or fidelity goal"
    ),
    ModelMaturity.EXPERIMENTAL: (
        "everything SKELETON promises, and trains: contract errors on bad inputs, rollout "
        "equal to repeated transitions, batch independence, seeded determinism, no input "
        "mutation, gradients to every parameter, learning on one batch, save/load round trip"
    ),
    ModelMaturity.REFERENCE: (
        "everything EXPERIMENTAL promises, and proven equal to the published implementation: "
        "exact parameter counts, golden outputs (parity) and working slot swaps"
    ),
}
