"""Registries: model types (``WorldModelRegistry``) and slot implementations (components).

Model ids are ``type`` or ``type:preset``; aliases map a friendly name to an id. Slot
implementations are registered per kind (the five slots plus ``objective`` and ``planner``) under
a key. Third-party packages add implementations through the ``worldflux.components`` entry-point
group; their keys are namespaced ``package/name`` so they cannot collide with built-ins.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from worldflux.core.exceptions import ConfigurationError, ModelNotFoundError, did_you_mean

if TYPE_CHECKING:
    from pydantic import BaseModel

    from worldflux.core.config import WorldModelConfig
    from worldflux.core.model import WorldModel

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

#: The five slots of the Model Developer Guide, in build order, with the model attribute of each.
SLOTS: dict[str, str] = {
    "observation_encoder": "observation_encoder",
    "action_conditioner": "action_conditioner",
    "dynamics_model": "dynamics_model",
    "decoder": "decoder_module",
    "rollout_executor": "rollout_executor",
}

#: Every kind of registered component: the five slots, then the objective and the planner.
COMPONENT_KINDS: tuple[str, ...] = (*SLOTS, "objective", "planner")

#: Entry-point group through which installed packages register components.
ENTRY_POINT_GROUP = "worldflux.components"

M = TypeVar("M", bound="type[WorldModel]")
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
    """Class decorator registering a slot implementation (or objective / planner) under ``key``.

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


#: What fills the registries on first use. Core imports nothing above it: the top-level package
#: installs worldflux.discovery's loaders here (``add_loader``), so any import of worldflux gets
#: them before its first lookup.
_loaders: dict[str, list[Callable[[], None]]] = {"components": [], "models": []}


def add_loader(kind: str, loader: Callable[[], None]) -> None:
    """Run ``loader`` before component lookups that miss (``kind="components"``) or before every
    model lookup (``kind="models"``; it must be cheap once done). Idempotent per loader."""
    if kind not in _loaders:
        raise ConfigurationError(f"loader kind {kind!r}: expected 'components' or 'models'")
    if loader not in _loaders[kind]:
        _loaders[kind].append(loader)


def _builtins() -> None:
    for loader in _loaders["components"]:
        loader()


def ensure_components() -> None:
    """Run the component loaders and plugins now (every family's registrations, parity
    handlers included), without naming any module above core."""
    _builtins()
    load_plugins()


def get_component(kind: str, key: str) -> ComponentEntry:
    """The implementation registered for ``kind`` under ``key``.

    Raises:
        ConfigurationError: with "did you mean" and how to register one.
    """
    _check_kind(kind)
    entry = _components[kind].get(key)
    if entry is None:
        _builtins()
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
    _builtins()
    load_plugins()
    kinds = [kind] if kind is not None else list(COMPONENT_KINDS)
    for k in kinds:
        _check_kind(k)
    return {k: sorted(_components[k]) for k in kinds}


def _ensure_sources() -> None:
    """Register the models of every source (built-in, plugins, project) before a lookup."""
    for loader in _loaders["models"]:
        loader()


