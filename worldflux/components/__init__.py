"""Generic slot implementations, usable by any spec (registered on import)."""

from worldflux.components import conditioners, rollout

__all__ = ["conditioners", "rollout"]
