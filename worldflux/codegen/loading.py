"""Import a generated tree that is not the installed ``worldflux.generated`` (tests, other roots).

Generated modules import each other relatively (``from ..configs.x import XConfig``), so any
generated directory can be imported under a fresh package name. The implementation lives with
the model sources (:mod:`worldflux.discovery.sources`), which import a project's package so.
"""

from __future__ import annotations

from worldflux.discovery.sources import import_generated, unload_generated

__all__ = ["import_generated", "unload_generated"]
