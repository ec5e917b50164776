"""Find, parse and validate spec files; every problem is reported at once, located and sorted."""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

from worldflux.core.exceptions import SpecError
from worldflux.discovery.project import find_project, load_project
from worldflux.speclang.budget import check_budget, read_spec_file, value_issues
from worldflux.speclang.issues import Issue, raise_if_any
from worldflux.speclang.model import Spec
from worldflux.speclang.schema import SCHEMA_FILE, load_schema, schema_issues, validator_for
from worldflux.speclang.semantic import check_spec, check_specs
from worldflux.speclang.yaml_io import YamlDocument, parse_yaml

__all__ = [
    "MODELINE_PREFIX",
    "find_root",
    "load_spec_text",
    "load_specs",
    "packaged_schema",
    "schema_path",
    "spec_files",
]

#: Every spec file starts with this editor modeline.
MODELINE_PREFIX = "# yaml-language-server: $schema="
#: The schema's ``$id``, what a spec outside worldflux's tree points its modeline at.
SCHEMA_ID = "https://worldflux.dev/schema/model-spec.v1.schema.json"


def find_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The worldflux project to work on: ``root`` when given, else the project holding the
    current directory (walking up, like git; see :mod:`worldflux.discovery.project`).

    Raises:
        SpecError: no such project, saying where it looked.
    """
    if root is not None:
        path = Path(root)
        project = load_project(path)
        if not project.models_dir.is_dir():
            raise SpecError(
                f"--root {path}: no {project.display(project.models_dir)}/ directory there "
                "(a worldflux project keeps its specs in specs/models/*.yaml)"
            )
        return path
    found = find_project()
    if found is None:
        raise SpecError(
            f"no worldflux project in {Path.cwd()} or any parent directory (looked for "
            "specs/models/ or [tool.worldflux] in pyproject.toml); create "
            "specs/models/<model_type>.yaml or pass --root DIR"
        )
    return found.root


def packaged_schema() -> Path:
    """The spec schema shipped with worldflux (``worldflux.specs``, via importlib.resources)."""
    return Path(str(resources.files("worldflux.specs").joinpath(SCHEMA_FILE)))


def schema_path(root: Path | None) -> Path:
    """The spec schema: the project's own copy when it has one (worldflux's tree), else the
    packaged one.

    Raises:
        SpecError: neither exists (a broken install).
    """
    if root is not None:
        own = load_project(root).specs_dir / SCHEMA_FILE
        if own.is_file():
            return own
    packaged = packaged_schema()
    if packaged.is_file():
        return packaged
    raise SpecError(f"schema not found: {packaged} (reinstall worldflux)")


def spec_files(root: Path) -> list[Path]:
    """``<specs>/models/*.yaml`` of the project at ``root``, sorted (``.yml`` is reported)."""
    return load_project(root).spec_files()


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _parse(
    text: str, file: str, root: Path | None, sha256: str = ""
) -> tuple[Spec | None, list[Issue]]:
    over = check_budget(text, file)  # size, characters, depth, nodes, aliases: before parsing
    if over is not None:
        return None, [over]
    parsed = parse_yaml(text, file)
    if isinstance(parsed, Issue):
        return None, [parsed]
    doc: YamlDocument = parsed
    issues: list[Issue] = value_issues(doc)
    if file.endswith(".yml"):
        issues.append(Issue(file, 1, 1, (), "spec files end in .yaml"))
    if not text.startswith(MODELINE_PREFIX):
        issues.append(
            Issue(
                file,
                1,
                1,
                (),
                f"the first line must be the modeline `{MODELINE_PREFIX}{SCHEMA_ID}` "
                "(or a path to the schema: ../schema/model-spec.v1.schema.json in worldflux's "
                "own tree)",
            )
        )
    issues += schema_issues(doc, validator_for(load_schema(schema_path(root))))
    if issues:
        return None, issues
    assert isinstance(doc.data, dict)
    return Spec(source=file, data=doc.data, doc=doc, sha256=sha256), []


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of byte ``offset``."""
    line = raw.count(b"\n", 0, offset) + 1
    return line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1


def _golden_issues(spec: Spec, specs_dir: Path) -> list[Issue]:
    """Golden files are relative to the specs directory and must exist (they ship with it)."""
    issues = []
    for i, golden in enumerate(spec.data.get("parity", {}).get("goldens", [])):
        if ".." not in golden["file"].split("/") and not (specs_dir / golden["file"]).is_file():
            issues.append(
                spec.doc.issue(
                    ("parity", "goldens", i, "file"),
                    f"golden file {golden['file']!r} not found in {specs_dir} "
                    "(paths are relative to the specs directory)",
                    key=False,
                )
            )
    return issues


def load_spec_text(text: str, file: str = "spec.yaml", *, root: Path | None = None) -> Spec:
    """Validate one spec given as text (structure, then semantics).

    Raises:
        SpecError: every problem, as ``file:line:col: <json path>: <message>``.
    """
    spec, issues = _parse(text, file, root)
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
    specs_dir = load_project(root).specs_dir
    for path in files if files is not None else spec_files(root):
        file = _display(path, root)
        raw, unreadable = read_spec_file(path, file)
        if raw is None:
            issues += [unreadable] if unreadable is not None else []
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line, col = _position(raw, error.start)
            issues.append(Issue(file, line, col, (), f"not UTF-8 text: {error.reason}"))
            continue
        spec, found = _parse(text, file, root, hashlib.sha256(raw).hexdigest())
        issues += found
        if spec is not None:
            issues += check_spec(spec) + _golden_issues(spec, specs_dir)
            specs.append(spec)
    issues += check_specs(specs)
    raise_if_any(issues, "specs" if files is None else ", ".join(_display(f, root) for f in files))
    return sorted(specs, key=lambda s: s.model_type)
