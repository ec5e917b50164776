"""The one set of profiles (``dev``, ``ci``, ``thorough``): how many examples, how large, how
long, for the conformance suite *and* for worldflux's own property tests.

A conformance run picks a :class:`Profile` by name (``worldflux conformance run --profile ci``);
the test suite loads the Hypothesis profile of the same name (``HYPOTHESIS_PROFILE=ci``, the
default), registered here by :func:`register_hypothesis_profiles` with the same policy: ``ci`` is
reproducible on any machine (derandomized, no example database, no deadline), ``dev`` keeps a
database outside the working tree and shrinks, ``thorough`` runs many examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from worldflux.conformance.cache import cache_dir

__all__ = ["PROFILES", "Profile", "example_database", "register_hypothesis_profiles"]


@dataclass(frozen=True)
class Profile:
    """Hypothesis and size settings of a run.

    Attributes:
        max_examples: examples for a cheap check (medium: half, expensive: a quarter, min 1),
            drawn after the two explicit cases every check runs.
        max_batch, max_horizon: upper bounds of ``B`` and ``H``.
        shrink: shrink failing examples (slower, smaller repros).
        database: keep Hypothesis's example database (in worldflux's cache, never the CWD).
        budget_s: wall-clock budget of a cheap check (medium x2, expensive x4).
        random_seed: draw a fresh seed per run unless ``--seed`` is given.
        learn_steps: optimiser steps of ``numeric.learnability``.
        state_machine_steps: steps of the stateful rollout executor.
        property_examples: examples of one property test of worldflux's own test suite.
    """

    name: str
    max_examples: int
    max_batch: int
    max_horizon: int
    shrink: bool
    database: bool
    budget_s: float
    random_seed: bool
    learn_steps: int
    state_machine_steps: int
    property_examples: int


PROFILES: dict[str, Profile] = {
    "dev": Profile("dev", 6, 4, 4, True, True, 60.0, True, 12, 8, 10),
    "ci": Profile("ci", 3, 3, 3, False, False, 30.0, False, 6, 6, 30),
    "thorough": Profile("thorough", 100, 8, 8, True, False, 600.0, True, 60, 30, 500),
}


def example_database(profile: Profile, directory: Path | None = None) -> Any:
    """The Hypothesis example database of ``profile``: None, or a directory database in
    ``directory`` (default: worldflux's cache directory; never the CWD's ``.hypothesis/``)."""
    if not profile.database:
        return None
    if directory is None:
        directory = cache_dir() / "hypothesis"
    return DirectoryBasedExampleDatabase(str(directory))


def register_hypothesis_profiles(database_dir: Path | None = None) -> None:
    """Register a Hypothesis profile per :data:`PROFILES` entry, under the same name, for
    property tests (``settings.load_profile("ci")``). ``database_dir`` is where profiles with a
    database keep it (default: worldflux's cache directory)."""
    for profile in PROFILES.values():
        settings.register_profile(
            profile.name,
            max_examples=profile.property_examples,
            derandomize=not profile.random_seed,
            database=example_database(profile, database_dir),
            deadline=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
