"""The registry of model types: ids ``type`` or ``type:preset``, aliases mapping a friendly name
to an id, and catalog entries (description, params, maturity, ...). Imported from
:mod:`worldflux.core.registry` like every registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from worldflux.core.exceptions import ConfigurationError, ModelNotFoundError, did_you_mean
from worldflux.core.loaders import run_loaders
from worldflux.core.slots import SLOTS

if TYPE_CHECKING:
    from worldflux.core.config import WorldModelConfig
    from worldflux.core.model import WorldModel

__all__ = ["WorldModelRegistry"]

M = TypeVar("M", bound="type[WorldModel]")


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
        run_loaders("models")
        return model_type in cls._models

    @classmethod
    def list_types(cls) -> list[str]:
        run_loaders("models")
        return sorted(cls._models)

    @classmethod
    def catalog(cls) -> dict[str, dict[str, Any]]:
        run_loaders("models")
        return {k: dict(v) for k, v in sorted(cls._catalog.items())}

    @classmethod
    def registered_entries(cls) -> dict[str, dict[str, Any]]:
        """The catalog as registered so far in this process, without loading any source
        (``models list`` adds the models registered by hand to the sources' catalogs)."""
        return {k: dict(v) for k, v in sorted(cls._catalog.items())}

    @classmethod
    def aliases(cls) -> dict[str, str]:
        run_loaders("models")
        return dict(sorted(cls._aliases.items()))

    @classmethod
    def known_ids(cls) -> list[str]:
        """Every accepted id: types, catalog ids and aliases."""
        run_loaders("models")
        return sorted(set(cls._models) | set(cls._catalog) | set(cls._aliases))

    @classmethod
    def resolve(cls, model_id: str) -> tuple[str, str | None]:
        """Resolve an id or alias to ``(model_type, preset or None)``.

        Accepts ``type``, ``type:preset``, an alias, and ``alias:preset`` (the alias then only
        names the type: ``"dreamer:ci"`` is ``dreamerv3:ci``).

        Raises:
            ModelNotFoundError: with the closest known ids.
        """
        run_loaders("models")
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
            # deferred: keeps "import worldflux" cheap (no pydantic until a config is needed)
            from worldflux.core.config import WorldModelConfig

            return WorldModelConfig
        return config_class
