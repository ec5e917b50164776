"""``python -m benchmarks --baseline REV``: this tree against another revision, interleaved.

The other revision is checked out in a temporary git worktree (with the package-dir mappings of
pyproject.toml made into links, so ``import worldflux`` there is that revision's code whole).
For every workload the two trees run alternately in fresh worker processes, ``rounds`` times;
each round gives a ratio ``this / baseline`` of calibrated times (each figure already divided by
its own run's matmul calibration). The report is the median ratio and the band of the rounds'
ratios: a workload regressed only when even its best round is slower by more than the tolerance,
so a load spike in one round cannot make a verdict.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import BenchmarkError
from benchmarks.harness import RunSettings, Workload
from benchmarks.worker import parse_result
from benchmarks.workloads.commands import child_env

__all__ = ["Ratio", "format_ratios", "interleaved", "worktree"]

ROOT = Path(__file__).resolve().parent.parent
#: package dirs mapped into ``worldflux`` by pyproject.toml (linked inside the worktree)
MAPPED = {"generated": "generated", "conformance": "conformance", "specs": "specs"}


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A temporary checkout of ``rev`` whose ``worldflux`` package imports completely."""
    base = Path(tempfile.mkdtemp(prefix="wf-bench-baseline-"))
    path = base / "tree"
    added = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise BenchmarkError(f"--baseline {rev}: git worktree failed: {added.stderr.strip()}")
    try:
        for name, top in MAPPED.items():
            link = path / "worldflux" / name
            if (path / top).is_dir() and not link.exists():
                link.symlink_to(path / top, target_is_directory=True)
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def _worker(tree: Path, workload: Workload, settings: RunSettings) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.worker", workload.name, "--threads"]
    argv += [str(settings.threads), *(["--quick"] if settings.quick else [])]
    if settings.runs is not None:
        argv += ["--runs", str(settings.runs)]
    env = child_env(settings.threads)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        done = subprocess.run(
            argv,
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=workload.timeout_s,
            check=False,
        )
        return parse_result(done.stdout)
    except (subprocess.TimeoutExpired, BenchmarkError) as error:
        return {"name": workload.name, "status": "error", "reason": str(error)}


@dataclass(frozen=True)
class Ratio:
    """``this / baseline`` calibrated time of one workload (< 1 is faster).

    Attributes:
        median, low, high: over the rounds; verdict: ``faster``, ``slower``, ``same`` (the band
        straddles the tolerance) or ``not compared`` (``note`` says why).
    """

    name: str
    verdict: str
    median: float | None = None
    low: float | None = None
    high: float | None = None
    rounds: int = 0
    note: str = ""


def judge(name: str, ratios: Sequence[float], tolerance: float) -> Ratio:
    """The verdict of per-round ratios: outside the tolerance in every round, or ``same``."""
    ordered = sorted(ratios)
    median = statistics.median(ordered)
    low, high = ordered[0], ordered[-1]
    if low > 1 + tolerance:
        verdict = "slower"
    elif high < 1 / (1 + tolerance):
        verdict = "faster"
    else:
        verdict = "same"
    return Ratio(name, verdict, median, low, high, len(ordered))


def interleaved(
    workloads: Sequence[Workload],
    baseline: Path,
    settings: RunSettings,
    rounds: int = 3,
    tolerance: float = 0.1,
) -> list[Ratio]:
    """Run each workload ``rounds`` times in this tree and in ``baseline``, alternating."""
    out = []
    for workload in workloads:
        ratios: list[float] = []
        note = ""
        for index in range(rounds):
            order = (ROOT, baseline) if index % 2 == 0 else (baseline, ROOT)
            records = {tree: _worker(tree, workload, settings) for tree in order}
            mine, theirs = records[ROOT], records[baseline]
            if mine.get("status") != "ok" or theirs.get("status") != "ok":
                note = f"status {mine.get('status')} (baseline: {theirs.get('status')})"
                break
            ratios.append(float(mine["calibrated_time"]) / float(theirs["calibrated_time"]))
            print(
                f"[bench] {workload.name} round {index + 1}: x{ratios[-1]:.3f}",
                file=sys.stderr,
                flush=True,
            )
        if note or not ratios:
            out.append(Ratio(workload.name, "not compared", note=note or "no rounds"))
        else:
            out.append(judge(workload.name, ratios, tolerance))
    return out


def format_ratios(ratios: Sequence[Ratio], rev: str, tolerance: float) -> str:
    """One line per workload: median ratio, the band of rounds, the verdict."""
    lines = [
        f"this tree / {rev} (calibrated time per unit of work, < 1 is faster; a verdict needs "
        f"every round outside {tolerance:.0%}):",
        f"  {'workload':<26} {'ratio':>7} {'band':>15} {'rounds':>6}  verdict",
    ]
    for r in ratios:
        if r.median is None:
            lines.append(f"  {r.name:<26} {'-':>7} {'-':>15} {r.rounds:>6}  {r.verdict} ({r.note})")
            continue
        band = f"{r.low:.3f}..{r.high:.3f}"
        lines.append(f"  {r.name:<26} {r.median:>7.3f} {band:>15} {r.rounds:>6}  {r.verdict}")
    return "\n".join(lines)
