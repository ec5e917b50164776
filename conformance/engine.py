"""The one engine behind the CLI, the pytest plugin and ``check_model``.

For each target: build the model once (seeded), bind its contract, run every selected check in
isolation (time budget, global-state guard, fresh model copy), save falsifying inputs to crash
files, compute the achieved maturity, and return data, never a crash. One target runs in this
process (:mod:`~worldflux.conformance.runner`) or in subprocesses
(:mod:`~worldflux.conformance.isolation`); crash files: :mod:`~worldflux.conformance.crashes`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from worldflux.conformance.context import PROFILES, RunOptions
from worldflux.conformance.crashes import CRASH_FORMAT, DEFAULT_CRASH_DIR, SUITE_VERSION, versions
from worldflux.conformance.isolation import run_target_isolated
from worldflux.conformance.registry import select_checks
from worldflux.conformance.report import ConformanceReport
from worldflux.conformance.runner import run_target
from worldflux.conformance.target import Target, resolve_target

from worldflux.core.exceptions import ConfigurationError, did_you_mean
from worldflux.core.spec import ModelMaturity

__all__ = [
    "CRASH_FORMAT",
    "DEFAULT_CRASH_DIR",
    "check_model",
    "make_options",
    "run_targets",
]


def make_options(
    profile: str = "dev",
    seed: int | None = None,
    max_examples: int | None = None,
    time_budget: float | None = None,
    hints: dict[str, Any] | None = None,
    threads: int | None = 1,
    isolate: str | None = None,
    memory_limit: int | None = None,
) -> RunOptions:
    """RunOptions for a profile name; a random seed is drawn (and reported) for dev/thorough.

    Raises:
        ConfigurationError: unknown profile.
    """
    if profile not in PROFILES:
        raise ConfigurationError(f"unknown profile {profile!r}" + did_you_mean(profile, PROFILES))
    chosen = PROFILES[profile]
    if seed is None:
        seed = random.SystemRandom().randrange(2**31) if chosen.random_seed else 0
    if isolate not in (None, "target", "check"):
        raise ConfigurationError(f"isolate: expected 'target' or 'check', found {isolate!r}")
    return RunOptions(
        chosen,
        int(seed),
        max_examples,
        time_budget,
        dict(hints or {}),
        threads,
        isolate,
        memory_limit,
    )


def run_targets(
    targets: Sequence[Target],
    *,
    level: ModelMaturity | str | None = None,
    checks: list[str] | None = None,
    exclude_checks: list[str] | None = None,
    options: RunOptions | None = None,
    strict: bool = False,
    crash_dir: Path | str | None = DEFAULT_CRASH_DIR,
) -> ConformanceReport:
    """Run the selected checks on every target and collect a :class:`ConformanceReport`."""
    options = options or make_options()
    selected = select_checks(checks, exclude_checks)
    start = time.perf_counter()
    threads = torch.get_num_threads()
    if options.threads:  # small models: one intra-op thread is faster and immune to contention
        torch.set_num_threads(int(options.threads))
    runner: Any = run_target
    if options.isolate:
        runner = run_target_isolated
    try:
        results = [
            runner(
                t,
                selected,
                options,
                level=level,
                strict=strict,
                crash_dir=None if crash_dir is None else Path(crash_dir),
            )
            for t in targets
        ]
    finally:
        torch.set_num_threads(threads)
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("WORLDFLUX_")}
    return ConformanceReport(
        results=results,
        profile=options.profile.name,
        seed=options.seed,
        strict=strict,
        suite_version=SUITE_VERSION,
        environment={**versions(), **env},
        duration_s=round(time.perf_counter() - start, 3),
    )


def check_model(
    target: Any,
    level: ModelMaturity | str | None = None,
    *,
    checks: list[str] | None = None,
    exclude_checks: list[str] | None = None,
    profile: str = "dev",
    seed: int | None = None,
    max_examples: int | None = None,
    strict: bool = False,
    spec: str | Path | None = None,
    crash_dir: str | Path | None = DEFAULT_CRASH_DIR,
    time_budget: float | None = None,
    hints: dict[str, Any] | None = None,
    threads: int | None = 1,
    isolate: str | None = None,
    memory_limit: int | None = None,
) -> ConformanceReport:
    """Check one target and return the report (data, not a crash).

    Args:
        target: a registered id or alias, an import path ``pkg.mod:attr``, or an object: a
            WorldModel class, a factory, or an instance (WorldModel or adapter).
        level: the maturity to check against (default: the declared one).
        checks / exclude_checks: ids or prefixes (``io``, ``io.rollout``).
        profile: ``dev`` (default), ``ci`` or ``thorough``.
        seed: run seed (random for dev/thorough when None; reported).
        spec: a ``--spec`` file giving contract and maturity of an external target.
        crash_dir: where falsifying inputs are saved (None: not saved).
        time_budget: per-check budget in seconds for a cheap check (medium x2, expensive x4).
        hints: ``seq_lens``, ``swap_candidates`` (see :class:`RunOptions`).
        threads: intra-op torch threads during the run (default 1; None keeps the current).
        isolate: None (in this process), ``"target"`` (one subprocess per target) or
            ``"check"`` (one per check): a target that exits, crashes or leaves threads
            running fails the check that was running, in a temporary CWD (writes reported).
        memory_limit: bytes of address space of each subprocess (``isolate`` only).

    Raises:
        WorldFluxError: only for usage errors (unknown target, unreadable spec, bad check id).
    """
    resolved = resolve_target(target, spec)
    options = make_options(
        profile, seed, max_examples, time_budget, hints, threads, isolate, memory_limit
    )
    return run_targets(
        [resolved],
        level=level,
        checks=checks,
        exclude_checks=exclude_checks,
        options=options,
        strict=strict,
        crash_dir=crash_dir,
    )
