"""``python -m benchmarks --baseline REV``: this tree against another revision, interleaved.

What runs where: the other revision is checked out in a temporary git worktree (with the
package-dir mappings of pyproject.toml made into links, so ``import worldflux`` there is that
revision's code whole: its ``generated/``, ``conformance/`` and ``specs/`` too). The workload
definitions and the harness are *this* tree's: ``benchmarks/`` is copied once into a temporary
directory that comes first on both sides' ``PYTHONPATH`` (followed by the worktree, or by this
tree), and workers start with ``python -P`` so their working directory (the tree, where the CLI
workloads need it) is not on ``sys.path``, without the editable install's import hook (which would
serve a module REV lacks from this tree). Every worker reports where it imported both packages
from, and a round whose packages came from the wrong place stops the run (a
:class:`~benchmarks.BenchmarkError`): a baseline that silently measured this tree's worldflux would
compare a tree with itself. A workload whose API REV lacks is ``skipped`` there, so "not
compared", with the reason.

For every workload the two sides run alternately in fresh worker processes, ``rounds`` times;
each round gives a ratio ``this / baseline`` of calibrated times (each figure already divided by
its own run's matmul calibration) and of peak RSS. A workload with ``compare_to`` is compared
with *that* workload run on REV (e.g. a compiled path against REV's eager one). Verdicts come
from the band of the rounds (:func:`judge`), never from one round.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import BenchmarkError
from benchmarks.baseline_verdicts import Ratio, judge
from benchmarks.harness import RunSettings, Workload
from benchmarks.worker import ISOLATE_ENV, parse_result
from benchmarks.workloads.commands import child_env

__all__ = ["Side", "check_paths", "interleaved", "resolve", "snapshot", "worktree"]

ROOT = Path(__file__).resolve().parent.parent
#: package dirs mapped into ``worldflux`` by pyproject.toml (linked inside the worktree)
MAPPED = {"generated": "generated", "conformance": "conformance", "specs": "specs"}


def resolve(rev: str) -> str | None:
    """The commit ``rev`` names in this repository (None if git cannot say)."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout.strip() or None) if done.returncode == 0 else None


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


@contextmanager
def snapshot(source: Path = ROOT / "benchmarks") -> Iterator[Path]:
    """A temporary directory holding a copy of ``source`` (this tree's ``benchmarks`` package),
    to put first on a worker's ``PYTHONPATH``; both sides of a run use the same copy."""
    base = Path(tempfile.mkdtemp(prefix="wf-bench-code-"))
    try:
        shutil.copytree(source, base / source.name, ignore=shutil.ignore_patterns("__pycache__"))
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class Side:
    """One side of an interleaved run: ``worldflux`` from ``tree``, ``benchmarks`` from ``code``
    (every ``worldflux.*`` module checked to come from ``tree``).

    Workers run in ``tree`` (the CLI workloads act on the project there) with ``python -P``.
    """

    label: str
    tree: Path
    code: Path
    isolated: bool = True

    def env(self, threads: int) -> dict[str, str]:
        """The worker environment: threads pinned, ``PYTHONPATH`` = code, tree (nothing else:
        an inherited path could hold another worldflux) and, when ``isolated``, no editable
        install hook (this tree's side keeps it: it maps ``worldflux.generated`` and the other
        package dirs to this tree, which has no links for them)."""
        env = child_env(threads)
        env["PYTHONPATH"] = os.pathsep.join([str(self.code), str(self.tree)])
        if self.isolated:
            env[ISOLATE_ENV] = "1"
        else:
            env.pop(ISOLATE_ENV, None)
        return env


