"""The ``worldflux`` command.

A subcommand is two modules: its parser (``configure(parser)``, cheap: argparse only) and its
implementation (``run(args) -> int``, which imports what it needs at its top). Only the chosen
subcommand's parser is imported, and its implementation only when it runs, so ``worldflux
--help`` and ``worldflux COMMAND --help`` stay fast without imports hidden inside functions.
Exit codes: 0 success, 1 a failed check (conformance, parity, generate --check), 2 a usage, spec
or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from worldflux.core.exceptions import WorldFluxError
from worldflux.runtime import tune_cpu_allocator
from worldflux.version import __version__

#: subcommand -> (parser module: configure, implementation module: run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "models": (
        "worldflux.models_cli",
        "worldflux.models_cli",
        "list registered models and show their catalog data",
    ),
    "generate": (
        "worldflux.codegen.cli",
        "worldflux.codegen.command",
        "generate model classes, configs and catalog from specs/",
    ),
    "conformance": (
        "worldflux.conformance.cli",
        "worldflux.conformance.command",
        "property-test models against their contracts",
    ),
    "parity": (
        "worldflux.parity.cli",
        "worldflux.parity.cli",
        "check REFERENCE models against official golden tensors",
    ),
    "train": (
        "worldflux.training.cli",
        "worldflux.training.command",
        "train a model on a Gymnasium environment or a dataset",
    ),
    "dataset": (
        "worldflux.datasets.cli",
        "worldflux.datasets.command",
        "record and inspect offline episode datasets",
    ),
    "eval": (
        "worldflux.evaluation.cli",
        "worldflux.evaluation.command",
        "open-loop prediction error of a trained model",
    ),
    "plot": (
        "worldflux.training.plot",
        "worldflux.training.plot",
        "draw learning curves of a training run to PNG",
    ),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), else None."""
    return next((word for word in argv if word in SUBCOMMANDS), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported and configured (``--help`` stays cheap:
    the other subcommands are listed by name and help line only)."""
    parser = argparse.ArgumentParser(
        prog="worldflux",
        description="One interface for reinforcement-learning world models.",
    )
    parser.add_argument("--version", action="version", version=f"worldflux {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (parser_module, run_module, help_text) in SUBCOMMANDS.items():
        if name != command:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        try:
            if not _available(parser_module):
                raise ImportError(f"module {parser_module} is not installed")
            configure = importlib.import_module(parser_module).configure
        except ImportError as error:
            # e.g. `train` without the [train] extra: every other subcommand keeps working
            child = sub.add_parser(name, help=f"{help_text} (unavailable)", add_help=False)
            child.set_defaults(_unavailable=f"{type(error).__name__}: {error}")
            continue
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.set_defaults(_run_module=run_module)
        configure(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``worldflux`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_chosen(words))
    args, extra = parser.parse_known_args(words)
    unavailable = getattr(args, "_unavailable", None)
    implementation = None
    if not unavailable:
        try:  # the implementation loads only now, after --help has had its chance
            implementation = importlib.import_module(args._run_module)
        except ImportError as error:
            unavailable = f"{type(error).__name__}: {error}"
    if extra and not unavailable:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if unavailable:
        print(
            f"worldflux {args.command}: error: this command cannot load ({unavailable}); "
            'install its dependencies, e.g. pip install "worldflux[train]"',
            file=sys.stderr,
        )
        return 2
    assert implementation is not None
    tune_cpu_allocator()  # see worldflux.runtime; WORLDFLUX_ALLOCATOR_TUNING=0 opts out
    try:
        return int(implementation.run(args))
    except WorldFluxError as error:
        print(f"worldflux {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `worldflux models list | head`: the reader is gone; say nothing more (and let the
        # interpreter's final flush of stdout go nowhere instead of raising again)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
