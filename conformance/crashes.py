"""Crash files: a failing check's exact inputs, saved for ``worldflux conformance replay``.

A crash file (``torch.save``, format :data:`CRASH_FORMAT`) holds the target reference (file paths
absolute), the check, the seed, the profile, the hints in effect, the recorded input tensors,
Hypothesis' reproduction blob and the versions that ran; :mod:`worldflux.conformance.replay`
reads it back and re-runs the check on those tensors.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import hypothesis
import torch
from worldflux.conformance.cache import cache_dir
from worldflux.conformance.context import CheckContext, RunOptions
from worldflux.conformance.registry import Check
from worldflux.conformance.report import CheckResult
from worldflux.conformance.target import Target

from worldflux.version import __version__

__all__ = ["CRASH_FORMAT", "DEFAULT_CRASH_DIR", "SUITE_VERSION", "repro", "save_crash", "versions"]

CRASH_FORMAT = "worldflux-conformance-crash/1"
DEFAULT_CRASH_DIR = cache_dir() / "crashes"
SUITE_VERSION = "1"


def versions() -> dict[str, str]:
    """The versions a crash file and a report record."""
    return {
        "worldflux": __version__,
        "suite": SUITE_VERSION,
        "torch": str(torch.__version__),
        "hypothesis": hypothesis.__version__,
        "python": platform.python_version(),
    }


def repro(target: Target, check: Check, options: RunOptions) -> str:
    """The command (or ``check_model`` call) that re-runs ``check`` on ``target``."""
    if not target.ref:
        return f"check_model(<object>, checks=[{check.info.id!r}], seed={options.seed})"
    spec = f" --spec {target.spec_file}" if target.spec_file else ""
    return (
        f"worldflux conformance run {target.ref}{spec} --checks {check.info.id} "
        f"--seed {options.seed} --profile {options.profile.name}"
    )


def save_crash(
    ctx: CheckContext,
    result: CheckResult,
    options: RunOptions,
    crash_dir: Path,
    blob: str | None,
) -> Path | None:
    """Write the crash file of ``result`` into ``crash_dir``; its path, or None when it could not
    be written (an unwritable crash dir must not hide the failure itself)."""
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
        "versions": versions(),
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
