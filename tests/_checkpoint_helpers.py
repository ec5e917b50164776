"""Helpers for checkpoint tests: find the current version of a checkpoint, edit its files and
re-seal its manifest (so a hostile edit reaches the validator behind the hash check)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from worldflux.core.checkpoint_store import POINTER


def version_dir(path: Path) -> Path:
    """The current version directory of the checkpoint at ``path``."""
    return path / (path / POINTER).read_text().strip()


def unit_dir(path: Path) -> Path:
    """The model unit of a model or training checkpoint at ``path``."""
    version = version_dir(path)
    return version / "model" if (version / "model").is_dir() else version


def reseal(unit: Path) -> None:
    """Recompute the manifest of ``unit`` from the files it holds now."""
    manifest = json.loads((unit / "manifest.json").read_text())
    manifest["files"] = {
        p.name: {"size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in sorted(unit.iterdir())
        if p.is_file() and p.name != "manifest.json"
    }
    (unit / "manifest.json").write_text(json.dumps(manifest))


def write_sealed(unit: Path, name: str, data: bytes) -> None:
    """Replace ``unit/name`` with ``data`` and re-seal the manifest."""
    (unit / name).write_bytes(data)
    reseal(unit)


def edit_json(unit: Path, name: str, **changes: Any) -> None:
    """Update top-level fields of a JSON file of ``unit`` and re-seal the manifest."""
    doc = json.loads((unit / name).read_text())
    doc.update(changes)
    write_sealed(unit, name, json.dumps(doc).encode())


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (relative name -> bytes)."""
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }
