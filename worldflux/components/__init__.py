"""Generic slot implementations, usable by any spec (registered on import)."""

from worldflux.components import rollout

__all__ = ["rollout"]
