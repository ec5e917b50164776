"""The parser of ``worldflux generate`` / ``python -m worldflux.codegen`` (cheap: argparse only;
worldflux.codegen.command runs the generator)."""

from __future__ import annotations

import argparse

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the generator's options to ``parser`` (cheap: imports nothing heavy)."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff when generated files are stale (CI)",
    )
    mode.add_argument(
        "--dry-run", action="store_true", help="write nothing; list what would change"
    )
    parser.add_argument(
        "--root",
        default=None,
        help="the worldflux project (default: the one holding the current directory, found "
        "by walking up to a directory with specs/models/ or [tool.worldflux] in pyproject.toml)",
    )
