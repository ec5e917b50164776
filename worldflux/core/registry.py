"""The registry of slot implementations (components), and the one import path of every registry:
``WorldModelRegistry`` (model types, ids ``type`` or ``type:preset``, aliases, catalog entries)
lives in :mod:`worldflux.core.model_registry`, the loaders that fill the registries on first use
in :mod:`worldflux.core.loaders`, the five slots in :mod:`worldflux.core.slots`; they are all
imported from this module (the path generated code and plugins use). Slot
implementations are registered per kind (the five slots plus ``objective`` and ``behaviour``) under
a key. Third-party packages add implementations through the ``worldflux.components`` entry-point
group; their keys are namespaced ``package/name`` so they cannot collide with built-ins.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from worldflux.core.exceptions import ConfigurationError, did_you_mean
from worldflux.core.loaders import add_loader, run_loaders
from worldflux.core.model_registry import WorldModelRegistry
from worldflux.core.slots import SLOTS

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "COMPONENT_KINDS",
    "ENTRY_POINT_GROUP",
    "SLOTS",
    "ComponentEntry",
    "WorldModelRegistry",
    "add_loader",
    "ensure_components",
    "get_component",
    "list_components",
    "register_component",
    "unregister_component",
]

#: Every kind of registered component: the five slots, then the objective and the behaviour
#: (how the model acts: a planner such as MPPI, a learned actor-critic, a goal planner).
COMPONENT_KINDS: tuple[str, ...] = (*SLOTS, "objective", "behaviour")

#: Older names of a kind: ``planner`` (wave 1) is the same table as ``behaviour``.
KIND_ALIASES: dict[str, str] = {"planner": "behaviour"}

#: Entry-point group through which installed packages register components.
ENTRY_POINT_GROUP = "worldflux.components"

C = TypeVar("C", bound=type)


@dataclass(frozen=True)
class ComponentEntry:
    """One registered implementation: its class, its params model and where it was defined."""

    kind: str
    key: str
    cls: type
    params_model: type[BaseModel] | None

    @property
    def origin(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    def validate_params(self, params: dict[str, Any] | None) -> BaseModel | dict[str, Any]:
        """Validate ``params`` with the implementation's own pydantic model.

        Raises:
            ConfigurationError: one line per problem, naming the parameter.
        """
        params = dict(params or {})
        if self.params_model is None:
            if params:
                raise ConfigurationError(
                    f"{self.kind} {self.key!r} takes no params, found {sorted(params)}"
                )
            return {}
        # deferred: keeps "import worldflux" cheap (no pydantic until params are validated)
        from pydantic import ValidationError

        from worldflux.core.config import format_validation_error

        fields = set(self.params_model.model_fields)
        unknown = sorted(set(params) - fields)
        if unknown:
            raise ConfigurationError(
                "\n".join(
                    f"{self.kind} {self.key!r}: unknown param {u!r}" + did_you_mean(u, fields)
                    for u in unknown
                )
            )
        try:
            return self.params_model(**params)
        except ValidationError as error:
            raise ConfigurationError(
                format_validation_error(error, f"{self.kind} {self.key!r} params")
            ) from None


_components: dict[str, dict[str, ComponentEntry]] = {kind: {} for kind in COMPONENT_KINDS}
for _alias, _kind in KIND_ALIASES.items():
    _components[_alias] = _components[_kind]  # one table, two names
_plugins_loaded = False
_plugin_lock = threading.Lock()


def _check_kind(kind: str) -> None:
    if kind not in _components:
        raise ConfigurationError(
            f"unknown component kind {kind!r}" + did_you_mean(kind, COMPONENT_KINDS)
        )


def register_component(
    kind: str, key: str, *, params_model: type[BaseModel] | None = None, override: bool = False
) -> Callable[[C], C]:
    """Class decorator registering a slot implementation (or objective / behaviour) under ``key``.

    Example:
        >>> @register_component("dynamics_model", "mypkg/gru", params_model=GRUParams)
        ... class MyGRU(DynamicsModel): ...

    Raises:
        ConfigurationError: unknown kind, or ``key`` taken (naming both) unless ``override``.
    """
    _check_kind(kind)
    if not isinstance(key, str) or not key.strip() or key != key.strip():
        raise ConfigurationError(f"{kind} key {key!r}: expected a non-empty name without spaces")

    def decorate(cls: C) -> C:
        if not isinstance(cls, type):
            raise ConfigurationError(
                f"{kind} {key!r}: register_component decorates a class, found {type(cls).__name__}"
            )
        existing = _components[kind].get(key)
        if existing is not None and not override and existing.cls is not cls:
            raise ConfigurationError(
                f"{kind} {key!r} is already registered by {existing.origin}; "
                f"{cls.__module__}.{cls.__qualname__} cannot take it "
                "(pass override=True to replace)"
            )
        _components[kind][key] = ComponentEntry(kind, key, cls, params_model)
        return cls

    return decorate


def unregister_component(kind: str, key: str) -> None:
    """Remove one implementation (tests and plugin reloads)."""
    _check_kind(kind)
    _components[kind].pop(key, None)


def load_plugins(force: bool = False) -> None:
    """Import every ``worldflux.components`` entry point once (lazily, on first miss or listing).

    An entry point either names a module that registers its classes on import (with
    ``@register_component``), or names one slot class directly; then the entry point's name is
    its key and the class's ``slot`` attribute its kind. Either way every key a plugin adds must
    be namespaced ``package/name``, so plugins cannot shadow built-ins or each other silently.

    Raises:
        ConfigurationError: a plugin failed to import or registered a key without a namespace,
            naming the entry point and its distribution.
    """
    global _plugins_loaded
    with _plugin_lock:
        if _plugins_loaded and not force:
            return
        _plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _load_entry_point(ep)


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> None:
    owner = getattr(ep, "dist", None)
    dist = owner.name if owner is not None else "?"
    where = f"plugin entry point {ep.name!r} ({ep.value}) of distribution {dist!r}"
    before = {kind: dict(entries) for kind, entries in _components.items()}
    try:
        loaded = ep.load()
    except Exception as error:
        raise ConfigurationError(f"{where} failed to load: {type(error).__name__}: {error}") from (
            error
        )
    kind = getattr(loaded, "slot", None)
    if isinstance(loaded, type) and kind in _components:
        registered = any(e.cls is loaded for e in _components[kind].values())
        if not registered:
            register_component(kind, ep.name, params_model=getattr(loaded, "params_model", None))(
                loaded
            )
    changed = sorted(
        (kind, key)
        for kind, entries in _components.items()
        for key, entry in entries.items()
        if before[kind].get(key) is not entry
    )
    bare = [(kind, key) for kind, key in changed if "/" not in key]
    if bare:
        for kind, key in bare:  # undo: built-ins and other plugins keep their keys
            if key in before[kind]:
                _components[kind][key] = before[kind][key]
            else:
                _components[kind].pop(key, None)
        names = ", ".join(f"{kind} {key!r}" for kind, key in bare)
        raise ConfigurationError(
            f"{where} registered keys without a 'package/' namespace ({names}); "
            "third-party keys must look like 'mypackage/name'"
        )


def ensure_components() -> None:
    """Run the component loaders and plugins now (every family's registrations, parity
    handlers included), without naming any module above core."""
    run_loaders("components")
    load_plugins()


def get_component(kind: str, key: str) -> ComponentEntry:
    """The implementation registered for ``kind`` under ``key``.

    Raises:
        ConfigurationError: with "did you mean" and how to register one.
    """
    _check_kind(kind)
    entry = _components[kind].get(key)
    if entry is None:
        run_loaders("components")
        load_plugins()
        entry = _components[kind].get(key)
    if entry is None:
        raise ConfigurationError(
            f"no {kind} implementation is registered as {key!r}"
            + did_you_mean(key, _components[kind])
            + f"; register one with @register_component({kind!r}, {key!r}) "
            "or install the plugin that provides it"
        )
    return entry


def list_components(kind: str | None = None) -> dict[str, list[str]]:
    """Sorted keys per kind (all kinds when ``kind`` is None)."""
    run_loaders("components")
    load_plugins()
    kinds = [kind] if kind is not None else list(COMPONENT_KINDS)
    for k in kinds:
        _check_kind(k)
    return {k: sorted(_components[k]) for k in kinds}
