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
from safetensors import safe_open
from torch import Tensor

from worldflux.core.exceptions import CheckpointError, ConfigurationError, did_you_mean
from worldflux.core.registry import WorldModelRegistry, ensure_components

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
    """One recomputed output against its golden value.

    The pass criterion is element-wise (``torch.allclose`` semantics): every element must satisfy
    ``|ours - golden| <= atol + rtol * |golden|`` (plus an optional per-element extra allowance).
    ``worst_ratio`` is the largest ``|d| / allowance`` over the tensor (``<= 1`` passes) and
    ``worst_index`` where it occurs; ``max_abs`` / ``max_rel`` are reported for information only.
    A row built without a comparison (``worst_ratio`` left at ``inf``) fails.
    """

    name: str
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    shape: tuple[int, ...] = ()
    note: str = ""
    worst_ratio: float = math.inf
    worst_index: tuple[int, ...] = ()

    @property
    def passed(self) -> bool:
        return math.isfinite(self.max_abs) and self.worst_ratio <= 1.0

    def summary(self) -> str:
        """One line: worst ratio and where, the max errors and the tolerances."""
        where = "[" + ", ".join(str(i) for i in self.worst_index) + "]"
        return (
            f"{self.name}: worst |d|/(atol+rtol|ref|) {self.worst_ratio:.3g} at {where}, "
            f"max_abs {self.max_abs:.3g}, max_rel {self.max_rel:.3g} "
            f"(atol {self.atol:g}, rtol {self.rtol:g}) {self.note}"
        ).rstrip()


def compare(
    name: str,
    ours: Tensor,
    golden: Tensor,
    atol: float,
    rtol: float,
    note: str = "",
    *,
    extra: Tensor | None = None,
) -> ParityRow:
    """Element-wise comparison of ``ours`` against ``golden`` (shapes must agree).

    The allowance per element is ``atol + rtol * |golden| (+ extra)``, with ``extra`` an optional
    non-negative tensor broadcastable to the golden's shape (e.g. a scale-aware rule per row).
    Computed in float64. An element with allowance 0 passes only when it is exactly equal.
    This is the one comparison every parity check (the families' handlers, ``worldflux parity
    check`` and the conformance parity check) goes through.
    """
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
    ours64, gold64 = ours.detach().double().cpu(), golden.detach().double().cpu()
    shape = tuple(golden.shape)
    if ours64.numel() == 0:
        return ParityRow(name, 0.0, 0.0, atol, rtol, shape, note, 0.0, ())
    diff = (ours64 - gold64).abs()
    allowance = atol + rtol * gold64.abs()
    if extra is not None:
        allowance = allowance + extra.detach().double().cpu()
    allowance = allowance.expand_as(diff)
    ratio = torch.where(
        allowance > 0, diff / allowance.clamp_min(1e-300), torch.where(diff > 0, math.inf, 0.0)
    )
    ratio = torch.where(torch.isfinite(ours64) & torch.isfinite(gold64), ratio, math.inf)
    flat = int(torch.argmax(torch.nan_to_num(ratio, nan=math.inf)))
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), shape)) if shape else ()
    max_abs = float(diff.max())
    max_rel = float((diff / gold64.abs().clamp_min(1e-12)).max())
    if not torch.isfinite(ours64).all():
        max_abs = max_rel = math.inf
    worst = float(ratio.reshape(-1)[flat])
    return ParityRow(name, max_abs, max_rel, atol, rtol, shape, note, worst, index)


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
    ensure_components()  # the families register their parity handlers on import

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
