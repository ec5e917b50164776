"""``WorldModelConfig``: the pydantic base of every model's typed config.

Generated config classes (``generated/configs/<type>.py``) subclass it and add the spec's
hyperparameters. Unknown fields are rejected with a "did you mean"; invalid values raise one
:class:`ConfigurationError` listing every problem.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from worldflux.core.exceptions import ConfigurationError, did_you_mean

__all__ = ["WorldModelConfig", "format_validation_error"]


def format_validation_error(error: ValidationError, owner: str) -> str:
    """One line per pydantic error: ``owner.field: message (found value)``."""
    lines = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item.get("loc", ())) or "<root>"
        found = item.get("input")
        lines.append(f"{owner}.{loc}: {item.get('msg')} (found {found!r})")
    return "\n".join(lines)


class WorldModelConfig(BaseModel):
    """Base config: environment facts shared by every model plus the model's hyperparameters.

    Attributes:
        model_type: the registry key of the model this config builds.
        obs_shape: per-sample observation shape, e.g. ``(24,)`` or ``(3, 64, 64)``.
        action_dim: number of action dimensions (continuous) or of discrete actions.
        action_type: ``"continuous"`` or ``"discrete"``.
        objective: overrides of the spec's objective params (``{"lr": 3e-4}``), validated by the
            objective's own params model when the model is built (``--set objective.lr=3e-4``).
        behaviour: overrides of the spec's behaviour params (``{"horizon": 5}``), likewise.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    #: The model type this config class belongs to (set by generated subclasses).
    MODEL_TYPE: ClassVar[str] = ""

    model_type: str = ""
    obs_shape: tuple[PositiveInt, ...] = Field((4,), min_length=1)
    action_dim: PositiveInt = 2
    action_type: Literal["continuous", "discrete"] = "continuous"
    objective: dict[str, Any] = Field(default_factory=dict)
    behaviour: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        known = set(type(self).model_fields)
        unknown = sorted(set(data) - known)
        if unknown:
            owner = type(self).__name__
            problems = [
                f"{owner}: unknown field {name!r}" + did_you_mean(name, known) for name in unknown
            ]
            raise ConfigurationError("\n".join(problems))
        if not data.get("model_type") and type(self).MODEL_TYPE:
            data["model_type"] = type(self).MODEL_TYPE
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise ConfigurationError(format_validation_error(error, type(self).__name__)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        """Assignment is validated like construction (unknown names get a "did you mean")."""
        if not name.startswith("_") and name not in type(self).model_fields:
            raise ConfigurationError(
                f"{type(self).__name__}: unknown field {name!r}"
                + did_you_mean(name, type(self).model_fields)
            )
        try:
            super().__setattr__(name, value)
        except ValidationError as error:
            raise ConfigurationError(format_validation_error(error, type(self).__name__)) from None

    def with_overrides(self, **overrides: Any) -> WorldModelConfig:
        """A validated copy with some fields changed (unknown names get a "did you mean")."""
        return type(self)(**{**self.model_dump(), **overrides})

    def hyperparameters(self) -> dict[str, Any]:
        """The model's own fields, without the environment facts."""
        base = set(WorldModelConfig.model_fields)
        return {k: v for k, v in self.model_dump().items() if k not in base}
