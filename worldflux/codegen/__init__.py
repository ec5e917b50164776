"""The generator: specs/models/*.yaml -> generated/ (configs, models, catalog) and docs.

``render(specs, root)`` is pure (in-memory ``{path: text}``); ``sync`` compares it with the tree and
writes atomically, checks (``--check``: unified diff + fix command) or dry-runs. Run it with
``nox -s generate``, ``python -m worldflux.codegen`` or ``worldflux generate``.
"""

from worldflux.codegen.render import REGENERATE_COMMAND, catalog_data, header_for, render
from worldflux.codegen.sync import Plan, apply, check_report, dry_run_report, plan

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
