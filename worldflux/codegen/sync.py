"""Compare rendered files with the tree; write (atomically), check or dry-run."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worldflux.codegen.rendering import GENERATED_DIR, REGENERATE_COMMAND

__all__ = ["DIFF_LINE_LIMIT", "Plan", "apply", "check_report", "dry_run_report", "plan"]

#: A stale-file diff is cut after this many lines so CI logs stay readable.
DIFF_LINE_LIMIT = 100


@dataclass
class Plan:
    """What writing ``files`` into ``root`` would change.

    Attributes:
        root: the project tree.
        files: every rendered file (relative POSIX path -> text).
        new: rendered files missing from the tree.
        changed: rendered files whose bytes differ from the tree.
        orphans: files under ``generated/`` that no spec produces.
    """

    root: Path
    files: Mapping[str, str]
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.new or self.changed or self.orphans)


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return "\ufffd"  # not what we would write: reported as changed


def _existing_generated(root: Path) -> list[str]:
    base = root / GENERATED_DIR
    if not base.is_dir():
        return []
    found = []
    for path in base.rglob("*"):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.is_dir():
            continue
        found.append(rel.as_posix())
    return sorted(found)


def plan(root: Path, files: Mapping[str, str]) -> Plan:
    """Compare ``files`` with what is on disk under ``root``."""
    result = Plan(root=root, files=files)
    for rel, text in sorted(files.items()):
        current = _read(root / rel)
        if current is None:
            result.new.append(rel)
        elif current != text:
            result.changed.append(rel)
    result.orphans = [rel for rel in _existing_generated(root) if rel not in files]
    return result


def apply(p: Plan) -> list[str]:
    """Write new and changed files, then remove orphans; returns one line per action.

    Every file is first written to a temporary sibling; only when all are written are they moved
    into place (``os.replace``), so a failure leaves the tree as it was.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for rel in [*p.new, *p.changed]:
            target = p.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(temp, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(p.files[rel])
            staged.append((temp, target))
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    lines = []
    for temp, target in staged:
        os.replace(temp, target)
        rel = target.relative_to(p.root).as_posix()
        lines.append(f"{'created' if rel in p.new else 'updated'} {rel}")
    for rel in p.orphans:
        (p.root / rel).unlink(missing_ok=True)
        lines.append(f"removed {rel} (no spec produces it)")
    return lines


def _diff(p: Plan, rel: str) -> list[str]:
    before = (_read(p.root / rel) or "").splitlines(keepends=True)
    after = p.files.get(rel, "").splitlines(keepends=True)
    if rel in p.orphans:
        after = []
    lines = list(difflib.unified_diff(before, after, f"a/{rel}", f"b/{rel}"))
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def check_report(p: Plan, limit: int = DIFF_LINE_LIMIT) -> str:
    """The ``--check`` failure text: a unified diff cut at ``limit`` lines and the fix command."""
    diff: list[str] = []
    for rel in [*p.changed, *p.new, *p.orphans]:
        diff += _diff(p, rel)
    shown = diff[:limit]
    if len(diff) > limit:
        shown.append(f"... diff cut: {len(diff) - limit} more lines\n")
    summary = (
        [f"changed: {rel} (edited by hand, or its spec changed)\n" for rel in p.changed]
        + [f"missing: {rel}\n" for rel in p.new]
        + [f"orphan:  {rel} (no spec produces it)\n" for rel in p.orphans]
    )
    return (
        "".join(shown)
        + "\n"
        + "".join(summary)
        + f"generated files are out of date; fix with: {REGENERATE_COMMAND}\n"
    )


def dry_run_report(p: Plan) -> str:
    """What a write would do, one line per file."""
    lines = (
        [f"would create {rel}" for rel in p.new]
        + [f"would update {rel}" for rel in p.changed]
        + [f"would remove {rel} (orphan)" for rel in p.orphans]
    )
    if not lines:
        return f"up to date ({len(p.files)} files)\n"
    return "\n".join(lines) + "\n"
