"""``worldflux conformance replay FILE``: re-run one saved falsifying input.

The crash file (``torch.save``) holds the target reference, the check id, the seed, the profile
and the exact input tensors; the check runs once on those tensors, without Hypothesis
regenerating anything. Prints FIXED, FAILED or ERROR.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from worldflux.conformance.crashes import CRASH_FORMAT
from worldflux.conformance.engine import make_options
from worldflux.conformance.registry import get_check
from worldflux.conformance.runner import prepare, run_check
from worldflux.conformance.target import resolve_target

from worldflux.core.exceptions import CheckpointError, ConfigurationError

__all__ = ["load_crash", "replay", "replay_crash"]


def load_crash(path: str | Path) -> dict[str, Any]:
    """Read a crash file.

    Raises:
        CheckpointError: missing, unreadable or not a conformance crash file.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"{file}: no such crash file")
    try:
        data = torch.load(file, weights_only=True)  # tensors and plain data only
    except Exception as error:
        raise CheckpointError(f"{file}: unreadable crash file ({error})") from None
    if not isinstance(data, dict) or data.get("format") != CRASH_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{file}: expected format {CRASH_FORMAT!r}, found {found!r}")
    return data


def _resolve_where_saved(ref: Any, spec_file: str | None, cwd: str | None) -> Any:
    """Resolve ``ref`` as it was resolved when the crash was saved: from the directory the run
    started in (its project models; its modules importable), whatever the current directory."""
    if not cwd or not Path(cwd).is_dir() or not isinstance(ref, str):
        return resolve_target(ref, spec_file)
    here = Path.cwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    os.chdir(cwd)
    try:
        return resolve_target(ref, spec_file)
    finally:
        os.chdir(here)


def replay_crash(data: dict[str, Any], target: Any = None) -> tuple[str, str]:
    """Re-run the saved case; returns ``(status, message)`` with status FIXED or FAILED.

    Raises:
        ConfigurationError: the target cannot be re-resolved.
    """
    ref = target if target is not None else data.get("target")
    if not ref:
        raise ConfigurationError(
            f"crash {data.get('case_id')}: the target was an in-memory object; pass --target"
        )
    resolved = _resolve_where_saved(ref, data.get("spec_file"), data.get("cwd"))
    options = make_options(
        str(data.get("profile", "ci")), int(data.get("seed", 0)), hints=data.get("hints")
    )
    check = get_check(str(data["check"]))
    prototype, contract, error = prepare(resolved, options)
    replay_inputs = data.get("inputs")
    result, _ = run_check(
        resolved,
        check,
        options,
        prototype,
        contract,
        error,
        required=resolved.declared,
        crash_dir=None,
        replay=replay_inputs if replay_inputs is not None else None,
    )
    if result.status in ("fail", "warn"):
        return "FAILED", result.message
    return "FIXED", result.message or "passes on the saved inputs"


def replay(path: str | Path, target: str | None = None) -> int:
    """CLI body: 0 FIXED, 1 FAILED (errors raise and exit 2)."""
    data = load_crash(path)
    status, message = replay_crash(data, target)
    print(f"{status}  {data.get('target_name')}  {data.get('check')}  (case {data.get('case_id')})")
    print(f"  recorded: {data.get('message')}")
    print(f"  now:      {message}")
    return 0 if status == "FIXED" else 1
