"""One target in this process: build its model once (seeded), bind its contract, run each check
guarded (time budget, global-state guard, fresh model copy), classify the outcome, save a crash
file for a failure, and compute the achieved maturity; data, never a crash.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worldflux.conformance.context import CheckContext, CheckSkipped, NotExercised, RunOptions
from worldflux.conformance.crashes import DEFAULT_CRASH_DIR, repro, save_crash
from worldflux.conformance.guard import CheckTimeout, guard_global_state, manual_seed, time_budget
from worldflux.conformance.registry import LEVELS, Check, Cost, Obligation, get_check
from worldflux.conformance.report import CheckResult, TargetResult
from worldflux.conformance.target import Target, bind_contract

from worldflux.core.spec import ModelMaturity

__all__ = [
    "achieved_level",
    "finish_target",
    "prepare",
    "required_level",
    "run_check",
    "run_target",
]


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
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return text[-8000:]


def _blob(error: BaseException) -> str | None:
    for note in getattr(error, "__notes__", []) or []:
        if "@reproduce_failure" in str(note):
            return str(note)
    return None


def prepare(target: Target, options: RunOptions) -> tuple[Any, Any, str | None]:
    """Build ``target``'s model once (seeded, guarded) and bind its contract: ``(model,
    contract, error)``, where ``error`` says why either failed (checks then report it)."""
    problems: list[str] = []
    try:
        with guard_global_state(problems), time_budget(options.budget(Cost.EXPENSIVE)):
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


def required_level(target: Target, level: ModelMaturity | str | None) -> ModelMaturity:
    """The level checked: ``level``, else the maturity ``target`` declares."""
    return target.declared if level is None else ModelMaturity.parse(level)


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
            path = save_crash(
                ctx, result, options, Path(crash_dir), _blob(error) if error else None
            )
            if path is not None:
                result.crash_file = str(path)
                result.repro = f"worldflux conformance replay {path}  |  " + repro(
                    target, check, options
                )
        if result.repro is None:
            result.repro = repro(target, check, options)
    return result, ctx


def achieved_level(results: Sequence[CheckResult], required: ModelMaturity) -> str:
    """The highest level (up to ``required``) whose MUST checks all passed; ``none`` if none."""
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
    required = required_level(target, level)
    prototype, contract, build_error = prepare(target, options)
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
