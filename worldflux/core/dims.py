"""Symbolic dimensions: ``8``, ``"latent_dim"``, ``"stoch * classes"``, ``"*obs_shape"``.

:func:`resolve_dim` evaluates one against a symbol table with a tiny, safe evaluator (integer
literals, names, ``+ - * //``; nothing else is parsed); :func:`symbols_of` lists the names one
refers to.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from worldflux.core.exceptions import ConfigurationError, did_you_mean

__all__ = ["Dim", "resolve_dim", "symbols_of"]


Dim = int | str
"""One entry of a symbolic shape: an int, a symbol, an expression or ``"*name"`` (a splice)."""

_BINARY_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


def resolve_dim(expr: Dim, symbols: Mapping[str, Any]) -> int:
    """Evaluate one symbolic dimension (``8``, ``"latent_dim"``, ``"stoch * classes"``).

    Raises:
        ConfigurationError: naming the unknown symbol or the malformed expression.
    """
    if isinstance(expr, bool):
        raise ConfigurationError(f"dimension {expr!r} is a bool, expected an int or a symbol")
    if isinstance(expr, int):
        return expr
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ConfigurationError(f"dimension {expr!r} is not a valid expression") from None

    def evaluate(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in symbols:
                raise ConfigurationError(
                    f"dimension {expr!r} uses unknown symbol {node.id!r}"
                    + did_you_mean(node.id, symbols)
                )
            value = symbols[node.id]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(
                    f"symbol {node.id!r} in dimension {expr!r} is {value!r}, expected an int"
                )
            return value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            return _BINARY_OPS[type(node.op)](evaluate(node.left), evaluate(node.right))
        raise ConfigurationError(f"dimension {expr!r}: only ints, symbols and + - * // are allowed")

    try:
        value = evaluate(tree)
    except ZeroDivisionError:
        raise ConfigurationError(f"dimension {expr!r} divides by zero") from None
    if value < 0:
        raise ConfigurationError(f"dimension {expr!r} resolves to {value}, expected >= 0")
    return value


def symbols_of(expr: Dim) -> set[str]:
    """The symbol names a dimension refers to (``"*obs_shape"`` refers to ``obs_shape``)."""
    if isinstance(expr, int):
        return set()
    text = expr[1:] if expr.startswith("*") else expr
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
