"""The worldflux conformance suite: property-test any world model against its declared contract.

Public API (imported lazily so that the pytest plugin stays cheap):

- :func:`check_model` -> :class:`ConformanceReport`
- :func:`parametrize_conformance` (pytest), :class:`WorldModelLike` (the adapter protocol)
- :func:`all_checks`, :func:`get_check`

See docs/conformance.md.
"""

from __future__ import annotations

from worldflux.lazy import lazy_exports

__all__ = [
    "ConformanceReport",
    "WorldModelLike",
    "all_checks",
    "check_model",
    "get_check",
    "parametrize_conformance",
]

__getattr__ = lazy_exports(
    "worldflux.conformance",
    {
        "check_model": "engine",
        "ConformanceReport": "report",
        "WorldModelLike": "target",
        "all_checks": "registry",
        "get_check": "registry",
        "parametrize_conformance": "pytest_plugin",
    },
)
