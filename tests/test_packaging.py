"""Packaging: package list, pins, a cheap ``import worldflux``, a real non-editable install."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: repo directory -> the package it ships as
PACKAGE_ROOTS = {"worldflux": "worldflux", "generated": "worldflux.generated"}
PACKAGE_ROOTS["conformance"] = "worldflux.conformance"
PACKAGE_ROOTS["specs"] = "worldflux.specs"  # data: built-in specs, the schema, the goldens
#: modules `import worldflux` must not pull in (heavy, or only needed by one subcommand)
LAZY_MODULES = ("hypothesis", "jsonschema", "datamodel_code_generator", "gymnasium", "ruamel")
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".nox",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".benchmarks",
    "reports",
    "runs",
    ".whl",
    ".gl",
)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def tree_packages() -> dict[str, Path]:
    """package name -> directory, for every directory of the tree that holds Python files."""
    found: dict[str, Path] = {}
    for top, package in PACKAGE_ROOTS.items():
        base = ROOT / top
        for directory in [base, *sorted(p for p in base.rglob("*") if p.is_dir())]:
            if "__pycache__" in directory.parts or not any(directory.glob("*.py")):
                continue
            rel = directory.relative_to(base).parts
            found[".".join((package, *rel))] = directory
    return found


def test_package_list_matches_the_tree() -> None:
    tool = pyproject()["tool"]["setuptools"]
    listed = set(tool["packages"])
    in_tree = tree_packages()
    assert sorted(set(in_tree) - listed) == [], "directories with .py files missing from packages"
    assert sorted(listed - set(in_tree)) == [], "packages listed in pyproject.toml but not in tree"
    missing_init = sorted(name for name, d in in_tree.items() if not (d / "__init__.py").is_file())
    assert missing_init == [], "package directories without __init__.py"
    assert tool["package-dir"] == {
        "worldflux": "worldflux",
        "worldflux.generated": "generated",
        "worldflux.conformance": "conformance",
        "worldflux.specs": "specs",
    }


def test_metadata_pins_and_console_script() -> None:
    project = pyproject()["project"]
    assert project["requires-python"] == ">=3.11"
    deps = project["dependencies"]
    assert "torch==2.13.0" in deps
    for name in ("pydantic", "jsonschema", "hypothesis", "ruamel.yaml", "safetensors"):
        assert any(d.startswith(name) for d in deps), name
    assert any(d.startswith("pydantic>=2") for d in deps)
    extras = project["optional-dependencies"]
    dev, codegen = extras["dev"], extras["codegen"]
    for name in ("ruff", "datamodel-code-generator"):  # `worldflux generate` for wheel users
        pins = [d for d in codegen if d.split("==")[0] == name]
        assert len(pins) == 1 and "==" in pins[0], f"{name} must be pinned exactly"
    assert any(d.startswith("worldflux[") and "codegen" in d for d in dev)
    for name in ("pytest", "nox", "mypy"):
        assert any(d.startswith(name) for d in dev), name
    assert project["scripts"] == {"worldflux": "worldflux.cli:main"}


def test_import_worldflux_stays_cheap(tmp_path: Path) -> None:
    """A fresh interpreter: ``import worldflux`` loads none of the lazily needed libraries."""
    code = (
        "import json, sys; import worldflux; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {LAZY_MODULES!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"import worldflux eagerly imports {loaded}"


def _can_build_wheels() -> bool:
    """True when this environment's setuptools builds wheels without the ``wheel`` package."""
    import importlib.util

    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.mark.slow
def test_regular_install_works_from_another_directory(tmp_path: Path) -> None:
    """``pip install .`` (not editable) into a fresh venv, then use it from elsewhere."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    venv = tmp_path / "venv"
    # --system-site-packages: reuse the installed torch; --without-pip: the system pip and
    # setuptools then build and install into the venv (no bundled, outdated copies)
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        timeout=300,
    )
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    if sys.prefix != sys.base_prefix:
        # we run inside a venv (e.g. .ci/run): --system-site-packages would expose the base
        # interpreter's packages, not ours; point the new venv at ours (torch, pip, setuptools)
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        Path(purelib, "_outer_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # reuse our setuptools when it can build wheels itself (>= 70.1, or with `wheel`);
    # an older one (a venv's ensurepip copy) gets pip's isolated build from build-system.requires
    isolation = ["--no-build-isolation"] if _can_build_wheels() else []
    install = subprocess.run(
        [
            *(str(python), "-m", "pip", "install", "--no-deps", *isolation),
            *("--quiet", "--disable-pip-version-check", str(src)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import json, worldflux, worldflux.generated, worldflux.conformance; "
        "print(json.dumps({'models': worldflux.list_models(), 'files': ["
        "worldflux.__file__, worldflux.generated.__file__, worldflux.conformance.__file__]}))"
    )
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=elsewhere, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    installed = Path(report["files"][0]).parent.parent
    for file in report["files"]:  # the installed copy, not the checkout
        assert Path(file).is_relative_to(venv), file
    import worldflux

    assert report["models"] == worldflux.list_models()
    # every file of the package directories ships (modules, templates, schemas, data)
    missing = []
    for top, package in PACKAGE_ROOTS.items():
        base = src / top  # the snapshot that was installed
        target = installed.joinpath(*package.split("."))
        for path in base.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                if not (target / path.relative_to(base)).is_file():
                    missing.append(f"{top}/{path.relative_to(base)}")
    assert missing == [], f"files not installed by `pip install .`: {missing}"