class WorldModelRegistry:
    """The registry of model types, aliases and catalog entries (class-level, process-wide).

    Lookups first run the model loaders (:func:`add_loader`; worldflux installs
    :func:`worldflux.discovery.load_models`: the built-in models, installed ``worldflux.models``
    plugins and the project of the current directory).
    """

    #: slot name -> model attribute (the five slots of the Model Developer Guide)
    _component_slots: ClassVar[dict[str, str]] = dict(SLOTS)
    _models: ClassVar[dict[str, type[WorldModel]]] = {}
    _configs: ClassVar[dict[str, type[WorldModelConfig]]] = {}
    _aliases: ClassVar[dict[str, str]] = {}
    _catalog: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def register(
        cls, model_type: str, config_class: type[WorldModelConfig] | None = None
    ) -> Callable[[M], M]:
        """Class decorator registering a WorldModel under ``model_type``.

        Raises:
            ConfigurationError: ``model_type`` is already registered.
        """

        if not isinstance(model_type, str) or not model_type or ":" in model_type:
            raise ConfigurationError(
                f"model type {model_type!r}: expected a non-empty name without ':' "
                "(':' separates the preset in ids such as 'tdmpc2:5m')"
            )

        def decorate(model_cls: M) -> M:
            existing = cls._models.get(model_type)
            if existing is not None:
                raise ConfigurationError(
                    f"model type {model_type!r} is already registered by "
                    f"{existing.__module__}.{existing.__qualname__}; call "
                    f"WorldModelRegistry.unregister({model_type!r}) first"
                )
            cls._models[model_type] = model_cls
            if config_class is not None:
                cls._configs[model_type] = config_class
            model_cls.model_type = model_type
            return model_cls

        return decorate

    @classmethod
    def unregister(cls, model_type: str) -> None:
        """Remove a model type with its aliases and catalog entries."""
        cls._models.pop(model_type, None)
        cls._configs.pop(model_type, None)
        for alias, target in list(cls._aliases.items()):
            if target.split(":")[0] == model_type:
                del cls._aliases[alias]
        for model_id in list(cls._catalog):
            if model_id.split(":")[0] == model_type:
                del cls._catalog[model_id]

    @classmethod
    def register_alias(cls, alias: str, target: str) -> None:
        """Map ``alias`` to a model id (``type`` or ``type:preset``).

        Raises:
            ConfigurationError: the alias names a registered type or points elsewhere already.
        """
        if alias in cls._models and alias != target.split(":")[0]:
            raise ConfigurationError(f"alias {alias!r} would hide the model type of the same name")
        current = cls._aliases.get(alias)
        if current is not None and current != target:
            raise ConfigurationError(
                f"alias {alias!r} already points to {current!r}, cannot point it to {target!r}"
            )
        cls._aliases[alias] = target

    @classmethod
    def register_catalog_entry(cls, model_id: str, entry: dict[str, Any]) -> None:
        """Record catalog data (description, params, maturity, ...) for ``type:preset``."""
        cls._catalog[model_id] = dict(entry)

    @classmethod
    def is_registered(cls, model_type: str) -> bool:
        _ensure_sources()
        return model_type in cls._models

    @classmethod
    def list_types(cls) -> list[str]:
        _ensure_sources()
        return sorted(cls._models)

    @classmethod
    def catalog(cls) -> dict[str, dict[str, Any]]:
        _ensure_sources()
        return {k: dict(v) for k, v in sorted(cls._catalog.items())}

    @classmethod
    def registered_entries(cls) -> dict[str, dict[str, Any]]:
        """The catalog as registered so far in this process, without loading any source
        (``models list`` adds the models registered by hand to the sources' catalogs)."""
        return {k: dict(v) for k, v in sorted(cls._catalog.items())}

    @classmethod
    def aliases(cls) -> dict[str, str]:
        _ensure_sources()
        return dict(sorted(cls._aliases.items()))

    @classmethod
    def known_ids(cls) -> list[str]:
        """Every accepted id: types, catalog ids and aliases."""
        _ensure_sources()
        return sorted(set(cls._models) | set(cls._catalog) | set(cls._aliases))

    @classmethod
    def resolve(cls, model_id: str) -> tuple[str, str | None]:
        """Resolve an id or alias to ``(model_type, preset or None)``.

        Accepts ``type``, ``type:preset``, an alias, and ``alias:preset`` (the alias then only
        names the type: ``"dreamer:ci"`` is ``dreamerv3:ci``).

        Raises:
            ModelNotFoundError: with the closest known ids.
        """
        _ensure_sources()
        seen: set[str] = set()
        target = model_id
        while target in cls._aliases and target not in seen:
            seen.add(target)
            target = cls._aliases[target]
        model_type, _, preset = target.partition(":")
        if model_type not in cls._models and preset and model_type in cls._aliases:
            # "alias:preset" (the guide's "dreamer:ci"): the alias names the type, the id the preset
            return cls.resolve(model_type)[0], preset
        if model_type not in cls._models:
            raise ModelNotFoundError(
                f"no model {model_id!r} is registered"
                + did_you_mean(model_id, cls.known_ids())
                + "; `worldflux models list` shows every id"
            )
        return model_type, preset or None

    @classmethod
    def get(cls, model_type: str) -> type[WorldModel]:
        resolved, _ = cls.resolve(model_type)
        return cls._models[resolved]

    @classmethod
    def get_config_class(cls, model_type: str) -> type[WorldModelConfig]:
        resolved, _ = cls.resolve(model_type)
        config_class = cls._configs.get(resolved)
        if config_class is None:
            from worldflux.core.config import WorldModelConfig

            return WorldModelConfig
        return config_class
