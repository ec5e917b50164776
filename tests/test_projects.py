"""User projects and plugins (worldflux.discovery.project / sources): discovery, one registry, no
silent shadowing, stale generated code, ``models list``. In-process and fast; the wheel tests
(tests/test_wheel.py) run the same stories from a fresh install."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _spec_helpers import MODELINE, dump, fixture_data

import worldflux
from worldflux.codegen.command import main as generate
from worldflux.core.exceptions import ConfigurationError, SpecError
from worldflux.core.registry import WorldModelRegistry
from worldflux.discovery import sources
from worldflux.discovery.project import find_project, load_project

ROOT = Path(__file__).resolve().parents[1]


def _spec(model_type: str, aliases: dict[str, str] | None = None) -> str:
    data = fixture_data()
    data["model_type"] = model_type
    data["class_name"] = "".join(p.title() for p in model_type.split("_")) + "WorldModel"
    data["aliases"] = aliases if aliases is not None else {f"{model_type}-ci": "ci"}
    return dump(data)


def _project(base: Path, specs: dict[str, str], pyproject: str | None = None) -> Path:
    root = base / "proj"
    (root / "specs" / "models").mkdir(parents=True)
    for name, text in specs.items():
        (root / "specs" / "models" / f"{name}.yaml").write_text(text)
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    return root


@pytest.fixture(autouse=True)
def clean_sources() -> Iterator[None]:
    """Every test sees the sources of its own current directory."""
    sources.reset()
    yield
    sources.reset()


@pytest.fixture(scope="module")
def generated_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _project(tmp_path_factory.mktemp("p"), {"wf_user_model": _spec("wf_user_model")})
    assert generate(["--root", str(root)]) == 0
    return root


def test_discovery_walks_up_like_git(tmp_path: Path) -> None:
    root = _project(tmp_path, {})
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    found = find_project(deep)
    assert found is not None and found.root == root.resolve()
    assert found.models_dir == root.resolve() / "specs" / "models"
    assert find_project(tmp_path) is None


def test_tool_worldflux_table_is_validated(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.worldflux]\ngenrated = "out"\n')
    with pytest.raises(SpecError, match=r"unknown key 'genrated'.*did you mean 'generated'"):
        find_project(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.worldflux]\nimports = 3\n")
    with pytest.raises(SpecError, match="imports: expected a list of strings, found 3"):
        load_project(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.worldflux]\nspecs = "model-specs"\ngenerated = "src/pkg/gen"\npath = ["src"]\n'
    )
    project = load_project(tmp_path)
    assert project.specs_dir == tmp_path.resolve() / "model-specs"
    assert project.generated_dir == tmp_path.resolve() / "src/pkg/gen"
    assert project.path == (tmp_path.resolve() / "src",)


def test_project_models_join_the_registry_from_a_subdirectory(
    generated_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = generated_project / "notebooks"
    deep.mkdir(exist_ok=True)
    monkeypatch.chdir(deep)
    model = worldflux.create_world_model("wf_user_model-ci")
    assert type(model).__name__ == "WfUserModelWorldModel"
    assert sum(p.numel() for p in model.parameters()) == 2200
    source = sources.source_of("wf_user_model")
    assert source is not None and source.label == f"project:{generated_project.resolve()}"
    assert source.specs_dir == generated_project.resolve() / "specs"
    assert WorldModelRegistry.catalog()["wf_user_model:ci"]["source"] == source.label
    from worldflux.cli import main

    assert main(["models", "list", "wf_user*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["ID", "MATURITY", "PARAMS", "SOURCE"]
    assert [line.split()[0] for line in out[1:]] == ["wf_user_model:ci", "wf_user_model:small"]
    assert all(source.label in line for line in out[1:])


def test_outside_the_project_its_models_are_unknown(
    generated_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(worldflux.WorldFluxError, match="no model 'wf_user_model-ci'"):
        worldflux.create_world_model("wf_user_model-ci")


def test_a_changed_spec_makes_generated_code_stale(
    generated_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(generated_project, root)
    spec = root / "specs/models/wf_user_model.yaml"
    spec.write_text(spec.read_text() + "# edited after generate\n")
    monkeypatch.chdir(root)
    with pytest.raises(SpecError, match=r"wf_user_model\.yaml changed since it was generated"):
        worldflux.create_world_model("wf_user_model-ci")
    shutil.rmtree(root / "generated")
    sources.reset()
    with pytest.raises(
        SpecError, match=r"no generated code in generated/.*run `worldflux generate`"
    ):
        worldflux.list_models()


@pytest.mark.parametrize(
    ("spec_name", "text", "match"),
    [
        ("tdmpc2", _spec("tdmpc2"), r"model type 'tdmpc2' is declared twice: by .*proj/specs/"),
        ("wf_other", _spec("wf_other", {"dreamer": "ci"}), "alias 'dreamer' is declared twice"),
        ("wf_other", _spec("wf_other", {"gan": "ci"}), "alias 'gan' .* is the name of the model"),
    ],
)
def test_a_project_cannot_shadow_a_built_in_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_name: str, text: str, match: str
) -> None:
    root = _project(tmp_path, {spec_name: text})
    generated = root / "generated"
    generated.mkdir()
    # a catalog is enough to be seen: the conflict is found before any model code is imported
    (generated / "__init__.py").write_text("")
    aliases = fixture_aliases(text)
    (generated / "catalog.py").write_text(
        f"MODEL_TYPES = ({spec_name!r},)\nSPECS_DIR = '../specs'\nSPEC_SHA256 = "
        f"{{{spec_name!r}: {sources.spec_sha256(root / 'specs/models' / (spec_name + '.yaml'))!r}}}"
        f"\nMODEL_CATALOG = {{}}\nMODEL_ALIASES = {aliases!r}\n"
    )
    monkeypatch.chdir(root)
    with pytest.raises(ConfigurationError, match=match) as error:
        worldflux.list_models()
    assert "specs/models" in str(error.value) and "built-in" in str(error.value)


def fixture_aliases(text: str) -> dict[str, str]:
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(text)
    return {alias: f"{data['model_type']}:{preset}" for alias, preset in data["aliases"].items()}


def test_plugin_entry_point_ships_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution on sys.path with a ``worldflux.models`` entry point (no pip needed)."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "examples/plugin/src/wf_tinyrnn", site / "wf_tinyrnn")
    info = site / "worldflux_tinyrnn-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: worldflux-tinyrnn\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[worldflux.models]\ntinyrnn = wf_tinyrnn.generated\n\n"
        "[worldflux.components]\nwf_tinyrnn = wf_tinyrnn.components\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    from worldflux.core.registry import load_plugins

    load_plugins(force=True)  # this process loaded its component plugins before site existed
    try:
        assert "tinyrnn:ci" in worldflux.list_models()
        source = sources.source_of("tinyrnn")
        assert source is not None and source.label == "plugin:worldflux-tinyrnn"
        assert source.specs_dir == site / "wf_tinyrnn" / "specs"
        model = worldflux.create_world_model("tinyrnn-ci")
        assert type(model.dynamics_model).__name__ == "LeakyDynamics"
    finally:
        from worldflux.core.registry import unregister_component

        unregister_component("dynamics_model", "wf_tinyrnn/leaky")
        for name in [m for m in sys.modules if m.startswith("wf_tinyrnn")]:
            del sys.modules[name]


def test_models_list_globs_json_and_pipes(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from worldflux.cli import main

    assert main(["models", "list", "*:ci", "--maturity", "reference"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == ["dreamerv3:ci", "tdmpc2:ci"]
    assert main(["models", "list", "dreamer", "--json"]) == 0  # an alias matches its entry
    entries = json.loads(capsys.readouterr().out)
    assert list(entries) == ["dreamerv3:size12m"] and entries["dreamerv3:size12m"]["source"]
    assert main(["models", "list", "nothing*"]) == 1
    assert "no models match nothing*" in capsys.readouterr().out


def test_generated_files_carry_no_absolute_paths_and_a_relative_specs_dir(
    generated_project: Path,
) -> None:
    catalog = (generated_project / "generated" / "catalog.py").read_text()
    assert str(generated_project) not in catalog
    assert 'SPECS_DIR = "../specs"' in catalog
    assert MODELINE.strip() in (generated_project / "specs/models/wf_user_model.yaml").read_text()


def test_examples_are_generated_and_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    """The plugin example ships its generated package: it must match its spec and this
    generator (the project example generates in the wheel test)."""
    from worldflux.core.registry import unregister_component

    try:
        assert generate(["--root", str(ROOT / "examples/plugin"), "--check"]) == 0, (
            capsys.readouterr().out[-2000:]
        )
    finally:
        unregister_component("dynamics_model", "wf_tinyrnn/leaky")
        for name in [m for m in sys.modules if m.startswith("wf_tinyrnn")]:
            del sys.modules[name]


def test_crash_files_replay_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A target given as a relative file path with a relative --spec: the crash file holds
    absolute paths and the directory the run started in, so replay works from elsewhere."""
    from worldflux.cli import main

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "tests/external_model/tinyworld.yaml", work / "tiny.yaml")
    (work / "broken.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.external_model.adapter import TinyWorldAdapter\n"
        "from worldflux.core.types import State\n\n"
        "class Broken(TinyWorldAdapter):\n"
        "    maturity = 'experimental'\n\n"
        "    def encode(self, obs, *args, **kwargs):\n"
        "        out = super().encode(obs, *args, **kwargs)\n"
        "        return State(latent=out['latent'][:, :3])\n\n"
        "def make():\n"
        "    return Broken()\n"
    )
    monkeypatch.chdir(work)
    reports = tmp_path / "reports"
    args = ["run", "broken.py:make", "--spec", "tiny.yaml", "--checks", "io.encode"]
    assert main(["conformance", *args, "--profile", "ci", "--report-dir", str(reports)]) == 1
    capsys.readouterr()
    crash = next((reports / "crashes").glob("*.pt"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["conformance", "replay", str(crash)]) == 1  # still failing, not unresolvable
    out = capsys.readouterr()
    assert "FAILED" in out.out and "Traceback" not in out.err


def test_generate_refuses_a_spec_that_would_shadow_a_built_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, {"tdmpc2": _spec("tdmpc2", {"dreamer": "ci", "mine": "ci"})})
    assert generate(["--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "specs/models/tdmpc2.yaml:" in err and "Traceback" not in err
    assert "$.model_type: 'tdmpc2' is already the model type of" in err
    assert "specs/models/tdmpc2.yaml (built-in)" in err
    assert "$.aliases.dreamer: 'dreamer' is already the alias of" in err
    assert "specs/models/dreamerv3.yaml (built-in)" in err
    assert "'mine'" not in err
    assert not (root / "generated").exists()
