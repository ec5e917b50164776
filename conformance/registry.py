"""Checks as data: every conformance check is a :class:`CheckInfo` with a stable id.

A check has a family, the contract clause it enforces, an obligation per maturity level
(``must`` / ``should`` / ``n/a``), an optional capability gate, a cost class and a passing
example. The function that runs it is registered with :func:`check` and receives a
:class:`~worldflux.conformance.context.CheckContext`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from worldflux.core.exceptions import ConfigurationError, did_you_mean
from worldflux.core.spec import Capability, ModelMaturity

if TYPE_CHECKING:
    from worldflux.conformance.context import CheckContext

__all__ = [
    "FAMILIES",
    "LEVELS",
    "Check",
    "CheckInfo",
    "Cost",
    "Obligation",
    "all_checks",
    "check",
    "get_check",
    "select_checks",
]


class Obligation(str, enum.Enum):
    """What a maturity level promises about one check."""

    MUST = "must"
    SHOULD = "should"
    NA = "n/a"


class Cost(str, enum.Enum):
    """How expensive a check is; scales Hypothesis ``max_examples`` and the time budget."""

    CHEAP = "cheap"
    MEDIUM = "medium"
    EXPENSIVE = "expensive"


#: Maturity levels from lowest to highest.
LEVELS: tuple[ModelMaturity, ...] = (
    ModelMaturity.SKELETON,
    ModelMaturity.EXPERIMENTAL,
    ModelMaturity.REFERENCE,
)

#: Check families in scoreboard order.
FAMILIES: tuple[str, ...] = (
    "spec",
    "registry",
    "io",
    "negative",
    "rollout",
    "batch",
    "determinism",
    "numeric",
    "serde",
    "slots",
    "planning",
    "parity",
)


@dataclass(frozen=True)
class CheckInfo:
    """The data describing one check.

    Attributes:
        id: stable dotted id, e.g. ``io.rollout.shapes``; its first part is the family.
        clause: the contract clause it enforces (one sentence).
        obligations: maturity -> obligation.
        code: the stable warning code reported when a SHOULD obligation fails (``WFC...``).
        cost: cost class.
        capability: the capability that gates the check (n/a when not declared), or None.
        example: a minimal passing example (Python text), printed by ``explain``.
        since: suite version that introduced the check.
        allows_reseed: the check calls code that may seed the global RNG on purpose (parity
            recomputation); reseeds are not reported (the RNG state is still restored).
    """

    id: str
    clause: str
    obligations: Mapping[ModelMaturity, Obligation]
    code: str
    cost: Cost = Cost.CHEAP
    capability: Capability | None = None
    example: str = ""
    since: str = "1"
    allows_reseed: bool = False

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    def obligation(self, level: ModelMaturity) -> Obligation:
        return self.obligations.get(level, Obligation.NA)


@dataclass(frozen=True)
class Check:
    """A registered check: its data and the function that runs it."""

    info: CheckInfo
    run: Callable[[CheckContext], Any] = field(compare=False)


_CHECKS: dict[str, Check] = {}


def _obligations(
    skeleton: str, experimental: str, reference: str
) -> dict[ModelMaturity, Obligation]:
    return {
        ModelMaturity.SKELETON: Obligation(skeleton),
        ModelMaturity.EXPERIMENTAL: Obligation(experimental),
        ModelMaturity.REFERENCE: Obligation(reference),
    }


def check(
    id: str,
    *,
    clause: str,
    levels: tuple[str, str, str],
    code: str,
    cost: Cost = Cost.CHEAP,
    capability: Capability | None = None,
    example: str = "",
    since: str = "1",
    allows_reseed: bool = False,
) -> Callable[[Callable[[CheckContext], Any]], Callable[[CheckContext], Any]]:
    """Register the decorated function as check ``id``.

    Args:
        levels: obligations for (skeleton, experimental, reference): ``must``/``should``/``n/a``.

    Raises:
        ConfigurationError: a duplicate id, or a family not in :data:`FAMILIES`.
    """
    family = id.split(".", 1)[0]
    if family not in FAMILIES:
        raise ConfigurationError(f"check {id!r}: unknown family {family!r}")
    info = CheckInfo(
        id=id,
        clause=clause,
        obligations=_obligations(*levels),
        code=code,
        cost=cost,
        capability=capability,
        example=example.strip("\n"),
        since=since,
        allows_reseed=allows_reseed,
    )

    def decorate(fn: Callable[[CheckContext], Any]) -> Callable[[CheckContext], Any]:
        if id in _CHECKS and _CHECKS[id].run is not fn:
            raise ConfigurationError(f"check {id!r} is already registered")
        _CHECKS[id] = Check(info, fn)
        return fn

    return decorate


def _load() -> None:
    # deferred: import cycle: the checks register themselves through this module
    import worldflux.conformance.checks  # noqa: F401  (registers every built-in check)


def all_checks() -> list[Check]:
    """Every registered check, ordered by family then id."""
    _load()
    order = {f: i for i, f in enumerate(FAMILIES)}
    index = {check_id: i for i, check_id in enumerate(_CHECKS)}
    return sorted(_CHECKS.values(), key=lambda c: (order[c.info.family], index[c.info.id]))


def get_check(check_id: str) -> Check:
    """The check registered as ``check_id``.

    Raises:
        ConfigurationError: unknown id, with the closest ids.
    """
    _load()
    found = _CHECKS.get(check_id)
    if found is None:
        raise ConfigurationError(f"unknown check {check_id!r}" + did_you_mean(check_id, _CHECKS))
    return found


def _matches(check_id: str, pattern: str) -> bool:
    """``io`` matches the family, ``io.rollout`` every id below it, ``io.loss`` exactly."""
    return check_id == pattern or check_id.startswith(pattern + ".")


def select_checks(
    include: list[str] | None = None, exclude: list[str] | None = None
) -> list[Check]:
    """Checks whose id equals or starts with (dot-separated) an ``include`` pattern.

    Raises:
        ConfigurationError: a pattern that matches no check.
    """
    checks = all_checks()
    ids = [c.info.id for c in checks]
    for pattern in [*(include or []), *(exclude or [])]:
        if not any(_matches(i, pattern) for i in ids):
            raise ConfigurationError(
                f"--checks/--exclude-checks: {pattern!r} matches no check"
                + did_you_mean(pattern, ids + list(FAMILIES))
            )
    if include:
        checks = [c for c in checks if any(_matches(c.info.id, p) for p in include)]
    if exclude:
        checks = [c for c in checks if not any(_matches(c.info.id, p) for p in exclude)]
    return checks
