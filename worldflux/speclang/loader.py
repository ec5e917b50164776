"""Find, parse and validate spec files; every problem is reported at once, located and sorted."""

from __future__ import annotations

import os
from pathlib import Path

from worldflux.core.exceptions import SpecError
from worldflux.specs.issues import Issue, raise_if_any
from worldflux.specs.model import Spec
from worldflux.specs.schema import SCHEMA_RELPATH, load_schema, schema_issues, validator_for
from worldflux.specs.semantic import check_spec, check_specs
from worldflux.specs.yaml_io import YamlDocument, parse_yaml

__all__ = [
    "MODELINE_PREFIX",
    "SPECS_RELDIR",
    "find_root",
    "load_spec_text",
    "load_specs",
    "schema_path",
    "spec_files",
]

#: Where model specs live, relative to the project root.
SPECS_RELDIR = "specs/models"
#: Every spec file starts with this editor modeline.
MODELINE_PREFIX = "# yaml-language-server: $schema="


def find_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The project tree to work on.

    ``root`` when given; else the current directory when it holds ``specs/``; else the tree the
    package was installed from (an editable install or a source checkout).

    Raises:
        SpecError: no such tree.
    """
    if root is not None:
        path = Path(root)
        if not (path / "specs").is_dir():
            raise SpecError(f"--root {path}: no specs/ directory there")
        return path
    cwd = Path.cwd()
    if (cwd / "specs").is_dir():
        return cwd
    import worldflux

    installed = Path(worldflux.__file__).resolve().parent.parent
    if (installed / "specs").is_dir():
        return installed
    raise SpecError(
        f"no specs/ directory in {cwd} or in {installed}; pass --root DIR (a worldflux checkout)"
    )


def schema_path(root: Path) -> Path:
    """The spec schema of ``root`` (falling back to the installed tree's)."""
    own = root / SCHEMA_RELPATH
    if own.is_file():
        return own
    import worldflux

    installed = Path(worldflux.__file__).resolve().parent.parent / SCHEMA_RELPATH
    if installed.is_file():
        return installed
    raise SpecError(f"schema not found: {own}")


def spec_files(root: Path) -> list[Path]:
    """``specs/models/*.yaml`` under ``root``, sorted by name (``.yml`` is reported as an error)."""
    directory = root / SPECS_RELDIR
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _parse(text: str, file: str, root: Path) -> tuple[Spec | None, list[Issue]]:
    parsed = parse_yaml(text, file)
    if isinstance(parsed, Issue):
        return None, [parsed]
    doc: YamlDocument = parsed
    issues: list[Issue] = []
    if file.endswith(".yml"):
        issues.append(Issue(file, 1, 1, (), "spec files end in .yaml"))
    if not text.startswith(MODELINE_PREFIX):
        issues.append(
            Issue(
                file,
                1,
                1,
                (),
                f"the first line must be the modeline `{MODELINE_PREFIX}"
                "../schema/model-spec.v1.schema.json`",
            )
        )
    issues += schema_issues(doc, validator_for(load_schema(schema_path(root))))
    if issues:
        return None, issues
    assert isinstance(doc.data, dict)
    return Spec(source=file, data=doc.data, doc=doc), []


def load_spec_text(text: str, file: str = "spec.yaml", *, root: Path | None = None) -> Spec:
    """Validate one spec given as text (structure, then semantics).

    Raises:
        SpecError: every problem, as ``file:line:col: <json path>: <message>``.
    """
    base = find_root(root)
    spec, issues = _parse(text, file, base)
    if spec is not None:
        issues = check_spec(spec)
    raise_if_any(issues, file)
    assert spec is not None
    return spec


def load_specs(root: Path, files: list[Path] | None = None) -> list[Spec]:
    """Load and validate every spec under ``root`` (or ``files``), sorted by model type.

    Raises:
        SpecError: every problem in every file, sorted by file, line and column.
    """
    specs: list[Spec] = []
    issues: list[Issue] = []
    for path in files if files is not None else spec_files(root):
        file = _display(path, root)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            issues.append(Issue(file, 0, 0, (), f"cannot read: {error}"))
            continue
        spec, found = _parse(text, file, root)
        issues += found
        if spec is not None:
            issues += check_spec(spec)
            specs.append(spec)
    issues += check_specs(specs)
    raise_if_any(issues, "specs" if files is None else ", ".join(_display(f, root) for f in files))
    return sorted(specs, key=lambda s: s.model_type)
