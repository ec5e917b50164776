"""Errors raised by the training stack (all :class:`~worldflux.core.exceptions.WorldFluxError`)."""

from __future__ import annotations

from worldflux.core.exceptions import WorldFluxError

__all__ = ["NonFiniteError", "ReplayError", "TrainingError"]


class TrainingError(WorldFluxError, RuntimeError):
    """A training run cannot go on (bad configuration of the run, missing state, ...)."""

    code = "WF700"


class NonFiniteError(TrainingError):
    """A loss or a gradient is NaN/inf; the update was not applied (the last good state is kept)."""

    code = "WF701"


class ReplayError(TrainingError, ValueError):
    """A replay buffer was misused (wrong shapes, too little data to sample, bad file)."""

    code = "WF702"
