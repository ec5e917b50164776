"""``worldflux conformance``: run, list-checks, explain, replay.

Exit codes: 0 every target conformant at its declared (or ``--level``) maturity; 1 a conformance
failure (a MUST failed, declared > achieved, a SHOULD under ``--strict``, a replayed failure);
2 a usage, spec or import error. This module only builds the parser (cheap: ``worldflux
conformance --help`` loads neither torch nor hypothesis); worldflux.conformance.command runs it.
"""

from __future__ import annotations

import argparse

LEVEL_CHOICES = ("skeleton", "experimental", "reference")
PROFILE_CHOICES = ("dev", "ci", "thorough")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _size(text: str) -> int:
    """``8G`` / ``512M`` / ``1000000`` -> bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    text = text.strip().upper().removesuffix("B")
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        return int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 8G, 512M)") from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``run`` / ``list-checks`` / ``explain`` / ``replay`` subcommands."""
    sub = parser.add_subparsers(dest="conformance_command", required=True, metavar="ACTION")
    run_p = sub.add_parser(
        "run",
        help="check targets against their contract and maturity",
        description="Check registered models (id or alias), or external ones "
        "(package.module:attr naming a WorldModel class, a factory or an instance).",
    )
    run_p.add_argument("targets", nargs="*", metavar="TARGET", help="id, alias or module:attr")
    run_p.add_argument("--all", action="store_true", help="every registered model type")
    run_p.add_argument("--spec", metavar="FILE", help="contract and maturity of an external target")
    run_p.add_argument("--level", choices=LEVEL_CHOICES, help="check against this level")
    run_p.add_argument("--checks", type=_csv, metavar="IDS", help="only these ids/prefixes")
    run_p.add_argument("--exclude-checks", type=_csv, metavar="IDS", help="skip these ids/prefixes")
    run_p.add_argument("--profile", choices=PROFILE_CHOICES, default="dev")
    run_p.add_argument("--seed", type=int, help="run seed (random for dev/thorough; reported)")
    run_p.add_argument("--max-examples", type=int, metavar="N", help="examples of a cheap check")
    run_p.add_argument("--time-budget", type=float, metavar="S", help="seconds per cheap check")
    run_p.add_argument("--report", type=_csv, default=[], metavar="FMTS", help="json,junit,md")
    run_p.add_argument("--report-dir", metavar="DIR", help="where reports and crash files go")
    run_p.add_argument("--strict", action="store_true", help="SHOULD failures are errors")
    run_p.add_argument(
        "--isolate",
        action="store_true",
        help="one subprocess per check (untrusted targets); default: one per target",
    )
    run_p.add_argument(
        "--in-process", action="store_true", help="no subprocesses (debuggers, profilers)"
    )
    run_p.add_argument(
        "--memory-limit",
        type=_size,
        metavar="SIZE",
        help="address-space limit of each subprocess, e.g. 8G (exceeding it fails the check)",
    )
    run_p.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="intra-op torch threads during the run (default 1; 0 keeps torch's default)",
    )
    listing = sub.add_parser("list-checks", help="print the check x maturity obligation matrix")
    listing.add_argument("--level", choices=LEVEL_CHOICES, help="only checks that apply here")
    listing.add_argument(
        "--target", help="the effective matrix of one target (its level, capability gates)"
    )
    listing.add_argument("--spec", metavar="FILE", help="spec of an external --target")
    explain = sub.add_parser("explain", help="the clause, obligations and a passing example")
    explain.add_argument("check_id", metavar="ID")
    replay = sub.add_parser("replay", help="re-run a saved falsifying input")
    replay.add_argument("file", metavar="FILE", help="a crash file printed by a failed run")
    replay.add_argument("--target", help="re-resolve the target by this id / import path")
