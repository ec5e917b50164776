"""worldflux projects: a directory whose ``specs/models/*.yaml`` declare models.

A project is found like git finds a repository: walk up from the current directory to the first
directory that has a ``pyproject.toml`` with a ``[tool.worldflux]`` table or a ``specs/models/``
directory. ``[tool.worldflux]`` may set:

``specs``      the specs directory (default ``"specs"``; models in ``<specs>/models/*.yaml``)
``generated``  where ``worldflux generate`` writes the generated package (default ``"generated"``)
``package``    the import name of that package when it is importable (e.g. ``"mypkg.generated"``
               in a plugin); by default it is imported from its directory
``imports``    modules imported before the models are built (your own slot implementations)
``path``       directories put on ``sys.path`` for ``imports`` and ``package`` (default ``["."]``;
               ``["src"]`` for a src layout)
``builtin``    true only in worldflux's own tree (its models are the built-in ones)

Stdlib only: discovery runs before anything heavy is imported.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldflux.core.exceptions import SpecError, did_you_mean

__all__ = ["CONFIG_KEYS", "Project", "find_project", "load_project"]

#: Every key ``[tool.worldflux]`` accepts, with its type.
CONFIG_KEYS: dict[str, type] = {
    "specs": str,
    "generated": str,
    "package": str,
    "imports": list,
    "path": list,
    "builtin": bool,
}


@dataclass(frozen=True)
class Project:
    """A worldflux project on disk.

    Attributes:
        root: the directory holding ``pyproject.toml`` and/or ``specs/``.
        specs_dir: ``root / specs`` (models in ``specs_dir / "models"``).
        generated_dir: where the generated package lives.
        package: the generated package's import name, or None (imported from its directory).
        imports: modules to import before building models (custom slot implementations).
        path: directories put on ``sys.path`` for ``imports`` and ``package``.
        builtin: True for worldflux's own tree.
    """

    root: Path
    specs_dir: Path
    generated_dir: Path
    package: str | None = None
    imports: tuple[str, ...] = field(default_factory=tuple)
    path: tuple[Path, ...] = field(default_factory=tuple)
    builtin: bool = False

    @property
    def models_dir(self) -> Path:
        return self.specs_dir / "models"

    def spec_files(self) -> list[Path]:
        """``<specs>/models/*.yaml`` (and ``.yml``, which the loader reports), sorted by name."""
        if not self.models_dir.is_dir():
            return []
        return sorted(
            p for p in self.models_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        )

    def add_to_sys_path(self) -> None:
        """Put the project's ``path`` directories first on ``sys.path`` (once)."""
        for directory in reversed(self.path):
            if str(directory) not in sys.path:
                sys.path.insert(0, str(directory))

    def import_modules(self) -> None:
        """Import ``imports`` (custom slot implementations register on import), with the
        project's ``path`` on ``sys.path``.

        Raises:
            SpecError: a module that does not import, naming it and the pyproject key.
        """
        if self.imports:
            self.add_to_sys_path()
        for module in self.imports:
            try:
                importlib.import_module(module)
            except Exception as error:
                raise SpecError(
                    f"{self.root / 'pyproject.toml'}: [tool.worldflux] imports: {module!r} "
                    f"failed to import: {type(error).__name__}: {error}"
                ) from error

    def display(self, path: Path) -> str:
        """``path`` relative to the project root (POSIX), for messages and generated headers."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()


def _tool_table(pyproject: Path) -> dict[str, Any] | None:
    """``[tool.worldflux]`` of ``pyproject`` (None when absent).

    Raises:
        SpecError: the file is not valid TOML, or the table has unknown or mistyped keys.
    """
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SpecError(f"{pyproject}: cannot read [tool.worldflux]: {error}") from None
    table = data.get("tool", {}).get("worldflux")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise SpecError(f"{pyproject}: [tool.worldflux] must be a table")
    for key, value in table.items():
        expected = CONFIG_KEYS.get(key)
        if expected is None:
            raise SpecError(
                f"{pyproject}: [tool.worldflux]: unknown key {key!r}"
                + did_you_mean(key, CONFIG_KEYS)
            )
        is_list_of_str = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not (is_list_of_str if expected is list else isinstance(value, expected)):
            wanted = "a list of strings" if expected is list else expected.__name__
            raise SpecError(
                f"{pyproject}: [tool.worldflux] {key}: expected {wanted}, found {value!r}"
            )
    return table


def load_project(root: str | os.PathLike[str]) -> Project:
    """The project rooted at ``root`` (``[tool.worldflux]`` of its pyproject.toml, if any).

    Raises:
        SpecError: bad configuration.
    """
    base = Path(root).resolve()
    pyproject = base / "pyproject.toml"
    table = (_tool_table(pyproject) if pyproject.is_file() else None) or {}
    return Project(
        root=base,
        specs_dir=base / table.get("specs", "specs"),
        generated_dir=base / table.get("generated", "generated"),
        package=table.get("package"),
        imports=tuple(table.get("imports", ())),
        path=tuple(base / entry for entry in table.get("path", ["."])),
        builtin=bool(table.get("builtin", False)),
    )


def _is_project_root(directory: Path) -> bool:
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file() and "[tool.worldflux]" in pyproject.read_text(
        encoding="utf-8", errors="replace"
    ):
        return True
    return (directory / "specs" / "models").is_dir()


def find_project(start: str | os.PathLike[str] | None = None) -> Project | None:
    """The project holding ``start`` (default: the current directory), walking up; None if none."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for directory in (here, *here.parents):
        try:
            if _is_project_root(directory):
                return load_project(directory)
        except OSError:  # an unreadable directory on the way up: keep looking above it
            continue
    return None
