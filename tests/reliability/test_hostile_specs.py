"""Hostile specs are rejected quickly, with one located SpecError, within a memory limit.

The corpus lives in hostile_specs.py and runs in a subprocess (address space capped at 4 GiB,
10 s alarm per case): a loader that hangs or expands an alias bomb fails its case instead of
taking pytest down. Files on disk are bounded before they are read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_specs import CASES

from worldflux.core.exceptions import SpecError
from worldflux.speclang import load_spec_text, load_specs
from worldflux.speclang.budget import MAX_SPEC_BYTES, Budget, check_budget

HERE = Path(__file__).resolve().parent
#: A rejection must come this fast (the budgets make it a few ms; CI machines are shared).
REJECT_WITHIN_S = 1.0


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, str(HERE / "hostile_specs.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {row["case"]: row for row in rows}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_spec_is_one_located_error_within_budget(
    results: dict[str, dict[str, object]], case: str
) -> None:
    row = results[case]
    assert row["error"] == "SpecError", row
    assert row["located"], row["message"]
    assert row["expected"], row["message"]
    assert isinstance(row["seconds"], float) and row["seconds"] < REJECT_WITHIN_S, row


def test_control_character_is_located_exactly() -> None:
    text = "spec_version: worldflux/v1\nmodel_type: x\ndescription: ab\x07c\n"
    issue = check_budget(text, "f.yaml")
    assert issue is not None and (issue.line, issue.col) == (3, 16)


def test_alias_budget_counts_expansion_not_text() -> None:
    """Nine aliases of a 9-item list are 81 expanded nodes: under a budget of 100 it passes,
    one more level (729) does not."""
    two = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: &b [" + ", ".join(["*a"] * 9) + "]\n"
    assert check_budget(two, "f.yaml", Budget(max_nodes=120)) is None
    three = two + "c: [" + ", ".join(["*b"] * 9) + "]\n"
    issue = check_budget(three, "f.yaml", Budget(max_nodes=120))
    assert issue is not None and "MAX_NODES" in issue.message and issue.line == 3


def test_every_built_in_spec_is_well_within_the_budgets() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "specs" / "models").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert len(text.encode()) * 8 < MAX_SPEC_BYTES, path
        assert check_budget(text, path.name, Budget(max_depth=8, max_nodes=2_000)) is None, path


def test_files_on_disk_are_bounded_before_reading(tmp_path: Path) -> None:
    models = tmp_path / "specs" / "models"
    models.mkdir(parents=True)
    huge = models / "huge.yaml"
    with open(huge, "wb") as handle:  # sparse: 200 MB that a broken loader would read whole
        handle.truncate(200 << 20)
    (models / "latin1.yaml").write_bytes(b"spec_version: worldflux/v1\ndescription: caf\xe9\n")
    with pytest.raises(SpecError) as error:
        load_specs(tmp_path)
    lines = error.value.issues
    assert any("huge.yaml:1:1:" in line and "209,715,200 bytes" in line for line in lines), lines
    assert any("latin1.yaml:2:" in line and "not UTF-8" in line for line in lines), lines


def test_a_trailing_newline_never_passes_an_anchored_pattern() -> None:
    text = (HERE.parents[0] / "fixtures" / "specs" / "toy_generic.yaml").read_text()
    for old, new in [
        ("model_type: toy_generic", 'model_type: "toy_generic\\n"'),
        ("impl: open_loop", 'impl: "open_loop\\n"'),
    ]:
        with pytest.raises(SpecError, match="does not match"):
            load_spec_text(text.replace(old, new, 1), "specs/models/toy_generic.yaml")
