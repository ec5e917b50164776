"""Project tasks: `nox -l` lists them.

Sessions run in the current environment (``venv_backend="none"``): install once with
``pip install -e ".[dev]"`` (torch==2.13.0 is a local CPU wheel here; per-session venvs would only
re-copy it). ``nox -s ci`` is what CI runs.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["ci"]

PACKAGES = ["worldflux", "conformance", "generated", "tests", "benchmarks", "noxfile.py"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check + import-linter layer contracts."""
    session.run("ruff", "check", *PACKAGES)
    session.run("ruff", "format", "--check", *PACKAGES)
    session.run("lint-imports")  # the layer contracts in pyproject.toml [tool.importlinter]


@nox.session
def fmt(session: nox.Session) -> None:
    """Apply ruff fixes and formatting."""
    session.run("ruff", "check", "--fix", *PACKAGES)
    session.run("ruff", "format", *PACKAGES)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over everything that ships: worldflux with conformance/ and generated/ checked under
    their installed names (worldflux.conformance, worldflux.generated) through a temporary tree
    of symlinks (the package-dir mapping is invisible to mypy)."""
    if session.posargs:
        session.run("mypy", *session.posargs)
        return
    import tempfile
    from pathlib import Path

    root = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="wf-typecheck-") as scratch:
        package = Path(scratch) / "worldflux"
        package.mkdir()
        for entry in (root / "worldflux").iterdir():
            if entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry)
        for name in ("conformance", "generated", "specs"):
            (package / name).symlink_to(root / name)
        session.chdir(scratch)
        config = str(root / "pyproject.toml")
        cache = str(root / ".mypy_cache" / "shipped")
        session.run("mypy", "--config-file", config, "--cache-dir", cache, "worldflux")
        session.chdir(root)


@nox.session
def tests(session: nox.Session) -> None:
    """The fast test suite (slow-marked tests excluded)."""
    session.run("pytest", "-m", "not slow and not wheel", *session.posargs)


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the wheel, install it in a fresh venv, use it outside the checkout (README command,
    a user project, the example plugin)."""
    session.run("pytest", "-m", "wheel", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Slow tests only: large parity goldens, learning on real environments."""
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def generate(session: nox.Session) -> None:
    """Regenerate generated/ from specs/ (`nox -s generate -- --check` verifies instead)."""
    session.run("python", "-m", "worldflux.codegen", *session.posargs)


@nox.session
def conformance(session: nox.Session) -> None:
    """Conformance scoreboard of every registered model (ci profile)."""
    session.run(
        "worldflux", "conformance", "run", *(session.posargs or ["--all", "--profile", "ci"])
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Calibrated benchmarks, JSON to reports/bench.json (`-- --compare` against the baseline)."""
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def mutate(session: nox.Session) -> None:
    """Mutation testing of conformance/checks: prints the kill rate, fails below 90%."""
    session.run("python", "tests/conformance_mutation.py", "--min-rate", "0.9", *session.posargs)


@nox.session(name="conformance-ci")
def conformance_ci(session: nox.Session) -> None:
    """Every shipped model must pass the conformance suite at the ci profile (exit 0)."""
    session.run("worldflux", "conformance", "run", "--all", "--profile", "ci")


#: mbrl-lib and the few of its dependencies PlaNet needs, pinned; installed with --no-deps into a
#: private directory (mbrl 0.2.0 pins gymnasium 0.26 and hydra 1.0, which do not fit here)
THIRDPARTY = [
    "mbrl==0.2.0",
    "hydra-core==1.3.2",
    "omegaconf==2.3.0",
    "antlr4-python3-runtime==4.9.3",
    "termcolor==3.3.0",
]


@nox.session
def thirdparty(session: nox.Session) -> None:
    """A real third-party world model (mbrl-lib's PlaNet) through its adapter
    (examples/thirdparty/mbrl_planet.py): it must pass the conformance suite at the ci profile."""
    site = ".nox/thirdparty-site"
    session.run(
        "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target", site, *THIRDPARTY
    )
    session.run(
        "worldflux",
        "conformance",
        "run",
        "examples/thirdparty/mbrl_planet.py:make_adapter",
        "--profile",
        "ci",
        *session.posargs,
        env={"PYTHONPATH": site},
    )


@nox.session
def ci(session: nox.Session) -> None:
    """Everything CI checks: lint, types, generated code up to date, fast tests, every shipped
    model and a third-party one (mbrl-lib's PlaNet) conformant at the ci profile, the wheel."""
    session.notify("lint")
    session.notify("typecheck")
    session.notify("generate", ["--check"])
    session.notify("tests")
    session.notify("conformance-ci")
    session.notify("thirdparty")
    session.notify("wheel")
