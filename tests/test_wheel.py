"""worldflux from a built wheel, in a fresh venv, outside any checkout (``nox -s wheel``).

The wheel is built from a snapshot of this tree and installed with its dependencies (and the
``codegen`` extra) into a new venv; every command runs from a temporary directory with a clean
environment, as a new user would run it:

- the README's main command exits 0 (built-in specs, schema and parity goldens ship);
- a user project (examples/project) generates from a subdirectory and passes conformance at its
  declared level; a broken spec and a directory without a project get one located error line;
- a plugin package (examples/plugin) installed with pip shows its model in ``models list`` and
  passes conformance.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_packaging import COPY_IGNORE, ROOT

pytestmark = pytest.mark.wheel
NO_GENERATED = shutil.ignore_patterns("generated", "__pycache__")


@dataclass(frozen=True)
class Venv:
    """A fresh venv holding the built worldflux wheel."""

    bin: Path
    tmp: Path

    def run(self, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (first word: a program of the venv) in ``cwd`` with a clean environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["COLUMNS"] = "200"
        program = self.bin / args[0]
        return subprocess.run(
            [str(program), *args[1:]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _readme_main_command() -> list[str]:
    """The README's first set-up command, without its install step (``... && <command>``)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None, "README.md has no set-up commands"
    first = block.group(1).splitlines()[0].split("#")[0]
    command = first.split("&&")[-1].split()
    assert command[0] == "worldflux", first
    return command


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    dist = tmp / "dist"
    build = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--quiet", "--disable-pip-version-check", "-w", str(dist), str(src)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("worldflux-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=300)
    made = Venv(bin=tmp / "venv" / "bin", tmp=tmp)
    install = made.run(
        "python",
        *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
        f"{wheel}[codegen]",
        cwd=tmp,
        timeout=1200,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    yield made


def _outside(venv: Venv, name: str) -> Path:
    path = venv.tmp / name
    path.mkdir()
    return path


def test_readme_main_command_from_the_wheel(venv: Venv) -> None:
    """Built-in specs, schema and parity goldens ship: both REFERENCE models keep their level."""
    where = _outside(venv, "readme")
    done = venv.run(*_readme_main_command(), cwd=where, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "11/11 targets conformant" in done.stdout
    located = venv.run(
        "python", "-c", "import worldflux, worldflux.specs; print(worldflux.__file__)", cwd=where
    )
    assert str(venv.tmp / "venv") in located.stdout, "imported the checkout, not the wheel"
    assert not list(where.iterdir()), f"the run wrote into the CWD: {list(where.iterdir())}"


def test_help_and_listing_are_fast_and_pipe_safe(venv: Venv) -> None:
    where = _outside(venv, "cli")
    listing = venv.run("worldflux", "models", "list", "tdmpc2*", cwd=where)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "MATURITY", "PARAMS", "SOURCE"]
    assert {line.split()[0] for line in lines[1:]} >= {"tdmpc2:5m", "tdmpc2:ci"}
    piped = subprocess.run(
        f"'{venv.bin / 'worldflux'}' models list | head -n 1",
        shell=True,
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert piped.stdout.startswith("ID") and "Traceback" not in piped.stderr, piped.stderr


def test_user_project_generates_and_passes_conformance(venv: Venv) -> None:
    project = venv.tmp / "my-project"
    shutil.copytree(ROOT / "examples" / "project", project, ignore=NO_GENERATED)
    deeper = project / "notebooks" / "scratch"
    deeper.mkdir(parents=True)
    generated = venv.run("worldflux", "generate", cwd=deeper)  # discovery walks up, like git
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert (project / "generated" / "models" / "pendulum_rnn.py").is_file()
    listing = venv.run("worldflux", "models", "list", "pendulum*", cwd=deeper)
    assert f"project:{project.resolve()}" in listing.stdout, listing.stdout + listing.stderr
    checked = venv.run(
        "worldflux", "conformance", "run", "pendulum-rnn-ci", "--profile", "ci", cwd=project
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "1/1 targets conformant at their declared level" in checked.stdout
    built = venv.run(
        "python",
        "-c",
        "import worldflux; m = worldflux.create_world_model('pendulum-rnn-ci'); "
        "print(type(m).__name__, sum(p.numel() for p in m.parameters()))",
        cwd=deeper,
    )
    assert built.stdout.split() == ["PendulumRNNWorldModel", "2085"], built.stderr


def test_user_project_errors_are_located_one_liners(venv: Venv) -> None:
    project = venv.tmp / "broken-project"
    shutil.copytree(ROOT / "examples" / "project", project, ignore=NO_GENERATED)
    spec = project / "specs" / "models" / "pendulum_rnn.yaml"
    spec.write_text(spec.read_text().replace("impl: gru_dynamics", "impl: gru_dynamcs"))
    broken = venv.run("worldflux", "generate", cwd=project)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert re.search(
        r"specs/models/pendulum_rnn\.yaml:\d+:\d+: \$\.slots\.dynamics_model\.impl: .*"
        r"did you mean 'gru_dynamics'",
        broken.stderr,
    ), broken.stderr
    empty = _outside(venv, "no-project")
    missing = venv.run("worldflux", "generate", cwd=empty)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert f"no worldflux project in {empty}" in missing.stderr


def test_plugin_package_ships_a_model(venv: Venv) -> None:
    plugin = venv.tmp / "plugin-src"
    shutil.copytree(ROOT / "examples" / "plugin", plugin, ignore=COPY_IGNORE)
    install = venv.run(
        "python",
        *("-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
        *("--no-deps", "--no-build-isolation", str(plugin)),
        cwd=venv.tmp,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    where = _outside(venv, "plugin-user")
    listing = venv.run("worldflux", "models", "list", "tinyrnn*", cwd=where)
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert [(r[0], r[3]) for r in rows] == [
        ("tinyrnn:ci", "plugin:worldflux-tinyrnn"),
        ("tinyrnn:small", "plugin:worldflux-tinyrnn"),
    ], listing.stdout + listing.stderr
    checked = venv.run(
        "worldflux", "conformance", "run", "tinyrnn-ci", "--profile", "ci", cwd=where
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "1/1 targets conformant at their declared level" in checked.stdout
