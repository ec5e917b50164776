"""Deterministic Python literals for generated code (ruff reflows them afterwards)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from worldflux.core.exceptions import ConfigurationError

__all__ = ["py_literal", "sorted_tree"]


def py_literal(value: Any) -> str:
    """A Python literal for plain data (dict order is kept: sort first with :func:`sorted_tree`).

    Raises:
        ConfigurationError: a value with no literal (NaN, infinity, objects).
    """
    if value is None or isinstance(value, bool | int | str):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigurationError(
                f"cannot write {value!r} into generated code; use a finite number"
            )
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        inner = ", ".join(py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    raise ConfigurationError(f"cannot write a {type(value).__name__} into generated code")


def sorted_tree(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (lists keep their order)."""
    if isinstance(value, Mapping):
        return {k: sorted_tree(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_tree(v) for v in value]
    return value
