"""Per-sample tensor specs: :class:`TensorSpec` (shape, exact dtype, bounds) and
:class:`ActionSpec` (the action space), each binding its symbols and validating tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from worldflux.core.dims import Dim, resolve_dim, symbols_of
from worldflux.core.exceptions import (
    ConfigurationError,
    ContractViolation,
    ShapeMismatchError,
    did_you_mean,
)
from worldflux.core.numerics import all_finite

__all__ = ["ActionSpec", "TensorSpec", "specs_from"]


_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


@dataclass(frozen=True)
class TensorSpec:
    """Per-sample shape (symbolic until bound), dtype and optional value bounds of one tensor.

    Attributes:
        shape: per-sample dims, without the leading batch/time dims.
        dtype: one of ``float32``, ``float64``, ``float16``, ``bfloat16``, ``int64``, ``int32``,
            ``uint8``, ``bool``, each meaning exactly that dtype; ``"float"`` accepts any
            floating dtype (the model casts).
        low, high: inclusive value bounds, or None.
    """

    shape: tuple[Dim, ...] = ()
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.dtype != "float" and self.dtype not in _DTYPES:
            raise ConfigurationError(
                f"unknown dtype {self.dtype!r}: expected one of float, {', '.join(_DTYPES)}"
            )

    @property
    def is_bound(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype (``float`` maps to float32)."""
        return _DTYPES.get(self.dtype, torch.float32)

    def bind(self, symbols: Mapping[str, Any]) -> TensorSpec:
        """Resolve every symbolic dim; ``"*name"`` splices a tuple symbol such as ``obs_shape``."""
        dims: list[int] = []
        for d in self.shape:
            if isinstance(d, str) and d.startswith("*"):
                name = d[1:]
                value = symbols.get(name)
                if value is None:
                    raise ConfigurationError(
                        f"shape entry {d!r} splices unknown symbol {name!r}"
                        + did_you_mean(name, symbols)
                    )
                if isinstance(value, int | str) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value
                ):
                    raise ConfigurationError(
                        f"shape entry {d!r} splices {name}={value!r}, expected a tuple of ints"
                    )
                dims.extend(int(v) for v in value)
            else:
                dims.append(resolve_dim(d, symbols))
        return replace(self, shape=tuple(dims))

    def symbols(self) -> set[str]:
        """Every symbol the shape refers to."""
        out: set[str] = set()
        for d in self.shape:
            out |= symbols_of(d)
        return out

    def validate(
        self,
        name: str,
        tensor: Any,
        lead: Sequence[int | None] = (),
        lead_names: Sequence[str] = ("B", "T"),
    ) -> None:
        """Check type, dtype, rank, shape (after the ``lead`` dims) and finiteness.

        Args:
            name: the tensor's name in error messages (``"obs"``, ``"batch['actions']"``).
            tensor: the value to check.
            lead: expected leading dims (``None`` = any size), e.g. ``(B,)`` or ``(B, T)``.
            lead_names: how messages call free leading dims (``("B", "H")`` in a rollout).

        Raises:
            ContractViolation / ShapeMismatchError: naming ``name``, expected and found.
        """
        if not isinstance(tensor, torch.Tensor):
            raise ContractViolation(
                f"{name}: expected a torch.Tensor, found {type(tensor).__name__}"
            )
        if not self.is_bound:
            raise ContractViolation(f"{name}: contract is not bound (shape {self.shape})")
        self._check_dtype(name, tensor)
        expected_rank = len(lead) + len(self.shape)
        found = tuple(tensor.shape)
        pretty = _pretty_shape(lead, self.shape, lead_names)
        if tensor.dim() != expected_rank:
            raise ShapeMismatchError(
                f"{name}: expected rank {expected_rank} with shape {pretty}, "
                f"found rank {tensor.dim()} with shape {list(found)}"
            )
        for i, want in enumerate((*lead, *self.shape)):
            if want is not None and found[i] != want:
                raise ShapeMismatchError(
                    f"{name}: expected shape {pretty}, found {list(found)} (dim {i})"
                )
        if tensor.is_floating_point() and not all_finite(tensor):
            raise ContractViolation(f"{name}: expected finite values, found NaN or inf")

    def accepts(self, dtype: torch.dtype) -> bool:
        """The dtype rule: ``float`` accepts any floating dtype (the model casts); every other
        declared dtype is exact (a declared float32 is float32, never float64 or float16)."""
        if self.dtype == "float":
            return dtype.is_floating_point
        return dtype == _DTYPES[self.dtype]

    def _check_dtype(self, name: str, tensor: torch.Tensor) -> None:
        if not self.accepts(tensor.dtype):
            raise ContractViolation(
                f"{name}: expected dtype {self.dtype}, "
                f"found {str(tensor.dtype).removeprefix('torch.')}"
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.low is not None:
            out["low"] = self.low
        if self.high is not None:
            out["high"] = self.high
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(
            shape=tuple(data.get("shape", ())),
            dtype=str(data.get("dtype", "float32")),
            low=data.get("low"),
            high=data.get("high"),
        )


def _pretty_shape(
    lead: Sequence[int | None], shape: Sequence[Dim], names: Sequence[str] = ("B", "T")
) -> str:
    parts = [
        str(d) if d is not None else (names[i] if i < len(names) else "?")
        for i, d in enumerate(lead)
    ]
    return "[" + ", ".join([*parts, *map(str, shape)]) + "]"


@dataclass(frozen=True)
class ActionSpec:
    """The action space: ``continuous`` actions are ``[A]`` floats in ``[low, high]``,
    ``discrete`` actions are int64 indices in ``[0, dim)`` (shape ``[]`` per sample)."""

    kind: Literal["continuous", "discrete"] = "continuous"
    dim: Dim = "action_dim"
    low: float = -1.0
    high: float = 1.0

    def bind(self, symbols: Mapping[str, Any]) -> ActionSpec:
        return replace(self, dim=resolve_dim(self.dim, symbols))

    @property
    def tensor_spec(self) -> TensorSpec:
        """The per-sample tensor spec of one action."""
        if self.kind == "discrete":
            return TensorSpec(shape=(), dtype="int64", low=0, high=None)
        return TensorSpec(shape=(self.dim,), dtype="float", low=self.low, high=self.high)

    def validate(
        self,
        name: str,
        action: Any,
        lead: Sequence[int | None],
        lead_names: Sequence[str] = ("B", "T"),
    ) -> None:
        """Check an action tensor; discrete indices must lie in ``[0, dim)``."""
        self.tensor_spec.validate(name, action, lead, lead_names)
        if self.kind == "discrete" and action.numel():
            low, high = int(action.min()), int(action.max())
            if low < 0 or high >= int(self.dim):
                raise ContractViolation(
                    f"{name}: expected discrete action indices in [0, {self.dim}), "
                    f"found values in [{low}, {high}]"
                )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim, "low": self.low, "high": self.high}


def specs_from(data: Mapping[str, Any] | None) -> dict[str, TensorSpec]:
    return {
        k: v if isinstance(v, TensorSpec) else TensorSpec.from_dict(v)
        for k, v in (data or {}).items()
    }
