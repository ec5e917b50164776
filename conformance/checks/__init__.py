"""The built-in checks, registered on import (one module per group of families)."""

from worldflux.conformance.checks import behaviour, io, slots, spec

__all__ = ["behaviour", "io", "slots", "spec"]
