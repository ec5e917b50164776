"""``worldflux models list [PATTERN ...]`` and ``worldflux models info ID``.

``list`` reads the generated catalogs of every source (built-in, plugins, the current project)
without importing torch, so it answers in a fraction of a second.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import sys
from typing import Any

import worldflux
from worldflux.discovery.sources import catalog_entries

__all__ = ["configure", "filter_catalog", "format_table", "run", "short_description"]

#: Columns of ``models list``: header, catalog key.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("ID", "id"),
    ("MATURITY", "maturity"),
    ("PARAMS", "params"),
    ("SOURCE", "source"),
    ("ALIASES", "aliases"),
    ("DESCRIPTION", "description"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    """``models list [PATTERN ...] [--json] [--maturity M]``, ``models info ID``."""
    sub = parser.add_subparsers(dest="models_command", required=True)
    listing = sub.add_parser(
        "list",
        help="list catalog ids (with where each model comes from)",
        description="List catalog ids. PATTERNs are shell globs matched against ids, model "
        "types and aliases, e.g. 'tdmpc2*' or '*:ci'.",
    )
    listing.add_argument("patterns", nargs="*", metavar="PATTERN", help="glob filter(s)")
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    listing.add_argument("--maturity", choices=["reference", "experimental", "skeleton"])
    info = sub.add_parser("info", help="catalog data of one id or alias")
    info.add_argument("model", help="id (type or type:preset) or alias")


def short_description(text: str, width: int = 60) -> str:
    """The description without its ``Name (MATURITY):`` lead (the table has those columns), up to
    its first ``:``/``;``/sentence end, cut to ``width`` characters."""
    body = re.sub(r"^[^:;(]{0,40}\((?:REFERENCE|EXPERIMENTAL|SKELETON)\)[:,]?\s*", "", text.strip())
    head = re.split(r"[:;]\s|\.\s", " ".join(body.split()), maxsplit=1)[0]
    return head if len(head) <= width else head[: width - 1].rstrip() + "…"


def _human(count: Any) -> str:
    if not isinstance(count, int):
        return "?"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.3g}{suffix}"
    return str(count)


def filter_catalog(
    catalog: dict[str, dict[str, Any]], patterns: list[str], maturity: str | None = None
) -> dict[str, dict[str, Any]]:
    """Entries whose id, type or an alias matches any glob in ``patterns`` (all when none)."""

    def matches(model_id: str, entry: dict[str, Any]) -> bool:
        names = [model_id, str(entry.get("type", "")), *entry.get("aliases", [])]
        return not patterns or any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)

    return {
        model_id: entry
        for model_id, entry in catalog.items()
        if matches(model_id, entry)
        and (maturity is None or str(entry.get("maturity", "")).lower() == maturity)
    }


def format_table(catalog: dict[str, dict[str, Any]], width: int | None = None) -> str:
    """An aligned table with a header (descriptions shortened to fit ``width``)."""
    rows = []
    for model_id, entry in catalog.items():
        rows.append(
            {
                "id": model_id,
                "maturity": str(entry.get("maturity", "?")),
                "params": _human(entry.get("params")),
                "source": str(entry.get("source", "?")),
                "aliases": ",".join(entry.get("aliases", [])) or "-",
                "description": str(entry.get("description", "")),
            }
        )
    widths = {key: max([len(h), *(len(r[key]) for r in rows)]) for h, key in COLUMNS}
    fixed = sum(widths[key] + 2 for _, key in COLUMNS[:-1])
    total = width if width is not None else shutil.get_terminal_size((120, 24)).columns
    room = max(24, total - fixed)
    header = {key: h for h, key in COLUMNS}

    def line(row: dict[str, str], description: str) -> str:
        cells = [
            row[key].rjust(widths[key]) if key == "params" else row[key].ljust(widths[key])
            for _, key in COLUMNS[:-1]
        ]
        return "  ".join([*cells, description]).rstrip()

    lines = [line(header, "DESCRIPTION")]
    lines += [line(row, short_description(row["description"], room)) for row in rows]
    return "\n".join(lines)


def _all_entries() -> dict[str, dict[str, Any]]:
    """Every source's catalog, plus models registered by hand in this process (``python``)."""
    entries = catalog_entries()
    registry = sys.modules.get("worldflux.core.registry")  # imported only if something registered
    if registry is not None:
        for model_id, entry in registry.WorldModelRegistry.registered_entries().items():
            entries.setdefault(model_id, {**entry, "source": entry.get("source", "python")})
    return dict(sorted(entries.items()))


def run(args: argparse.Namespace) -> int:
    if args.models_command == "list":
        catalog = filter_catalog(_all_entries(), args.patterns, args.maturity)
        if args.json:
            print(json.dumps(catalog, indent=2, sort_keys=True, default=str))
            return 0
        if not catalog:
            wanted = " ".join(args.patterns) or "any pattern"
            print(f"no models match {wanted}")
            return 0 if not args.patterns else 1
        print(format_table(catalog))
        return 0
    info = worldflux.get_model_info(args.model)
    print(json.dumps(info, indent=2, sort_keys=True, default=str))
    return 0
