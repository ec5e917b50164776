"""The generator: specs/models/*.yaml -> generated/ (configs, models, catalog) and docs.

``render(specs, root)`` is pure (in-memory ``{path: text}``); ``sync`` compares it with the tree and
writes atomically, checks (``--check``: unified diff + fix command) or dry-runs. Run it with
``nox -s generate``, ``python -m worldflux.codegen`` or ``worldflux generate``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy re-exports: `worldflux --help` imports worldflux.codegen.cli, which must not pull in
# jinja2 / jsonschema / ruamel through this package's __init__.
_EXPORTS = {
    "REGENERATE_COMMAND": "worldflux.codegen.rendering",
    "catalog_data": "worldflux.codegen.rendering",
    "header_for": "worldflux.codegen.rendering",
    "render": "worldflux.codegen.rendering",
    "Plan": "worldflux.codegen.sync",
    "apply": "worldflux.codegen.sync",
    "check_report": "worldflux.codegen.sync",
    "dry_run_report": "worldflux.codegen.sync",
    "plan": "worldflux.codegen.sync",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'worldflux.codegen' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "REGENERATE_COMMAND",
    "Plan",
    "apply",
    "catalog_data",
    "check_report",
    "dry_run_report",
    "header_for",
    "plan",
    "render",
]
