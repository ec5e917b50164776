"""Parity with the official implementations of the REFERENCE models.

Each REFERENCE family registers a :class:`ParityHandler` (``register_parity_handler``) that knows
the official parameter names and layouts (its weight map) and how to recompute every output a
golden file documents. ``load_official`` and ``check_golden`` dispatch on the model type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from worldflux.core.exceptions import CheckpointError, ConfigurationError, did_you_mean

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = [
    "ParityHandler",
    "ParityRow",
    "check_golden",
    "compare",
    "load_official",
    "read_golden",
    "register_parity_handler",
]


@dataclass(frozen=True)
class ParityRow:
    """One recomputed output against its golden value."""

    name: str
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    shape: tuple[int, ...] = ()
    note: str = ""

    @property
    def passed(self) -> bool:
        return math.isfinite(self.max_abs) and (
            self.max_abs <= self.atol or self.max_rel <= self.rtol
        )


def compare(
    name: str, ours: Tensor, golden: Tensor, atol: float, rtol: float, note: str = ""
) -> ParityRow:
    """Max abs / max rel error of ``ours`` against ``golden`` (shapes must agree)."""
    if tuple(ours.shape) != tuple(golden.shape):
        return ParityRow(
            name,
            math.inf,
            math.inf,
            atol,
            rtol,
            tuple(golden.shape),
            f"shape {list(ours.shape)} != golden {list(golden.shape)}",
        )
    ours64, gold64 = ours.detach().double(), golden.detach().double()
    diff = (ours64 - gold64).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    denom = gold64.abs().clamp_min(1e-12)
    max_rel = float((diff / denom).max()) if diff.numel() else 0.0
    if not torch.isfinite(ours64).all():
        max_abs = max_rel = math.inf
    return ParityRow(name, max_abs, max_rel, atol, rtol, tuple(golden.shape), note)


class ParityHandler(Protocol):
    """What a REFERENCE family provides for parity."""

    def load_official(
        self,
        model_id: str,
        state: Mapping[str, Tensor],
        *,
        obs_shape: Sequence[int],
        action_dim: int,
    ) -> WorldModel:
        """Build ``model_id`` and load official weights (all or nothing)."""
        ...

    def check_golden(self, model_id: str, golden: Path) -> list[ParityRow]:
        """Recompute every documented output of ``golden`` with our model."""
        ...


_handlers: dict[str, ParityHandler] = {}


def register_parity_handler(model_type: str, handler: ParityHandler) -> None:
    """Make ``handler`` the parity implementation of ``model_type``."""
    _handlers[model_type] = handler


def _handler(model_id: str) -> ParityHandler:
    import worldflux  # noqa: F401  (registers families and their handlers)
    from worldflux.core.registry import WorldModelRegistry

    model_type, _ = WorldModelRegistry.resolve(model_id)
    handler = _handlers.get(model_type)
    if handler is None:
        raise ConfigurationError(
            f"model {model_type!r} has no parity handler (only REFERENCE families have one)"
            + did_you_mean(model_type, _handlers)
        )
    return handler


def read_golden(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a golden safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such golden file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"{path}: corrupt or unreadable golden ({error})") from None
    return tensors, metadata


def load_official(
    model_id: str,
    path_or_state: str | Path | Mapping[str, Tensor],
    *,
    obs_shape: Sequence[int],
    action_dim: int,
) -> WorldModel:
    """Build ``model_id`` and load official weights from a file or a state mapping.

    Raises:
        CheckpointError: missing, unexpected or mis-shaped entries, named; nothing is half-loaded.
    """
    if isinstance(path_or_state, str | Path):
        state, _ = read_golden(path_or_state)
    else:
        state = dict(path_or_state)
    return _handler(model_id).load_official(
        model_id, state, obs_shape=obs_shape, action_dim=action_dim
    )


def check_golden(model_id: str, golden: str | Path) -> list[ParityRow]:
    """Recompute every documented output of ``golden`` with our ``model_id``."""
    return _handler(model_id).check_golden(model_id, Path(golden))
