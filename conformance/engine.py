"""The one engine behind the CLI, the pytest plugin and ``check_model``.

For each target: build the model once (seeded), bind its contract, run every selected check in
isolation (time budget, global-state guard, fresh model copy), save falsifying inputs to crash
files, compute the achieved maturity, and return data, never a crash.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from worldflux.conformance.context import (
    PROFILES,
    CheckContext,
    CheckSkipped,
    NotExercised,
    RunOptions,
)
from worldflux.conformance.guard import CheckTimeout, guard_global_state, manual_seed, time_budget
from worldflux.conformance.registry import LEVELS, Check, Obligation, select_checks
from worldflux.conformance.report import CheckResult, ConformanceReport, TargetResult
from worldflux.conformance.target import Target, bind_contract, resolve_target

from worldflux.core.exceptions import ConfigurationError, did_you_mean
from worldflux.core.spec import ModelMaturity

__all__ = [
    "CRASH_FORMAT",
    "DEFAULT_CRASH_DIR",
    "check_model",
    "make_options",
    "run_targets",
]

CRASH_FORMAT = "worldflux-conformance-crash/1"


def cache_dir() -> Path:
    """Where the suite writes by default (never the CWD): ``$WORLDFLUX_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/worldflux``, else ``~/.cache/worldflux``; then ``/conformance``."""
    root = os.environ.get("WORLDFLUX_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = str(Path(xdg) / "worldflux") if xdg else str(Path.home() / ".cache" / "worldflux")
    return Path(root) / "conformance"


DEFAULT_CRASH_DIR = cache_dir() / "crashes"
SUITE_VERSION = "1"


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


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if not isinstance(error, AssertionError | CheckTimeout):
        text = f"{type(error).__name__}: {text}"
    for note in getattr(error, "__notes__", []) or []:
        note = str(note)
        if note.startswith("Falsifying example"):
            flat = " ".join(note.split())
            match = re.search(r"case=(Case\(.*?\))", flat)
            text += " | falsifying example: " + (match.group(1) if match else flat)
    return text


def _traceback(error: BaseException) -> str:
    """The formatted traceback, with the chained cause (the target's own frames) included."""
    import traceback

    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return text[-8000:]


def _blob(error: BaseException) -> str | None:
    for note in getattr(error, "__notes__", []) or []:
        if "@reproduce_failure" in str(note):
            return str(note)
    return None


def _prepare(target: Target, options: RunOptions) -> tuple[Any, Any, str | None]:
    problems: list[str] = []
    try:
        with guard_global_state(problems), time_budget(options.budget(_build_cost())):
            manual_seed(options.seed)
            model = target.factory()
    except CheckTimeout as error:
        return None, None, f"building the model {error}"
    except Exception as error:
        return None, None, f"{type(error).__name__}: {error}"
    try:
        contract = bind_contract(model, target)
    except Exception as error:
        return model, None, f"{type(error).__name__}: {error}"
    return model, contract, None


def _build_cost() -> Any:
    from worldflux.conformance.registry import Cost

    return Cost.EXPENSIVE


def _required(target: Target, level: ModelMaturity | str | None) -> ModelMaturity:
    return target.declared if level is None else ModelMaturity.parse(level)


def _repro(target: Target, check: Check, options: RunOptions) -> str:
    if not target.ref:
        return f"check_model(<object>, checks=[{check.info.id!r}], seed={options.seed})"
    spec = f" --spec {target.spec_file}" if target.spec_file else ""
    return (
        f"worldflux conformance run {target.ref}{spec} --checks {check.info.id} "
        f"--seed {options.seed} --profile {options.profile.name}"
    )


def _save_crash(
    ctx: CheckContext,
    result: CheckResult,
    options: RunOptions,
    crash_dir: Path,
    blob: str | None,
) -> Path | None:
    key = f"{ctx.target.name}|{result.id}|{options.seed}|{result.message}"
    case_id = hashlib.sha256(key.encode()).hexdigest()[:12]
    payload = {
        "format": CRASH_FORMAT,
        "case_id": case_id,
        "target": ctx.target.ref,  # file paths made absolute when the target was resolved
        "target_name": ctx.target.name,
        "spec_file": ctx.target.spec_file,  # absolute
        "cwd": ctx.target.cwd,  # import root of `pkg.module:attr` targets and project models
        "check": result.id,
        "message": result.message,
        "traceback": result.traceback,
        "seed": options.seed,
        "profile": options.profile.name,
        "hints": _hints(ctx),
        "inputs": ctx.recorded,
        "hypothesis_blob": blob,
        "versions": _versions(),
    }
    try:
        crash_dir.mkdir(parents=True, exist_ok=True)
        path = crash_dir / f"{case_id}.pt"
        torch.save(payload, path)
    except Exception:  # an unwritable crash dir must not hide the failure itself
        return None
    return path


def _hints(ctx: CheckContext) -> dict[str, Any]:
    """Every hint in effect (known, spec, model attribute, run), for the crash file."""
    try:
        return dict(ctx.hints())
    except Exception:
        return dict(ctx.options.hints)


def run_check(
    target: Target,
    check: Check,
    options: RunOptions,
    prototype: Any,
    contract: Any,
    build_error: str | None,
    *,
    required: ModelMaturity,
    strict: bool = False,
    crash_dir: Path | None = DEFAULT_CRASH_DIR,
    replay: dict[str, Any] | None = None,
) -> tuple[CheckResult, CheckContext]:
    """Run one check in isolation and classify its outcome (never raises, but on Ctrl-C)."""
    info = check.info
    obligation = info.obligation(required)
    ctx = CheckContext(target, info, options, prototype, contract, build_error, replay)
    result = CheckResult(
        id=info.id,
        family=info.family,
        obligation=obligation.value,
        status="pass",
        code=info.code,
        clause=info.clause,
        cost=info.cost.value,
    )
    start = time.perf_counter()
    if info.capability is not None and prototype is not None:
        if info.capability not in ctx.capabilities():
            result.status = "skip"
            result.message = f"n/a: capability {info.capability.value!r} not declared"
            return result, ctx
    problems: list[str] = []
    error: BaseException | None = None
    try:
        with guard_global_state(problems), time_budget(options.budget(info.cost)):
            check.run(ctx)
    except CheckSkipped as skipped:
        result.status, result.message = "skip", str(skipped)
    except NotExercised as skipped:
        result.status, result.message = "not-exercised", str(skipped)
    except KeyboardInterrupt:
        raise
    except BaseException as caught:  # the target may raise anything, SystemExit included
        error = caught
        result.status, result.message = "fail", _describe(caught)
        result.traceback = _traceback(caught)
    if info.allows_reseed:
        problems = [p for p in problems if not p.startswith("reseeded")]
    if problems:
        text = "changed global torch state: " + "; ".join(dict.fromkeys(problems))
        result.message = text if result.status != "fail" else f"{result.message}; {text}"
        result.status = "fail"
    result.duration_s = round(time.perf_counter() - start, 4)
    if result.status == "fail" and obligation is Obligation.SHOULD and not strict:
        result.status = "warn"
    if result.status in ("fail", "warn"):
        if crash_dir is not None and replay is None:
            path = _save_crash(
                ctx, result, options, Path(crash_dir), _blob(error) if error else None
            )
            if path is not None:
                result.crash_file = str(path)
                result.repro = f"worldflux conformance replay {path}  |  " + _repro(
                    target, check, options
                )
        if result.repro is None:
            result.repro = _repro(target, check, options)
    return result, ctx


def achieved_level(results: Sequence[CheckResult], required: ModelMaturity) -> str:
    """The highest level (up to ``required``) whose MUST checks all passed; ``none`` if none."""
    from worldflux.conformance.registry import get_check

    achieved = "none"
    for level in LEVELS:
        if level.rank > required.rank:
            break
        musts = [r for r in results if get_check(r.id).info.obligation(level) is Obligation.MUST]
        if any(r.violated for r in musts):
            break
        achieved = level.value
    return achieved


def run_target(
    target: Target,
    checks: Sequence[Check],
    options: RunOptions,
    *,
    level: ModelMaturity | str | None = None,
    strict: bool = False,
    crash_dir: Path | None = DEFAULT_CRASH_DIR,
) -> TargetResult:
    """Every applicable check of ``checks`` on one target."""
    required = _required(target, level)
    prototype, contract, build_error = _prepare(target, options)
    results: list[CheckResult] = []
    for check in checks:
        if check.info.obligation(required) is Obligation.NA:
            continue
        result, _ = run_check(
            target,
            check,
            options,
            prototype,
            contract,
            build_error,
            required=required,
            strict=strict,
            crash_dir=crash_dir,
        )
        results.append(result)
    return finish_target(target, required, results, build_error)


def finish_target(
    target: Target,
    required: ModelMaturity,
    results: list[CheckResult],
    build_error: str | None,
) -> TargetResult:
    """The TargetResult of ``results``: achieved maturity and verdict."""
    achieved = achieved_level(results, required)
    rank = -1 if achieved == "none" else ModelMaturity(achieved).rank
    passed = rank >= required.rank and not any(r.status == "fail" for r in results)
    return TargetResult(
        target=target.name,
        declared_maturity=target.declared.value,
        required_maturity=required.value,
        achieved_maturity=achieved,
        passed=passed,
        checks=results,
        preset=target.preset,
        error=build_error,
    )


def _versions() -> dict[str, str]:
    import hypothesis

    from worldflux import __version__

    return {
        "worldflux": __version__,
        "suite": SUITE_VERSION,
        "torch": str(torch.__version__),
        "hypothesis": hypothesis.__version__,
        "python": platform.python_version(),
    }


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
        from worldflux.conformance.isolation import run_target_isolated

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
        environment={**_versions(), **env},
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