def check_paths(record: dict[str, Any], side: Side) -> None:
    """Raise unless ``record``'s worker imported ``worldflux`` from ``side.tree`` (every
    ``worldflux.*`` module) and ``benchmarks`` from ``side.code`` (records without paths, from a
    crashed worker, pass).

    Raises:
        BenchmarkError: naming the side, the package, where it came from and where it should.
    """
    details = record.get("details") or {}
    expected = {
        "worldflux_path": (side.tree / "worldflux").resolve(),
        "benchmarks_path": (side.code / "benchmarks").resolve(),
    }
    what = f"--baseline: the {side.label} worker of {record.get('name')}"
    for key, want in expected.items():
        found = details.get(key)
        if found is not None and Path(found).resolve() != want:
            raise BenchmarkError(
                f"{what} imported {key.removesuffix('_path')} from {found}, expected {want}; "
                "the comparison would not measure what it says"
            )
    foreign = details.get("worldflux_foreign_modules")
    if foreign:
        raise BenchmarkError(f"{what} imported worldflux modules from another tree: {foreign}")


def _worker(side: Side, name: str, settings: RunSettings, timeout_s: float) -> dict[str, Any]:
    argv = [sys.executable, "-P", "-m", "benchmarks.worker", name, "--threads"]
    argv += [str(settings.threads), *(["--quick"] if settings.quick else [])]
    if settings.runs is not None:
        argv += ["--runs", str(settings.runs)]
    if settings.warmup is not None:
        argv += ["--warmup", str(settings.warmup)]
    try:
        done = subprocess.run(
            argv,
            cwd=side.tree,
            env=side.env(settings.threads),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "status": "error", "reason": f"timed out after {timeout_s:.0f} s"}
    try:
        record = parse_result(done.stdout)
    except BenchmarkError as error:
        tail = (done.stdout + done.stderr)[-1500:]
        return {"name": name, "status": "error", "reason": f"{error}\n{tail}"}
    check_paths(record, side)
    return record


def _why_not(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    """Why a round gives no ratio: each side's status and first reason line."""
    parts = []
    for label, record in (("this tree", mine), ("baseline", theirs)):
        if record.get("status") != "ok":
            reason = (record.get("reason") or "").splitlines()[:1]
            parts.append(f"{label}: {record.get('status')}" + (f" ({reason[0]})" if reason else ""))
    return "; ".join(parts)


def interleaved(
    workloads: Sequence[Workload],
    sides: tuple[Side, Side],
    settings: RunSettings,
    rounds: int = 3,
    tolerance: float = 0.2,
    log: bool = True,
) -> tuple[list[Ratio], dict[str, list[dict[str, Any]]]]:
    """Run each workload ``rounds`` times on both sides (this tree, baseline), alternating which
    goes first; the baseline runs the workload's ``baseline_name``.

    Returns:
        the verdict of every workload, and this tree's worker records per workload name.
    """
    if rounds < 1:
        raise BenchmarkError(f"--rounds: expected >= 1, found {rounds}")
    this, base = sides
    out, records = [], {}
    for workload in workloads:
        ratios: list[float] = []
        rss: list[float] = []
        mine_all: list[dict[str, Any]] = []
        note = ""
        for index in range(rounds):
            order = (this, base) if index % 2 == 0 else (base, this)
            got = {}
            for side in order:
                name = workload.name if side is this else workload.baseline_name
                got[side.label] = _worker(side, name, settings, workload.timeout_s)
            mine, theirs = got[this.label], got[base.label]
            mine_all.append(mine)
            if mine.get("status") != "ok" or theirs.get("status") != "ok":
                note = _why_not(mine, theirs)
                break
            ratios.append(float(mine["calibrated_time"]) / float(theirs["calibrated_time"]))
            rss.append(float(mine["peak_rss_mib"]) / float(theirs["peak_rss_mib"]))
            if log:
                print(
                    f"[bench] {workload.name} round {index + 1}: x{ratios[-1]:.3f} "
                    f"(speedup {1 / ratios[-1]:.2f}, rss x{rss[-1]:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
        records[workload.name] = mine_all
        if note or not ratios:
            out.append(
                Ratio(
                    workload.name,
                    "not compared",
                    baseline=workload.baseline_name,
                    speedup_target=workload.speedup_target,
                    note=note or "no rounds",
                )
            )
        else:
            out.append(
                judge(
                    workload.name,
                    ratios,
                    tolerance,
                    speedup_target=workload.speedup_target,
                    rss_ratios=rss,
                    baseline=workload.baseline_name,
                )
            )
    return out, records
