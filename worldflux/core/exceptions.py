"""The worldflux error hierarchy.

Every error a user can meet derives from :class:`WorldFluxError`, carries a stable ``code`` (for
scripts and docs) and a message that states what was expected and what was found.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CapabilityError",
    "CheckpointError",
    "ConfigurationError",
    "ContractViolation",
    "ModelNotFoundError",
    "ShapeMismatchError",
    "SpecError",
    "WorldFluxError",
    "did_you_mean",
]


def did_you_mean(name: str, candidates: Iterable[str], *, limit: int = 3) -> str:
    """Return a ``"; did you mean 'x'?"`` suffix for the candidates closest to ``name``.

    When nothing is close and the candidates are few, lists them all instead; returns ``""`` when
    there is nothing useful to say.
    """
    pool = sorted(set(candidates))
    close = difflib.get_close_matches(name, pool, n=limit, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    if 0 < len(pool) <= 8:
        return "; valid names: " + ", ".join(repr(c) for c in pool)
    return ""


class WorldFluxError(Exception):
    """Base class of every worldflux error. ``code`` is stable across releases."""

    code = "WF000"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class ConfigurationError(WorldFluxError, ValueError):
    """A configuration value, registration or override is invalid."""

    code = "WF100"


class SpecError(WorldFluxError, ValueError):
    """A model spec file is invalid. ``issues`` holds every located problem, sorted."""

    code = "WF200"

    def __init__(self, message: str, issues: Iterable[str] = ()) -> None:
        self.issues = list(issues)
        full = message if not self.issues else message + "\n" + "\n".join(self.issues)
        super().__init__(full)


class ContractViolation(WorldFluxError, ValueError):
    """A tensor or output does not honour the model's declared I/O contract."""

    code = "WF300"


class ShapeMismatchError(ContractViolation):
    """A tensor's shape differs from the shape its contract declares."""

    code = "WF301"


class CapabilityError(WorldFluxError, NotImplementedError):
    """The model does not declare the capability an operation needs."""

    code = "WF400"


class ModelNotFoundError(WorldFluxError, KeyError):
    """No registered model, preset or alias has the requested id."""

    code = "WF500"

    def __str__(self) -> str:  # KeyError would repr() the message
        return f"[{self.code}] {self.message}"


class CheckpointError(WorldFluxError, OSError):
    """A checkpoint is missing, corrupt, or does not match the model it is loaded into."""

    code = "WF600"
