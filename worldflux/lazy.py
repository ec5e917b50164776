"""Lazy package re-exports: a module ``__getattr__`` that imports a name's submodule on first use.

Packages whose public names live in submodules with heavy imports (jinja2, Hypothesis, Gymnasium)
re-export them through :func:`lazy_exports`, so importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package`` that resolves ``name`` from its submodule
    ``exports[name]`` (relative to ``package``, e.g. ``"sync"``) when first accessed.

    Unknown names raise AttributeError, as a module attribute lookup does.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
