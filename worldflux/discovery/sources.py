"""Where registered models come from: built-in, installed plugins, and the current project.

Every source is a *generated package* (what ``worldflux generate`` writes): ``catalog.py`` holds
constants only (``MODEL_TYPES``, ``MODEL_CATALOG``, ``MODEL_ALIASES``, ``SPECS_DIR``,
``SPEC_SHA256``), ``models/<type>.py`` registers one class on import.

- built-in: ``worldflux.generated`` (its specs ship as ``worldflux.specs``);
- plugins: every ``worldflux.models`` entry point names the generated package of an installed
  distribution (``myplugin = "myplugin.generated"``);
- project: the worldflux project holding the current directory
  (:mod:`worldflux.discovery.project`), its generated package imported from its directory.

Catalogs are read without importing torch (``worldflux models list`` stays fast); the model
classes are imported on the first registry lookup. A model type or alias that two sources declare
is an error naming both spec files: a user model never silently shadows a built-in one.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from worldflux.core.exceptions import ConfigurationError, SpecError
from worldflux.core.registry import WorldModelRegistry
from worldflux.discovery.project import Project, find_project

__all__ = [
    "BUILTIN_PACKAGE",
    "MODELS_ENTRY_POINT_GROUP",
    "PROJECT_PACKAGE",
    "ModelSource",
    "catalog_entries",
    "discover",
    "ensure_registered",
    "import_generated",
    "other_sources",
    "reset",
    "source_of",
    "spec_sha256",
    "unload_generated",
]

#: The generated package of the built-in models.
BUILTIN_PACKAGE = "worldflux.generated"
#: Entry-point group through which installed packages ship whole models.
MODELS_ENTRY_POINT_GROUP = "worldflux.models"
#: Import-name prefix of a project's generated package (unless ``[tool.worldflux] package``).
PROJECT_PACKAGE = "worldflux_project_generated"


@dataclass(frozen=True)
class ModelSource:
    """One generated package and what its catalog declares.

    Attributes:
        kind: ``"built-in"``, ``"plugin"`` or ``"project"``.
        name: ``"worldflux"``, the plugin's distribution name, or the project root.
        package: import name of the generated package.
        specs_dir: the directory holding ``models/*.yaml`` (and goldens), or None if not shipped.
        catalog: ``type:preset`` -> catalog entry; aliases: alias -> ``type:preset``.
        types: the model types it registers.
        project: the project it belongs to (its ``imports`` run before its models are built).
    """

    kind: str
    name: str
    package: str
    specs_dir: Path | None
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    aliases: dict[str, str] = field(default_factory=dict, repr=False)
    types: tuple[str, ...] = ()
    project: Project | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """``built-in``, ``plugin:<dist>`` or ``project:<root>`` (``models list``'s SOURCE)."""
        return self.kind if self.kind == "built-in" else f"{self.kind}:{self.name}"

    def spec_file(self, model_type: str) -> str:
        """Where ``model_type``'s spec lives (for messages)."""
        if self.specs_dir is None:
            return f"{self.package} ({self.label}; specs not shipped)"
        return str(self.specs_dir / "models" / f"{model_type}.yaml")


def spec_sha256(path: Path) -> str:
    """SHA-256 of a spec file's bytes (generated catalogs record it to detect stale code)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_generated(generated_dir: Path, package: str, *, register: bool = True) -> ModuleType:
    """Import the generated package in ``generated_dir`` as ``package``; with ``register``, also
    its ``models/<type>`` modules (registering the model classes, not the catalog).

    Raises:
        ImportError: ``package`` is already imported, or the directory is not a package.
    """
    if package in sys.modules:
        raise ImportError(f"package {package!r} is already imported")
    init = generated_dir / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        package, init, submodule_search_locations=[str(generated_dir)]
    )
    if spec is None or spec.loader is None or not init.is_file():
        raise ImportError(f"{generated_dir} is not an importable package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    try:
        spec.loader.exec_module(module)
        if register:
            catalog = importlib.import_module(f"{package}.catalog")
            for model_type in catalog.MODEL_TYPES:
                importlib.import_module(f"{package}.models.{model_type}")
    except BaseException:
        unload_generated(package)
        raise
    return module


def unload_generated(package: str) -> None:
    """Forget ``package`` and its submodules (the caller unregisters the model types)."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _source(kind: str, name: str, package: str, project: Project | None = None) -> ModelSource:
    """Read ``<package>.catalog`` into a ModelSource (cheap: constants only)."""
    catalog = importlib.import_module(f"{package}.catalog")
    rel = getattr(catalog, "SPECS_DIR", None)
    specs_dir = None
    if isinstance(rel, str):  # the specs ship beside the generated package (wheel, plugin)
        specs_dir = Path(str(resources.files(package).joinpath(rel))).resolve()
    entries = dict(getattr(catalog, "MODEL_CATALOG", {}))
    types = tuple(
        getattr(catalog, "MODEL_TYPES", ()) or sorted({e["type"] for e in entries.values()})
    )
    return ModelSource(
        kind=kind,
        name=name,
        package=package,
        specs_dir=specs_dir if specs_dir is not None and specs_dir.is_dir() else None,
        catalog=entries,
        aliases=dict(getattr(catalog, "MODEL_ALIASES", {})),
        types=types,
        project=project,
    )


def _plugin_sources() -> list[ModelSource]:
    sources: list[ModelSource] = []
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=MODELS_ENTRY_POINT_GROUP):
        owner = getattr(ep, "dist", None)
        dist = owner.name if owner is not None else ep.name
        if ep.value in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(ep.value)
        try:
            sources.append(_source("plugin", dist, ep.value.split(":")[0]))
        except Exception as error:
            raise ConfigurationError(
                f"plugin entry point {ep.name!r} = {ep.value!r} of distribution {dist!r} "
                f"(group {MODELS_ENTRY_POINT_GROUP!r}) failed to load: "
                f"{type(error).__name__}: {error}; it must name a package written by "
                "`worldflux generate`"
            ) from error
    return sources


def _stale(project: Project, catalog: Any) -> list[str]:
    recorded: dict[str, str] = dict(getattr(catalog, "SPEC_SHA256", {}))
    problems = []
    for path in project.spec_files():
        digest = recorded.pop(path.stem, None)
        if digest is None:
            problems.append(f"{project.display(path)} has no generated code")
        elif digest != spec_sha256(path):
            problems.append(f"{project.display(path)} changed since it was generated")
    problems += [f"generated model {t!r} has no spec any more" for t in sorted(recorded)]
    return problems


def _project_package(project: Project) -> str:
    """The import name of a project's generated package: one per project root, so several
    projects can be seen in one process (``conformance replay``, tests)."""
    digest = hashlib.sha256(str(project.root).encode()).hexdigest()[:10]
    return f"{PROJECT_PACKAGE}_{digest}"


def _project_source(project: Project) -> ModelSource | None:
    if project.builtin or not project.spec_files():
        return None
    hint = f"run `worldflux generate` in {project.root}"
    if project.package is None and not (project.generated_dir / "catalog.py").is_file():
        raise SpecError(
            f"project {project.root}: no generated code in {project.display(project.generated_dir)}"
            f"/ for its specs; {hint}"
        )
    project.add_to_sys_path()
    package = project.package or _project_package(project)
    if project.package is None and package not in sys.modules:
        import_generated(project.generated_dir, package, register=False)
    source = _source("project", str(project.root), package, project)
    problems = _stale(project, sys.modules[f"{package}.catalog"])
    if problems:
        raise SpecError(
            f"project {project.root}: generated code is out of date ({'; '.join(problems)}); "
            + hint
        )
    return source


def _check_conflicts(sources: list[ModelSource]) -> None:
    owner: dict[str, ModelSource] = {}
    for source in sources:
        for model_type in source.types:
            other = owner.get(model_type)
            if other is not None and other is not source:
                raise ConfigurationError(
                    f"model type {model_type!r} is declared twice: by "
                    f"{source.spec_file(model_type)} "
                    f"({source.label}) and by {other.spec_file(model_type)} ({other.label}); "
                    "rename one (a model may not shadow another)"
                )
            owner[model_type] = source
    alias_owner: dict[str, tuple[str, ModelSource]] = {}
    for source in sources:
        for alias, target in source.aliases.items():
            if alias in owner and owner[alias] is not source:
                raise ConfigurationError(
                    f"alias {alias!r} of {source.spec_file(target.split(':')[0])} "
                    f"({source.label}) is the name of the model type declared by "
                    f"{owner[alias].spec_file(alias)} ({owner[alias].label})"
                )
            previous = alias_owner.get(alias)
            if previous is not None and previous[1] is not source:
                first = previous[1].spec_file(previous[0].split(":")[0])
                raise ConfigurationError(
                    f"alias {alias!r} is declared twice: by "
                    f"{source.spec_file(target.split(':')[0])} ({source.label}) and by {first} "
                    f"({previous[1].label})"
                )
            alias_owner[alias] = (target, source)


def other_sources(project: Project) -> list[ModelSource]:
    """The built-in and plugin sources that are not ``project`` itself (what its specs may not
    shadow; a plugin's own tree, installed too, is not counted against itself)."""
    found = [_source("built-in", "worldflux", BUILTIN_PACKAGE), *_plugin_sources()]
    return [s for s in found if s.package != project.package and not project.builtin]


_lock = threading.RLock()
_discovered: dict[str, list[ModelSource]] = {}
_registered: set[str] = set()
_settled: set[str] = set()  # working directories whose sources are all registered
_origin: dict[str, ModelSource] = {}


def discover(start: Path | None = None) -> list[ModelSource]:
    """The sources seen from ``start`` (default: the current directory): built-in, plugins,
    project. Cached per project root.

    Raises:
        ConfigurationError / SpecError: a broken plugin, a stale project, or a model type or
            alias declared by two sources (naming both spec files).
    """
    project = find_project(start)
    key = str(project.root) if project is not None else ""
    with _lock:
        if key not in _discovered:
            sources = [_source("built-in", "worldflux", BUILTIN_PACKAGE), *_plugin_sources()]
            installed = {s.package for s in sources}
            if project is not None and project.package not in installed:
                # (a plugin's own source tree, when it is also installed, is that plugin)
                own = _project_source(project)
                if own is not None:
                    sources.append(own)
            _check_conflicts(sources)
            _discovered[key] = sources
        return _discovered[key]


def catalog_entries(start: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every catalog entry of every source, with its ``source`` label (imports no model code)."""
    merged: dict[str, dict[str, Any]] = {}
    for source in discover(start):
        for model_id, entry in source.catalog.items():
            merged[model_id] = {**entry, "source": source.label}
    return dict(sorted(merged.items()))


def ensure_registered() -> None:
    """Register every source's catalog, aliases and model classes (once per source).

    Raises:
        ConfigurationError / SpecError / ImportError: a source that cannot register (it is tried
            again at the next lookup, so the error is never swallowed into a silent miss).
    """
    cwd = os.getcwd()
    if cwd in _settled:  # every lookup calls this: no filesystem walk once a directory is done
        return
    with _lock:
        for source in discover():
            if source.package in _registered:
                continue
            _registered.add(source.package)  # first: registering re-enters the registry
            try:
                _register(source)
            except BaseException:
                _registered.discard(source.package)
                raise
        _settled.add(cwd)


def _register(source: ModelSource) -> None:
    if source.project is not None:
        source.project.import_modules()
    for model_type in source.types:  # importing a module registers its class once
        importlib.import_module(f"{source.package}.models.{model_type}")
        _origin[model_type] = source
    for model_id, entry in source.catalog.items():
        WorldModelRegistry.register_catalog_entry(model_id, {**entry, "source": source.label})
    for alias, target in source.aliases.items():
        WorldModelRegistry.register_alias(alias, target)


def source_of(model_type: str) -> ModelSource | None:
    """The source that registered ``model_type`` (None: registered by hand in Python)."""
    ensure_registered()
    return _origin.get(model_type)


def reset() -> None:
    """Forget every discovered source; unregister and unload plugin and project models (tests,
    or after installing a plugin in a running process). Built-in models stay registered."""
    with _lock:
        for model_type, source in list(_origin.items()):
            if source.kind == "built-in":
                continue
            WorldModelRegistry.unregister(model_type)
            del _origin[model_type]
            _registered.discard(source.package)
            unload_generated(source.package)
        _discovered.clear()
        _settled.clear()
