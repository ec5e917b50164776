"""The ``worldflux`` command.

Subcommands live in their own modules, each exposing ``configure(parser)`` and ``run(args) -> int``;
they are imported only when used, so ``worldflux --help`` stays fast. Exit codes: 0 success,
1 a failed check (conformance, parity, generate --check), 2 a usage, spec or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import Any

from worldflux.core.exceptions import WorldFluxError
from worldflux.runtime import tune_cpu_allocator

#: subcommand -> (module implementing configure/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "models": ("worldflux.cli", "list registered models and show their catalog data"),
    "generate": (
        "worldflux.codegen.cli",
        "generate model classes, configs and catalog from specs/",
    ),
    "conformance": ("worldflux.conformance.cli", "property-test models against their contracts"),
    "parity": ("worldflux.parity.cli", "check REFERENCE models against official golden tensors"),
    "train": ("worldflux.training.cli", "train a model on a Gymnasium environment"),
    "plot": ("worldflux.training.plot", "draw learning curves of a training run to PNG"),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``models`` subcommand: ``models list [--json] [--maturity M]``, ``models info ID``."""
    sub = parser.add_subparsers(dest="models_command", required=True)
    listing = sub.add_parser("list", help="list catalog ids")
    listing.add_argument("--json", action="store_true", help="print the catalog as JSON")
    listing.add_argument("--maturity", choices=["reference", "experimental", "skeleton"])
    info = sub.add_parser("info", help="catalog data of one id or alias")
    info.add_argument("model", help="id (type or type:preset) or alias")


def run(args: argparse.Namespace) -> int:
    import worldflux

    if args.models_command == "list":
        catalog: Any = worldflux.list_models(maturity=args.maturity, verbose=True)
        if args.json:
            print(json.dumps(catalog, indent=2, sort_keys=True, default=str))
            return 0
        if not catalog:
            print("no models registered")
            return 0
        width = max(len(k) for k in catalog)
        for model_id, entry in catalog.items():
            print(
                f"{model_id:<{width}}  {entry.get('maturity', '?'):<12}  "
                f"{entry.get('params', '?'):>8}  {entry.get('description', '')}"
            )
        return 0
    info = worldflux.get_model_info(args.model)
    print(json.dumps(info, indent=2, sort_keys=True, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from worldflux import __version__

    parser = argparse.ArgumentParser(
        prog="worldflux",
        description="One interface for reinforcement-learning world models.",
    )
    parser.add_argument("--version", action="version", version=f"worldflux {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        if module != __name__ and not _available(module):
            continue
        try:
            implementation = _load(module)
        except ImportError as error:
            # e.g. `train` without the [train] extra: every other subcommand keeps working
            child = sub.add_parser(name, help=f"{help_text} (unavailable)", add_help=False)
            child.set_defaults(_module=module, _unavailable=f"{type(error).__name__}: {error}")
            continue
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.set_defaults(_module=module)
        implementation.configure(child)
    return parser


def _load(module: str) -> Any:
    return sys.modules[__name__] if module == __name__ else importlib.import_module(module)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``worldflux`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unavailable = getattr(args, "_unavailable", None)
    if extra and not unavailable:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if unavailable:
        print(
            f"worldflux {args.command}: error: this command cannot load ({unavailable}); "
            'install its dependencies, e.g. pip install "worldflux[train]"',
            file=sys.stderr,
        )
        return 2
    tune_cpu_allocator()  # see worldflux.runtime; WORLDFLUX_ALLOCATOR_TUNING=0 opts out
    try:
        return int(_load(args._module).run(args))
    except WorldFluxError as error:
        print(f"worldflux {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
