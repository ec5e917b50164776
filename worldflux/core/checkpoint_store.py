"""Crash-safe checkpoint directories: versioned subdirectories plus an atomically replaced pointer.

Layout of a checkpoint path ``ckpt/``::

    ckpt/CHECKPOINT          one line: the name of the current version, e.g. ``v000003-0a1b2c3d``
    ckpt/v000003-0a1b2c3d/   the checkpoint itself (its files + manifest.json)

A save fills ``ckpt/.tmp-<pid>-<hex>/`` (every file fsynced), renames it to a fresh version
name, writes the pointer to ``ckpt/.tmp-<pid>-<hex>.pointer`` and renames that over
``ckpt/CHECKPOINT`` (one atomic ``rename``), then deletes the previous version. A save killed at
any point therefore leaves the old pointer naming the complete old version, or the new pointer
naming the complete new one: there is no moment with nothing loadable at ``ckpt``. Temporaries
and unreferenced versions left by killed saves (whose process is gone) are removed by the next
save or load. Concurrent saves to one path are not supported.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worldflux.core.checkpoint_io import MANIFEST, parse_json, read_regular_file
from worldflux.core.exceptions import CheckpointError

__all__ = ["POINTER", "UnitWriter", "cleanup_stale", "resolve", "write_checkpoint"]

POINTER = "CHECKPOINT"
_VERSION = re.compile(r"v(\d{6,18})-(\d{1,10})-([0-9a-f]{8})")
_TMP = re.compile(r"\.tmp-(\d{1,10})-[0-9a-f]{8}(\.pointer)?")

#: Called with a label after every filesystem operation of a save (tests kill the process here).
step_hook: Callable[[str], None] | None = None


def _step(label: str) -> None:
    if step_hook is not None:
        step_hook(label)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class UnitWriter:
    """Writes the files of one checkpoint unit (a directory) and its manifest.

    Every file is written, flushed and fsynced, with a kill point after each operation.
    """

    def __init__(self, root: Path, kind: str, format_version: int) -> None:
        self.root = root
        self.kind = kind
        self.format_version = format_version
        self.files: dict[str, dict[str, Any]] = {}
        root.mkdir(exist_ok=True)
        _step(f"mkdir {root.name}")

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write ``name`` and record its size and SHA-256."""
        with open(self.root / name, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        _step(f"write {self.root.name}/{name}")

    def write_json(self, name: str, document: Any) -> None:
        """Write ``document`` as JSON (CheckpointError if it cannot be encoded)."""
        try:
            text = json.dumps(document, indent=1, sort_keys=True) + "\n"
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"cannot save {name} as JSON: {error}") from None
        self.write_bytes(name, text.encode("utf-8"))

    def subunit(self, name: str, kind: str) -> UnitWriter:
        """A nested unit (its own manifest), e.g. the ``model/`` of a training checkpoint."""
        return UnitWriter(self.root / name, kind, self.format_version)

    def close(self) -> None:
        """Write the manifest and fsync the directory."""
        manifest = {"format_version": self.format_version, "kind": self.kind, "files": self.files}
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        with open(self.root / MANIFEST, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        _step(f"write {self.root.name}/{MANIFEST}")
        _fsync_dir(self.root)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers: this process is not saving to this path right now
    if os.name == "nt":
        return True  # os.kill(pid, 0) would send CTRL_C_EVENT there: never guess, keep it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _read_pointer(target: Path) -> str | None:
    path = target / POINTER
    if not os.path.lexists(path):
        return None
    name = read_regular_file(path, 256, "pointer").decode("ascii", "replace").strip()
    if not _VERSION.fullmatch(name):
        raise CheckpointError(f"{path}: field 'version' {name[:80]!r} is not a version name")
    return name


def cleanup_stale(target: Path) -> list[str]:
    """Remove temporaries and unreferenced versions left by killed saves; returns their names.

    Entries of a process that is still running are kept; errors (read-only media) are ignored.
    """
    removed: list[str] = []
    try:
        current = _read_pointer(target)
        names = [p.name for p in target.iterdir()]
    except (OSError, CheckpointError):
        return removed
    for name in names:
        tmp, version = _TMP.fullmatch(name), _VERSION.fullmatch(name)
        match = tmp or version
        if match is None or name == current:
            continue
        pid = int(match.group(1) if tmp else match.group(2))
        if _alive(pid):
            continue
        path = target / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(name)
        except OSError:
            pass
    return removed


def resolve(target: Path) -> Path:
    """The current version directory of the checkpoint at ``target`` (stale temporaries are
    cleaned up on the way).

    Raises:
        CheckpointError: no checkpoint, a corrupt pointer, or a pointer to nothing.
    """
    target = Path(target)
    if not target.is_dir():
        raise CheckpointError(f"{target}: no such checkpoint directory")
    current = _read_pointer(target)
    if current is None:
        cleanup_stale(target)  # a first save that was killed before it published anything
        _refuse_legacy(target)
        raise CheckpointError(
            f"{target / POINTER}: missing (not a worldflux checkpoint, or one written by a "
            "worldflux before checkpoint format 2; re-save it with that version)"
        )
    version = target / current
    try:
        mode = os.lstat(version).st_mode
    except OSError:
        raise CheckpointError(f"{target / POINTER}: names {current!r}, which is missing") from None
    if not stat.S_ISDIR(mode):
        raise CheckpointError(f"{version}: not a directory")
    cleanup_stale(target)
    return version


def _refuse_legacy(target: Path) -> None:
    """Name the file and field of a checkpoint written before format 2 (no pointer)."""
    for name in ("metadata.json", "training_state.json"):
        path = target / name
        if not os.path.lexists(path):
            continue
        try:
            doc = parse_json(read_regular_file(path, 1 << 20, name), path)
            version = doc.get("format_version") if isinstance(doc, dict) else None
        except CheckpointError:
            version = "unreadable"
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (expected 2: this worldflux "
            "reads crash-safe checkpoints with a CHECKPOINT pointer); load it with the worldflux "
            "that wrote it and save it again"
        )


def write_checkpoint(
    target: Path,
    kind: str,
    format_version: int,
    fill: Callable[[UnitWriter], None],
    legacy: frozenset[str] = frozenset(),
) -> Path:
    """Write a new version of the checkpoint at ``target`` (see the module docstring).

    Args:
        target: the checkpoint path (a directory, created if missing).
        kind, format_version: recorded in the version's manifest.
        fill: writes the files through the :class:`UnitWriter` it is given.
        legacy: names of an older layout that may sit in ``target``; they are removed after
            the new version is in place.

    Raises:
        CheckpointError: ``target`` is a file, or a directory holding unrelated files.
    """
    target = Path(target)
    if os.path.lexists(target) and (target.is_symlink() or not target.is_dir()):
        raise CheckpointError(f"{target}: exists and is not a directory")
    if target.is_dir():
        ours = {POINTER} | legacy
        foreign = sorted(
            p.name
            for p in target.iterdir()
            if p.name not in ours and not _TMP.fullmatch(p.name) and not _VERSION.fullmatch(p.name)
        )
        if foreign:
            raise CheckpointError(
                f"{target}: exists and holds files that are not part of a worldflux checkpoint "
                f"({', '.join(foreign[:5])}); refusing to replace it, choose an empty or new "
                "directory"
            )
        cleanup_stale(target)
    else:
        target.mkdir(parents=True)
        _step("mkdir target")
    try:
        previous = _read_pointer(target)
    except CheckpointError:
        previous = None  # a corrupt pointer is replaced
    seq = int(_VERSION.fullmatch(previous).group(1)) + 1 if previous else 1  # type: ignore[union-attr]
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    tmp = target / f".tmp-{tag}"
    version = f"v{seq:06d}-{tag}"
    pointer = target / f".tmp-{tag}.pointer"
    published = False
    try:
        writer = UnitWriter(tmp, kind, format_version)
        fill(writer)
        writer.close()
        os.rename(tmp, target / version)
        _step("rename version")
        _fsync_dir(target)
        with open(pointer, "wb") as handle:
            handle.write(version.encode("ascii") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        _step("write pointer")
        os.replace(pointer, target / POINTER)
        published = True
        _step("replace pointer")
        _fsync_dir(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not published:
            shutil.rmtree(target / version, ignore_errors=True)
        if pointer.exists():
            pointer.unlink()
        raise
    present = {p.name for p in target.iterdir()}
    doomed = sorted(legacy & present) + ([previous] if previous in present else [])
    for name in doomed:
        path = target / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        _step(f"remove {name}")
    return target
