"""Import a generated tree that is not the installed ``worldflux.generated`` (tests, other roots).

Generated modules import each other relatively (``from ..configs.x import XConfig``), so any
``generated/`` directory can be imported under a fresh package name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["import_generated", "unload_generated"]


def import_generated(generated_dir: Path, package: str) -> ModuleType:
    """Import ``generated_dir`` as the package ``package`` (registering its models).

    Raises:
        ImportError: ``package`` is already imported, or the directory is not a package.
    """
    if package in sys.modules:
        raise ImportError(f"package {package!r} is already imported")
    init = generated_dir / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        package, init, submodule_search_locations=[str(generated_dir)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"{generated_dir} is not an importable package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        unload_generated(package)
        raise
    return module


def unload_generated(package: str) -> None:
    """Forget ``package`` and its submodules (the caller unregisters the model types)."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
