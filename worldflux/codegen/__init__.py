"""The generator: specs/models/*.yaml -> generated/ (configs, models, catalog) and docs.

``render(specs, root)`` is pure (in-memory ``{path: text}``); ``sync`` compares it with the tree and
writes atomically, checks (``--check``: unified diff + fix command) or dry-runs. Run it with
``nox -s generate``, ``python -m worldflux.codegen`` or ``worldflux generate``.
"""

from __future__ import annotations

from worldflux.lazy import lazy_exports

# Lazy re-exports: `worldflux --help` imports worldflux.codegen.cli, which must not pull in
# jinja2 / jsonschema / ruamel through this package's __init__.
__getattr__ = lazy_exports(
    "worldflux.codegen",
    {
        "REGENERATE_COMMAND": "rendering",
        "catalog_data": "rendering",
        "header_for": "rendering",
        "render": "rendering",
        "Plan": "sync",
        "apply": "sync",
        "check_report": "sync",
        "dry_run_report": "sync",
        "plan": "sync",
    },
)

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
