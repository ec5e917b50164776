"""Isolation of one check: a wall-clock budget and a guard on global torch state.

A check that overruns its budget is interrupted (``SIGALRM``, main thread on POSIX) with
:class:`CheckTimeout`, a ``BaseException`` so a target's ``except Exception`` cannot swallow it.
:func:`guard_global_state` records changes of the default dtype and grad mode and every reseed of
the global torch RNG made by the target, then restores all three.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = [
    "CheckTimeout",
    "global_snapshot",
    "guard_global_state",
    "manual_seed",
    "snapshot_changes",
    "time_budget",
]

#: torch's own seeding function, captured before any spy is installed; the suite seeds with it.
manual_seed: Callable[[int], Any] = torch.random.manual_seed
_SPIED = ("manual_seed", "seed")


class CheckTimeout(BaseException):
    """A check exceeded its wall-clock budget."""


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Interrupt the body after ``seconds`` (no-op when None, off the main thread or on Windows)."""
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "SIGALRM")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return
    assert seconds is not None

    def interrupt(signum: int, frame: Any) -> None:
        raise CheckTimeout(f"exceeded the time budget of {seconds:g} s")

    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)  # e.g. pytest-timeout's own alarm
    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, interrupt)
    # re-fire every second: an exception raised while a gc callback runs is swallowed by Python
    first = seconds if outer_left <= 0 else min(seconds, outer_left)
    signal.setitimer(signal.ITIMER_REAL, first, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:  # give the outer alarm back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-3))


def global_snapshot() -> dict[str, Any]:
    """The global state a target must leave as it found it after every call."""
    return {
        "default dtype": torch.get_default_dtype(),
        "grad mode": torch.is_grad_enabled(),
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "intra-op threads": torch.get_num_threads(),
        "live Python threads": frozenset(
            t.ident for t in threading.enumerate() if t.ident is not None
        ),
    }


def snapshot_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two :func:`global_snapshot` results (empty: nothing)."""
    out: list[str] = []
    for key, old in before.items():
        new = after[key]
        if new == old:
            continue
        if key == "live Python threads":
            started = [
                t.name for t in threading.enumerate() if t.ident in new - old and t.is_alive()
            ]
            if started:
                out.append(f"left {len(started)} thread(s) running: {started[:4]}")
            continue
        out.append(f"changed {key} from {old} to {new}")
    return out


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "guard.py" not in frame.filename:
            return f"{frame.filename}:{frame.lineno}"
    return "?"


@contextmanager
def guard_global_state(problems: list[str]) -> Iterator[None]:
    """Append to ``problems`` every global torch state change made inside the body; restore it.

    Watched: ``torch.get_default_dtype()``, ``torch.is_grad_enabled()``, the
    deterministic-algorithms flag, ``torch.get_num_threads()``, and calls of
    ``torch.manual_seed`` / ``torch.seed`` (also via ``torch.random``) by the target.
    The global RNG state is restored afterwards, so running the suite never perturbs it.
    """
    dtype = torch.get_default_dtype()
    grad = torch.is_grad_enabled()
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    rng = torch.random.get_rng_state()
    originals: dict[tuple[Any, str], Any] = {}

    def spy(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            problems.append(f"reseeded the global torch RNG: torch.{name}() called at {_caller()}")
            return original(*args, **kwargs)

        return wrapper

    for module in (torch, torch.random):
        for name in _SPIED:
            original = getattr(module, name)
            originals[(module, name)] = original
            setattr(module, name, spy(name, original))
    try:
        yield
    finally:
        for (module, name), original in originals.items():
            setattr(module, name, original)
        if torch.get_default_dtype() != dtype:
            problems.append(
                f"changed the default dtype from {dtype} to {torch.get_default_dtype()}"
            )
            torch.set_default_dtype(dtype)
        if torch.is_grad_enabled() != grad:
            problems.append(f"changed grad mode from enabled={grad} to {torch.is_grad_enabled()}")
            torch.set_grad_enabled(grad)
        if torch.are_deterministic_algorithms_enabled() != deterministic:
            problems.append(f"changed the deterministic-algorithms flag from {deterministic}")
            torch.use_deterministic_algorithms(deterministic)
        if torch.get_num_threads() != threads:
            problems.append(f"changed intra-op threads from {threads} to {torch.get_num_threads()}")
            torch.set_num_threads(threads)
        torch.random.set_rng_state(rng)
        sys.stdout.flush()
