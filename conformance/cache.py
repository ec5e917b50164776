"""Where the conformance suite writes by default (never the current directory)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Where the suite writes by default (never the CWD): ``$WORLDFLUX_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/worldflux``, else ``~/.cache/worldflux``; then ``/conformance``."""
    root = os.environ.get("WORLDFLUX_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = str(Path(xdg) / "worldflux") if xdg else str(Path.home() / ".cache" / "worldflux")
    return Path(root) / "conformance"
