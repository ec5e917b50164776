"""What fills the registries on first use.

Core imports nothing above it: the top-level package installs :mod:`worldflux.discovery`'s
loaders here (:func:`add_loader`), so any import of worldflux gets them before its first lookup.
"""

from __future__ import annotations

from collections.abc import Callable

from worldflux.core.exceptions import ConfigurationError

__all__ = ["add_loader", "run_loaders"]

_loaders: dict[str, list[Callable[[], None]]] = {"components": [], "models": []}


def add_loader(kind: str, loader: Callable[[], None]) -> None:
    """Run ``loader`` before component lookups that miss (``kind="components"``) or before every
    model lookup (``kind="models"``; it must be cheap once done). Idempotent per loader."""
    if kind not in _loaders:
        raise ConfigurationError(f"loader kind {kind!r}: expected 'components' or 'models'")
    if loader not in _loaders[kind]:
        _loaders[kind].append(loader)


def run_loaders(kind: str) -> None:
    """Run every loader of ``kind`` (``"components"``: the built-in implementations;
    ``"models"``: the models of every source: built-in, plugins, the current project)."""
    for loader in _loaders[kind]:
        loader()
