"""The ``worldflux`` command: help, ``models list [--json]``, ``models info``, error handling."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import worldflux.cli as cli
from worldflux.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (falls back to ``python -m worldflux.cli``)."""
    exe = shutil.which("worldflux")
    command = [exe, *args] if exe else [sys.executable, "-m", "worldflux.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_console_script_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    """The real process: a bad id is exit 2, one line on stderr, no traceback."""
    failed = run_cli("models", "info", "no-such-model", cwd=tmp_path)
    assert failed.returncode == 2 and failed.stdout == ""
    assert "Traceback" not in failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith("worldflux models: error: [WF500] no model 'no-such-model'")


def test_building_the_parser_imports_no_heavy_optional_modules(tmp_path: Path) -> None:
    lazy = ("hypothesis", "jsonschema", "datamodel_code_generator", "gymnasium", "ruamel", "jinja2")
    code = (
        "import json, sys; from worldflux.cli import build_parser; build_parser(); "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({lazy!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: worldflux") and "models" in out
    with pytest.raises(SystemExit):
        main(["models", "--help"])
    models_help = capsys.readouterr().out
    assert "list" in models_help and "info" in models_help
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("worldflux 0.")


def test_models_list_plain_and_json(
    toy_model_type: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wf_toy")]
    assert [row.split()[0] for row in rows] == ["wf_toy:ci", "wf_toy:wide"]
    assert all("experimental" in row and "toy test model" in row for row in rows)
    assert main(["models", "list", "--json"]) == 0
    catalog = json.loads(capsys.readouterr().out)
    assert catalog["wf_toy:ci"]["description"] == "toy test model (ci)"
    assert main(["models", "list", "--json", "--maturity", "reference"]) == 0
    assert "wf_toy:ci" not in json.loads(capsys.readouterr().out)


def test_models_info(toy_model_type: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", "wf-toy-wide"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["id"] == "wf_toy:wide" and info["presets"] == ["ci", "wide"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "info", "wf_toy:huge"], "has no preset 'huge'"),
        (["models", "info", "wf_tyo"], "did you mean 'wf_toy"),
    ],
)
def test_worldflux_errors_exit_2_with_one_line(
    toy_model_type: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and message in captured.err


@pytest.mark.parametrize(
    "argv", [[], ["models"], ["models", "list", "--maturity", "gold"], ["frobnicate"]]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: worldflux" in capsys.readouterr().err


@pytest.mark.parametrize("broken", ["parser", "implementation"])
def test_a_subcommand_that_cannot_import_does_not_break_the_others(
    broken: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "wf_needs_missing_dep.py").write_text("import wf_not_installed_anywhere\n")
    (tmp_path / "wf_cheap_parser.py").write_text(
        "def configure(parser):\n    parser.add_argument('--flag')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = (
        ("wf_needs_missing_dep", "wf_needs_missing_dep")
        if broken == "parser"
        else ("wf_cheap_parser", "wf_needs_missing_dep")  # `--help` works, running cannot
    )
    monkeypatch.setitem(cli.SUBCOMMANDS, "extra", (*modules, "needs an extra"))
    assert main(["extra", "--flag", "x"]) == 2
    err = capsys.readouterr().err
    assert "worldflux extra: error: this command cannot load" in err
    assert "wf_not_installed_anywhere" in err and "Traceback" not in err
    assert main(["models", "list", "--json"]) == 0
    for name in ("wf_needs_missing_dep", "wf_cheap_parser"):
        sys.modules.pop(name, None)
