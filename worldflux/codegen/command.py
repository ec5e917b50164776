"""``worldflux generate`` / ``python -m worldflux.codegen``: render specs, then write, ``--check``
or ``--dry-run`` (the parser is worldflux.codegen.cli).

Exit codes: 0 done (or up to date), 1 ``--check`` found stale, missing or orphan files,
2 a spec or tool problem (every problem listed as ``path:line:col: <json path>: <message>``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from worldflux.codegen.cli import configure
from worldflux.codegen.rendering import render
from worldflux.codegen.sync import apply, check_report, dry_run_report, plan
from worldflux.codegen.verify import shadowing_issues, verify_param_counts
from worldflux.core.exceptions import WorldFluxError
from worldflux.discovery.project import load_project
from worldflux.speclang import find_root, load_specs
from worldflux.speclang.issues import raise_if_any

__all__ = ["main", "run"]


def run(args: argparse.Namespace) -> int:
    """Run the generator; returns the exit code (spec errors raise SpecError -> exit 2)."""
    root = find_root(args.root).resolve()  # a relative --root works from any directory
    load_project(root).import_modules()  # the project's own slot implementations, if any
    specs = load_specs(root)
    raise_if_any(shadowing_issues(specs, load_project(root)), "specs")
    files = render(specs, root)
    verify_param_counts(specs, files, root)  # the catalog never shows an unchecked number
    result = plan(root, files)
    if args.check:
        if result.clean:
            print(f"generated files are up to date ({len(files)} files, {len(specs)} specs)")
            return 0
        sys.stdout.write(check_report(result))
        return 1
    if args.dry_run:
        sys.stdout.write(dry_run_report(result))
        return 0
    lines = apply(result)
    for line in lines:
        print(line)
    print(
        f"{len(lines)} change(s); {len(files)} generated files from {len(specs)} spec(s)"
        if lines
        else f"generated files are up to date ({len(files)} files, {len(specs)} specs)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m worldflux.codegen``; a bad spec exits 2 with located errors, no traceback."""

    parser = argparse.ArgumentParser(
        prog="python -m worldflux.codegen",
        description="Generate model classes, configs, catalog and docs from specs/.",
    )
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except WorldFluxError as error:
        print(f"worldflux generate: error: {error}", file=sys.stderr)
        return 2
