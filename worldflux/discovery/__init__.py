"""Where models and slot implementations come from, found once, outside core.

``project``: worldflux projects (``specs/models/*.yaml`` or ``[tool.worldflux]``, found by walking
up from the current directory). ``sources``: the generated packages that register models
(built-in, ``worldflux.models`` plugins, the current project). The top-level package installs
:func:`load_components` and :func:`load_models` as the registry's loaders, so
``worldflux.core`` never imports anything above it.
"""

from __future__ import annotations

__all__ = ["load_components", "load_models"]


def load_components() -> None:
    """Register the built-in implementations (behaviours, generic components, every family)."""
    # deferred: keeps "import worldflux" cheap (the implementations import torch)
    import worldflux.behaviour
    import worldflux.components
    import worldflux.families  # noqa: F401


def load_models() -> None:
    """Register the models of every source (see :mod:`worldflux.discovery.sources`)."""
    # deferred: keeps "import worldflux" lean: the sources load on the first model lookup
    from worldflux.discovery.sources import ensure_registered

    ensure_registered()
