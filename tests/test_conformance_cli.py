"""`worldflux conformance` CLI, the external adapter example, and the pytest plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from worldflux.conformance import check_model
from worldflux.conformance.pytest_plugin import parametrize_conformance
from worldflux.conformance.target import WorldModelLike
from worldflux.conformance.toys import make_toy, registered, toy_spec

from tests.external_model.adapter import TinyWorldAdapter, make_adapter
from worldflux.cli import main
from worldflux.core.model import WorldModel
from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import State

EXTERNAL = "tests.external_model.adapter:make_adapter"
SPEC_FILE = "tests/external_model/tinyworld.yaml"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # import paths `tests.external_model...` resolve from the repo root


def toy(name: str, base: type[SpecWorldModel] = SpecWorldModel) -> type[SpecWorldModel]:
    return make_toy(name, base=base, spec=toy_spec(maturity="experimental"))


class Broken(SpecWorldModel):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        out = super().encode(obs, state, action, validate=validate)
        return State(latent=out["latent"][:, :3])


def cli(*args: str) -> int:
    return main(["conformance", *args])


def test_run_writes_reports_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with registered(toy("wfc_cli")):
        rc = cli(
            "run",
            "wfc_cli",
            "--profile",
            "ci",
            "--seed",
            "1",
            "--checks",
            "io,negative",
            "--report",
            "json,junit,md",
            "--report-dir",
            str(tmp_path),
        )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "wfc_cli" in out and "experimental" in out and "PASS" in out
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert data["results"][0]["achieved_maturity"] == "experimental"
    assert (tmp_path / "conformance.xml").read_text().startswith("<?xml")
    assert "| `wfc_cli` |" in (tmp_path / "conformance.md").read_text()


def test_failure_exits_1_with_repro_and_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with registered(toy("wfc_cli_bad", Broken)):
        rc = cli(
            "run",
            "wfc_cli_bad",
            "--profile",
            "ci",
            "--checks",
            "io.encode",
            "--report-dir",
            str(tmp_path),
        )
        out = capsys.readouterr().out
        assert rc == 1
        assert "FAIL" in out and "repro: worldflux conformance replay" in out
        crash = next((tmp_path / "crashes").glob("*.pt"))
        assert cli("replay", str(crash)) == 1
        assert "FAILED" in capsys.readouterr().out
    with registered(toy("wfc_cli_ok")):
        assert cli("replay", str(crash), "--target", "wfc_cli_ok") == 0
        assert "FIXED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ("run",),
        ("run", "no_such_model_xyz"),
        ("run", "no_such_pkg.mod:thing"),
        ("run", "tests.external_model.adapter:no_such_attr"),
        ("run", "--all", "--checks", "io.nonsense"),
        ("run", "tests.external_model.adapter:UndeclaredTinyWorld"),
        ("run", EXTERNAL, "--spec", "no/such/spec.yaml"),
        ("explain", "io.nonsense"),
        ("replay", "no/such/crash.pt"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(*args) == 2
    assert "error" in capsys.readouterr().err


def test_list_checks_and_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("list-checks") == 0
    out = capsys.readouterr().out
    assert "io.rollout.shapes" in out and "parity.goldens" in out and "must" in out
    assert cli("list-checks", "--level", "skeleton") == 0
    out = capsys.readouterr().out
    assert "io.encode" in out and "parity.goldens" not in out and "numeric.grad_flow" not in out
    assert cli("list-checks", "--target", EXTERNAL) == 0
    out = capsys.readouterr().out
    assert "checked at experimental" in out and "numeric.grad_flow" in out
    assert "planning.act" not in out and "parity.goldens" not in out
    assert cli("explain", "numeric.grad_flow") == 0
    out = capsys.readouterr().out
    assert "clause:" in out and "passing example" in out and "reference=must" in out


# -- the external model (not a WorldModel subclass) -------------------------------------------
def test_adapter_is_not_a_worldmodel() -> None:
    adapter = make_adapter()
    assert not isinstance(adapter, WorldModel)
    assert isinstance(adapter, WorldModelLike)


def test_external_model_via_check_model(tmp_path: Path) -> None:
    report = check_model(EXTERNAL, profile="ci", seed=0, crash_dir=tmp_path)
    result = report.results[0]
    failed = [(c.id, c.message) for c in result.checks if c.status in ("fail", "warn")]
    assert result.passed and not failed, failed
    assert result.declared_maturity == result.achieved_maturity == "experimental"
    assert {c.id: c.status for c in result.checks}["registry.registered"] == "skip"


def test_external_instance_and_spec_file(tmp_path: Path) -> None:
    report = check_model(
        TinyWorldAdapter(), profile="ci", checks=["io", "negative"], crash_dir=tmp_path
    )
    assert report.passed
    spec_target = "tests.external_model.adapter:UndeclaredTinyWorld"
    report = check_model(
        spec_target, spec=SPEC_FILE, profile="ci", checks=["io"], crash_dir=tmp_path
    )
    assert report.passed and report.results[0].declared_maturity == "experimental"


def test_external_model_via_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = cli("run", EXTERNAL, "--profile", "ci", "--report-dir", str(tmp_path), "--report", "json")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert EXTERNAL in out and "experimental" in out
    rc = cli(
        "run",
        "tests.external_model.adapter:UndeclaredTinyWorld",
        "--spec",
        SPEC_FILE,
        "--profile",
        "ci",
        "--checks",
        "io",
        "--level",
        "skeleton",
    )
    assert rc == 0


# -- pytest plugin ----------------------------------------------------------------------------
@parametrize_conformance([EXTERNAL], checks=["io.encode", "io.loss", "negative.obs_rank"])
def test_plugin_parametrizes_external_model(wf_case: Any) -> None:
    assert wf_case.id.startswith(EXTERNAL + "::")
    wf_case.run()


def test_plugin_case_fails_for_a_broken_model(tmp_path: Path) -> None:
    from worldflux.conformance.pytest_plugin import ConformanceCase

    with registered(toy("wfc_plugin_bad", Broken)):
        case = ConformanceCase("wfc_plugin_bad", "io.encode", seed=3, crash_dir=tmp_path)
        with pytest.raises(pytest.fail.Exception, match=r"(?s)\[io.encode\].*repro"):
            case.run()


def test_pytest_conformance_dir_runs_the_suite() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "conformance/",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--wf-target={EXTERNAL}",
            "--wf-checks=io.encode,numeric.grad_flow",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_run_all_covers_every_registered_model(capsys: pytest.CaptureFixture[str]) -> None:
    from worldflux.core.registry import WorldModelRegistry

    rc = cli("run", "--all", "--profile", "ci", "--checks", "spec.valid,registry")
    out = capsys.readouterr().out
    assert rc == 0, out
    for model_type in WorldModelRegistry.list_types():  # named by the preset checked
        assert f"\n{model_type}:ci " in out, f"{model_type}:ci missing from the scoreboard:\n{out}"
    assert "declared" in out and "achieved" in out


@pytest.mark.slow
def test_run_all_ci_profile_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's command on every registered model (about 30 s of CPU on 2 cores): every
    shipped model must be conformant at its declared level (exit 0), as `nox -s ci` requires."""
    rc = cli("run", "--all", "--profile", "ci", "--report", "json", "--report-dir", str(tmp_path))
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert rc == 0 and data["passed"], out
    assert data["summary"]["targets"] >= 1


def test_the_docs_adapter_example_is_the_shipped_module_verbatim() -> None:
    """docs/conformance.md shows worldflux.conformance.example_adapter in full: a stranger's
    copy-paste must be exactly what CI checks."""
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "conformance.md").read_text()
    source = (root / "conformance" / "example_adapter.py").read_text()
    assert f"```python\n{source}```" in doc
