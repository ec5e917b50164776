"""The worldflux conformance suite: property-test any world model against its declared contract.

Public API (imported lazily so that the pytest plugin stays cheap):

- :func:`check_model` -> :class:`ConformanceReport`
- :func:`parametrize_conformance` (pytest), :class:`WorldModelLike` (the adapter protocol)
- :func:`all_checks`, :func:`get_check`

See docs/conformance.md.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConformanceReport",
    "WorldModelLike",
    "all_checks",
    "check_model",
    "get_check",
    "parametrize_conformance",
]

_LAZY = {
    "check_model": "worldflux.conformance.engine",
    "ConformanceReport": "worldflux.conformance.report",
    "WorldModelLike": "worldflux.conformance.target",
    "all_checks": "worldflux.conformance.registry",
    "get_check": "worldflux.conformance.registry",
    "parametrize_conformance": "worldflux.conformance.pytest_plugin",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'worldflux.conformance' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
