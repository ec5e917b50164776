"""``python -m benchmarks --baseline REV``: what runs where (this tree's benchmarks, REV's
worldflux), the verdicts of the rounds' bands (faster/slower, speedup targets, memory), the
compare_to mapping, the report records and the CLI. No model is timed here: the worker tests run
a workload that a fake worldflux skips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import BenchmarkError
from benchmarks.baseline_rev import Side, check_paths, interleaved, snapshot, worktree
from benchmarks.baseline_verdicts import Ratio, format_ratios, judge, target_verdict
from benchmarks.harness import Prepared, RunSettings, Workload
from benchmarks.report import build_report, validate_report, write_report

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "git": {"commit": "abc", "branch": "main", "dirty": False},
    "machine": {"platform": "test", "cpu": "test cpu", "logical_cpus": 2},
    "versions": {"python": "3.11", "torch": "2.13.0"},
}
QUICK = RunSettings(threads=1, quick=True)


def _fake_rev(path: Path, *, with_worldflux: bool = True) -> Path:
    """A fake revision: a worldflux without the training API (workloads skip), and its own
    ``benchmarks`` package whose worker would claim to be REV's (as an old tree's would)."""
    if with_worldflux:
        (path / "worldflux").mkdir(parents=True)
        (path / "worldflux" / "__init__.py").write_text("FAKE_REVISION = True\n")
    (path / "benchmarks").mkdir(parents=True)
    (path / "benchmarks" / "__init__.py").write_text("")
    record = {"name": "x", "status": "ok", "details": {"benchmarks_path": str(path)}}
    (path / "benchmarks" / "worker.py").write_text(
        f"print('BENCH_RESULT ' + {json.dumps(json.dumps(record))})\n"
    )
    return path


# -- what runs where ------------------------------------------------------------------------------
def test_the_baseline_worker_runs_this_trees_benchmarks_on_revs_worldflux(tmp_path: Path) -> None:
    from benchmarks.baseline_rev import _worker

    rev = _fake_rev(tmp_path / "rev")
    with snapshot() as code:
        assert (code / "benchmarks" / "workloads" / "models_dreamer.py").is_file()
        side = Side("baseline", rev, code)
        # a workload this tree defines; REV's worldflux lacks its API -> skipped, with the reason
        record = _worker(side, "replay.sample", QUICK, 120.0)
    assert record["status"] == "skipped", record
    assert "worldflux.training.replay" in record["reason"]
    assert Path(record["details"]["worldflux_path"]) == (rev / "worldflux").resolve()
    assert Path(record["details"]["benchmarks_path"]) == (code / "benchmarks").resolve()
    assert not code.exists()  # the snapshot is temporary


def test_a_baseline_worker_that_imports_this_trees_worldflux_stops_the_run(tmp_path: Path) -> None:
    from benchmarks.baseline_rev import _worker

    rev = _fake_rev(tmp_path / "rev")
    # a revision whose package reaches into this tree for its submodules
    leak = f"__path__.append({str(ROOT / 'worldflux')!r})\n"
    (rev / "worldflux" / "__init__.py").write_text(leak)
    with snapshot() as code, pytest.raises(BenchmarkError, match="modules from another tree"):
        _worker(Side("baseline", rev, code), "replay.sample", QUICK, 120.0)


def test_this_trees_side_keeps_the_editable_mapping_and_the_baseline_drops_it() -> None:
    import subprocess
    import sys

    code = (
        "import benchmarks.worker as w; w.isolate_from_editable_install(); "
        "import worldflux.generated; print(worldflux.generated.__file__)"
    )
    with snapshot() as copy:
        for isolated in (False, True):
            env = Side("this", ROOT, copy, isolated=isolated).env(1)
            done = subprocess.run(
                [sys.executable, "-P", "-c", code],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            # this tree has no worldflux/generated link: only the install's mapping finds it
            assert (done.returncode == 0) is not isolated, done.stderr
    assert done.returncode != 0 and "worldflux.generated" in done.stderr


def test_check_paths_names_the_wrong_package(tmp_path: Path) -> None:
    side = Side("baseline X", tmp_path / "rev", tmp_path / "code")
    good: dict[str, Any] = {
        "name": "w",
        "details": {
            "worldflux_path": str(tmp_path / "rev" / "worldflux"),
            "benchmarks_path": str(tmp_path / "code" / "benchmarks"),
        },
    }
    check_paths(good, side)
    check_paths({"name": "w", "status": "error"}, side)  # a crashed worker reports nothing
    bad = {"name": "w", "details": {**good["details"], "benchmarks_path": str(tmp_path / "rev")}}
    with pytest.raises(BenchmarkError, match="baseline X worker of w imported benchmarks"):
        check_paths(bad, side)


def test_baseline_worktree_imports_that_revision_whole() -> None:
    import os
    import subprocess
    import sys

    code = "import worldflux.generated, worldflux.specs; print(worldflux.generated.__file__)"
    with worktree("HEAD") as tree:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        done = subprocess.run(
            [sys.executable, "-P", "-c", code], cwd=tree, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().startswith(str(tree))
    assert not tree.exists()


# -- compare_to and the rounds --------------------------------------------------------------------
def _noop(settings: RunSettings) -> Prepared:
    return Prepared(op=lambda: None)


def test_interleaved_runs_compare_to_on_the_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.baseline_rev as baseline_rev

    calls: list[tuple[str, str]] = []
    times = {"this": 1.0, "base": 3.0}
    rss = {"this": 100.0, "base": 100.0}

    def fake(side: Side, name: str, settings: RunSettings, timeout_s: float) -> dict[str, Any]:
        calls.append((side.label, name))
        if name == "gone":
            return {"name": name, "status": "skipped", "reason": "not in REV\nmore"}
        return {
            "name": name,
            "status": "ok",
            "calibrated_time": times[side.label],
            "peak_rss_mib": rss[side.label],
        }

    monkeypatch.setattr(baseline_rev, "_worker", fake)
    compiled = Workload("w.compiled", "", "s", _noop, compare_to="w", speedup_target=2.5)
    gone = Workload("gone", "", "s", _noop)
    sides = (Side("this", ROOT, ROOT), Side("base", ROOT, ROOT))
    ratios, records = interleaved([compiled, gone], sides, QUICK, rounds=3, log=False)
    assert calls[:6] == [
        ("this", "w.compiled"),
        ("base", "w"),
        ("base", "w"),
        ("this", "w.compiled"),
        ("this", "w.compiled"),
        ("base", "w"),
    ]
    first, second = ratios
    assert (first.name, first.baseline, first.verdict, first.target) == (
        "w.compiled",
        "w",
        "faster",
        "met",
    )
    assert first.median == pytest.approx(1 / 3) and first.rounds == 3
    assert len(records["w.compiled"]) == 3
    assert second.verdict == "not compared" and second.note == (
        "this tree: skipped (not in REV); baseline: skipped (not in REV)"
    )


# -- verdicts of the band -------------------------------------------------------------------------
def test_a_verdict_needs_every_round_outside_the_tolerance() -> None:
    spike = judge("w", [1.02, 46.0, 0.99], tolerance=0.1)  # one round hit a load spike
    assert spike.verdict == "same" and spike.median == 1.02
    assert judge("w", [1.3, 1.25, 1.4], 0.1).verdict == "slower"
    assert judge("w", [0.5, 0.55, 0.6], 0.1).verdict == "faster"
    band = judge("w", [0.8, 1.0], 0.1)
    assert (band.low, band.high, band.median, band.rounds) == (0.8, 1.0, 0.9, 2)


def test_speedup_targets_and_memory_on_the_band() -> None:
    met = judge("w", [0.30, 0.32], 0.2, speedup_target=3.0, rss_ratios=[1.0, 1.3])
    assert met.target == "met" and not met.memory_higher  # 3.33x and 3.125x; rss 1.0 in round 1
    assert judge("w", [0.30, 0.36], 0.2, speedup_target=3.0).target == "undecided"
    missed = judge("w", [0.5, 0.4], 0.2, speedup_target=3.0, rss_ratios=[1.2, 1.15])
    assert missed.target == "missed" and missed.memory_higher
    assert judge("w", [1.0], 0.2).target is None


@given(
    st.lists(st.floats(0.05, 20.0), min_size=1, max_size=7),
    st.floats(0.5, 5.0),
)
def test_target_verdict_is_decided_by_every_round(speedups: list[float], target: float) -> None:
    verdict = target_verdict(speedups, target)
    assert (verdict == "met") == all(s >= target for s in speedups)
    assert (verdict == "missed") == all(s < target for s in speedups)
    # through judge: ratios are the inverse speedups
    assert judge("w", [1 / s for s in speedups], 0.2, speedup_target=target).target == verdict


@given(st.lists(st.floats(0.05, 20.0), min_size=1, max_size=7), st.floats(0.0, 1.0))
def test_one_round_inside_the_tolerance_makes_no_verdict(ratios: list[float], tol: float) -> None:
    verdict = judge("w", [*ratios, 1.0], tol).verdict
    assert verdict == "same"


# -- records, schema, table, CLI ------------------------------------------------------------------
def _section(*ratios: Ratio) -> dict[str, Any]:
    return {
        "rev": "abc123",
        "commit": "abc123" * 6 + "abcd",
        "rounds": 3,
        "tolerance": 0.2,
        "ratios": [r.as_dict() for r in ratios],
    }


def test_the_schema_accepts_ratio_records_and_rejects_broken_ones() -> None:
    ratio = judge("w", [0.3, 0.32], 0.2, speedup_target=3.0, rss_ratios=[1.0, 1.0])
    blank = Ratio("n", "not compared", baseline="m", speedup_target=2.0, note="baseline: skipped")
    report = build_report([], {"threads": 2, "quick": True}, ENV)
    report["baseline"] = _section(ratio, blank)
    validate_report(report)
    assert Ratio.from_dict(ratio.as_dict()) == ratio
    assert Ratio.from_dict(blank.as_dict()) == blank
    report["baseline"]["ratios"][0]["target"] = "great"
    with pytest.raises(BenchmarkError, match="baseline/ratios/0/target"):
        validate_report(report)


def test_the_ratio_table_shows_speedup_band_target_and_memory() -> None:
    rows = [
        judge("dreamerv3.train.ci", [0.30, 0.32], 0.2, speedup_target=3.0, rss_ratios=[1.2, 1.3]),
        judge("x.compiled", [0.9, 1.0], 0.2, baseline="x"),
        Ratio("new.one", "not compared", speedup_target=2.0, note="baseline: skipped (no API)"),
    ]
    table = format_ratios(rows, "REV", 0.2)
    ci, compiled, new = table.splitlines()[3:]
    assert "0.310" in ci and "3.23x" in ci and "3.12..3.33" in ci and "3x met" in ci
    assert "1.25" in ci and ci.endswith("faster, memory higher")
    assert compiled.endswith("same (vs REV's x)")
    assert new.endswith("not compared (baseline: skipped (no API))")


def test_cli_prints_the_stored_ratios_and_exits_1_only_for_slower(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.cli import main

    report = build_report([], {"threads": 2, "quick": True}, ENV)
    report["baseline"] = _section(judge("w", [0.5, 0.6], 0.2, speedup_target=3.0))
    path = tmp_path / "r.json"
    write_report(report, path)
    assert main(["--from", str(path)]) == 0  # a missed target is reported, not an exit status
    assert "3x missed" in capsys.readouterr().out
    report["baseline"] = _section(judge("w", [1.5, 1.6], 0.2))
    write_report(report, path)
    assert main(["--from", str(path)]) == 1
    assert main(["--from", str(path), "--baseline", "HEAD"]) == 2
