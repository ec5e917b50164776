"""Run the pinned ruff over generated Python (import sorting, lint fixes, formatting).

Generated files are formatted with the project's own ruff configuration (``pyproject.toml`` of the
target root), so ``nox -s lint`` agrees with the generator byte for byte.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

from worldflux.core.exceptions import ConfigurationError

__all__ = ["RUFF_VERSION", "format_python", "ruff_binary"]

#: The ruff release that writes committed output (pinned in pyproject's dev extra).
RUFF_VERSION = "0.17.6"


@functools.cache
def ruff_binary() -> str:
    """Path of the ruff executable (next to the interpreter first, then on PATH).

    Raises:
        ConfigurationError: ruff is missing or not the pinned version.
    """
    local = Path(sys.executable).parent / "ruff"
    path = str(local) if local.exists() else shutil.which("ruff")
    if path is None:
        raise ConfigurationError(
            f"ruff is not installed; the generator needs ruff=={RUFF_VERSION} "
            '(pip install "worldflux[codegen]")'
        )
    found = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    version = found.stdout.strip().split()[-1] if found.stdout.strip() else "?"
    if version != RUFF_VERSION:
        raise ConfigurationError(
            f"the generator needs ruff=={RUFF_VERSION} for byte-stable output, found {version} "
            f"at {path}; pip install ruff=={RUFF_VERSION}"
        )
    return path


def _run(args: list[str], text: str, cwd: Path, what: str) -> str:
    result = subprocess.run(
        [ruff_binary(), *args],
        input=text.encode("utf-8"),
        capture_output=True,
        cwd=cwd,
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip()
        raise ConfigurationError(
            f"generated {what} does not pass `ruff {args[0]}` (a generator bug, or a spec value "
            f"ruff rejects; report it):\n{detail}"
        )
    return result.stdout.decode("utf-8")


#: The rules and layout of generated code in a user's project (ruff ``--isolated``: the project's
#: own ruff configuration never changes what worldflux writes). worldflux's own tree uses its
#: pyproject.toml, which says the same.
ISOLATED_CHECK = [
    "--isolated",
    "--line-length=100",
    "--target-version=py311",
    "--select=E,F,I,B,UP,C4,PIE,RUF",
    "--ignore=E501,RUF001,RUF002,RUF003,RUF012,UP042",
]
ISOLATED_FORMAT = ["--isolated", "--line-length=100", "--target-version=py311"]


def format_python(text: str, relpath: str, root: Path, *, isolated: bool = False) -> str:
    """``ruff check --fix`` then ``ruff format`` of ``text`` as if it were ``root/relpath``
    (with ``isolated``, worldflux's own settings instead of the project's)."""
    check = ISOLATED_CHECK if isolated else []
    layout = ISOLATED_FORMAT if isolated else []
    fixed = _run(
        ["check", *check, "--fix", "--unsafe-fixes", "--stdin-filename", relpath, "-"],
        text,
        root,
        relpath,
    )
    return _run(["format", *layout, "--stdin-filename", relpath, "-"], fixed, root, relpath)
