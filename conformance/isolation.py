"""Running a target in subprocesses, so that nothing it does can take the run down.

``isolate="target"`` forks one child per target, ``isolate="check"`` one per check. Each child
optionally limits its address space (``memory_limit``), works in a temporary CWD, reports each
check as it starts and finishes over a pipe, and leaves with ``os._exit`` (a stray non-daemon
thread cannot hang it). When a child dies (``os._exit``, a segfault, the OOM killer, a budget
overrun) the check that was running becomes a FAIL naming how the process ended, and the
remaining checks run in a fresh child; the report is always complete. Files the target writes
into its CWD are reported in the message of the check that wrote them (a failure under
--strict).
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import shutil
import signal
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from worldflux.conformance.context import RunOptions
from worldflux.conformance.registry import Check, Obligation
from worldflux.conformance.report import CheckResult, TargetResult
from worldflux.conformance.runner import finish_target, prepare, required_level, run_check
from worldflux.conformance.target import Target

from worldflux.core.spec import ModelMaturity

__all__ = ["run_target_isolated"]

#: seconds granted on top of the checks' own budgets before a silent child is killed
GRACE_S = 60.0


def _files(root: str) -> set[str]:
    out: set[str] = set()
    for base, _, names in os.walk(root):
        out.update(os.path.relpath(os.path.join(base, n), root) for n in names)
    return out


def _child(
    conn: Any,
    target: Target,
    checks: Sequence[Check],
    options: RunOptions,
    required: ModelMaturity,
    strict: bool,
    crash_dir: Path | None,
    cwd: str,
) -> None:
    """Runs in the subprocess, in the empty directory ``cwd`` (the parent's to remove): build,
    run ``checks``, send results, ``os._exit``."""
    code = 0
    try:
        faulthandler.disable()  # a target's segfault is reported as a FAIL, not a dump
        if options.memory_limit:
            # deferred: Unix only (no resource module on Windows); needed with memory_limit only
            import resource

            limit = int(options.memory_limit)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if target.spec_file:
            target = replace(target, spec_file=str(Path(target.spec_file).resolve()))
        if crash_dir is not None:
            crash_dir = Path(crash_dir).resolve()
        os.chdir(cwd)
        conn.send(("start", None))
        prototype, contract, build_error = prepare(target, options)
        conn.send(("built", build_error))
        for check in checks:
            conn.send(("start", check.info.id))
            before = _files(cwd)
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
            written = sorted(_files(cwd) - before)
            if written:
                note = f"wrote into the working directory: {written[:6]}"
                result.message = f"{result.message}; {note}" if result.message else note
                if strict and result.status == "pass":
                    result.status = "fail"
            conn.send(("result", result))
        conn.send(("done", None))
    except BaseException:  # the target may raise anything, even SystemExit
        code = 1
        try:
            conn.send(("error", traceback.format_exc()))
        except Exception:
            pass
    finally:
        try:
            conn.close()
        finally:
            os._exit(code)


def _how_it_ended(exitcode: int | None, timed_out: bool) -> str:
    if timed_out:
        return "the check ran past its time budget and its process was killed"
    if exitcode is None:
        return "the process ended without a result"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        extra = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the process was killed by {name}{extra}"
    return f"the process exited with code {exitcode} (os._exit or sys.exit in the target?)"


_WARM = False


def _warm_up() -> None:
    """Pay one-time lazy costs in the parent, not once per forked child: torch's meta-device
    decompositions pull in ``torch._dynamo`` (about 1000 modules, 2 s, on first use);
    Hypothesis' stateful module."""
    global _WARM
    if _WARM:
        return
    _WARM = True
    # deferred: this is the warm-up: paid once by an isolated run, never by a plain import
    import hypothesis.stateful  # noqa: F401
    import torch._decomp.decompositions_for_rng
    import torch._dynamo

    with torch.device("meta"):
        torch.nn.Linear(4, 4)
    torch.nn.Linear(4, 4)(torch.zeros(1, 4)).sum().backward()


def _fail(check: Check, required: ModelMaturity, message: str, strict: bool) -> CheckResult:
    obligation = check.info.obligation(required)
    status = "warn" if obligation is Obligation.SHOULD and not strict else "fail"
    return CheckResult(
        id=check.info.id,
        family=check.info.family,
        obligation=obligation.value,
        status=status,
        message=message,
        code=check.info.code,
        clause=check.info.clause,
        cost=check.info.cost.value,
    )


def run_target_isolated(
    target: Target,
    checks: Sequence[Check],
    options: RunOptions,
    *,
    level: ModelMaturity | str | None = None,
    strict: bool = False,
    crash_dir: Path | None = None,
) -> TargetResult:
    """Like :func:`worldflux.conformance.runner.run_target`, in subprocesses."""
    required = required_level(target, level)
    _warm_up()
    pending = [c for c in checks if c.info.obligation(required) is not Obligation.NA]
    order = [c.info.id for c in pending]
    results: dict[str, CheckResult] = {}
    build_error: str | None = None
    context = multiprocessing.get_context("fork")
    while pending:
        batch = pending[:1] if options.isolate == "check" else list(pending)
        budget = GRACE_S + sum(options.budget(c.info.cost) for c in batch)
        reader, writer = context.Pipe(duplex=False)
        workdir = tempfile.mkdtemp(prefix="wf-conformance-cwd-")
        child = context.Process(
            target=_child,
            args=(writer, target, batch, options, required, strict, crash_dir, workdir),
            daemon=True,
        )
        child.start()
        writer.close()
        current: str | None = None
        finished = timed_out = False
        error_text = ""
        while True:
            if not reader.poll(budget):
                timed_out = True
                break
            try:
                kind, payload = reader.recv()
            except (EOFError, OSError):
                break
            if kind == "start":
                current = payload
            elif kind == "built":
                build_error = payload
            elif kind == "result":
                results[payload.id] = payload
                current = None
            elif kind == "error":
                error_text = str(payload).strip().splitlines()[-1]
            elif kind == "done":
                finished = True
                break
        reader.close()
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()
        shutil.rmtree(workdir, ignore_errors=True)
        pending = [c for c in pending if c.info.id not in results]
        if finished:
            continue
        how = _how_it_ended(child.exitcode, timed_out)
        if error_text:
            how += f": {error_text}"
        victims = [c for c in pending if c.info.id == current] or pending[:1]
        if current is None and not results:  # died while building the model
            victims = list(pending)
        for check in victims:
            results[check.info.id] = _fail(check, required, how, strict)
        pending = [c for c in pending if c.info.id not in results]
    ordered = [results[i] for i in order if i in results]
    return finish_target(target, required, ordered, build_error)
