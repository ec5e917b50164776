"""The built-in checks, registered on import (one module per group of families)."""

from worldflux.conformance.checks import (
    acting,
    behaviour,
    clauses,
    io,
    negative,
    rollout,
    slots,
    spec,
    training,
)

__all__ = [
    "acting",
    "behaviour",
    "clauses",
    "io",
    "negative",
    "rollout",
    "slots",
    "spec",
    "training",
]
