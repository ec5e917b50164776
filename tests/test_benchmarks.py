"""The benchmark harness's logic: statistics, figures, targets, FLOP accounting, report schema,
baseline comparison and workload selection. Nothing here times anything or builds a model."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import BenchmarkError, Skipped
from benchmarks.flops import (
    DREAMERV3_PRESETS,
    TDMPC2_PRESETS,
    dreamer_imagine_step,
    dreamer_policy,
    dreamer_rollout_step,
    dreamer_train_step,
    mlp_macs,
    tdmpc2_dynamics_step,
    tdmpc2_mppi,
    tdmpc2_update,
)
from benchmarks.harness import (
    Prepared,
    RunSettings,
    Target,
    Workload,
    figure,
    measure,
    run_workload,
    summarize,
)
from benchmarks.report import (
    build_report,
    compare,
    format_table,
    load_report,
    merge_baseline,
    validate_report,
    write_report,
)
from benchmarks.stats import Stats
from benchmarks.worker import RESULT_PREFIX, parse_result
from benchmarks.workloads import WORKLOADS, get, select
from benchmarks.workloads.models import config_mismatches

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "git": {"commit": "abc", "branch": "main", "dirty": False},
    "machine": {"platform": "test", "cpu": "test cpu", "logical_cpus": 2},
    "versions": {"python": "3.11", "torch": "2.13.0"},
}


def _workload(unit: str = "latent steps/s", target: Target | None = None) -> Workload:
    def prepare(settings: RunSettings) -> Prepared:
        return Prepared(op=lambda: None)

    return Workload(name="w.test", description="test", unit=unit, prepare=prepare, target=target)


def _record(
    name: str, seconds: float, gflops: float, unit: str = "s/update", work: float = 1.0
) -> dict[str, Any]:
    workload = Workload(name=name, description=name, unit=unit, prepare=lambda s: Prepared(print))
    record: dict[str, Any] = {
        "name": name,
        "description": name,
        "unit": unit,
        "higher_is_better": unit.endswith("/s"),
        "status": "ok",
        "reason": None,
        "threads": 2,
        "warmup": 1,
        "runs": 5,
        "peak_rss_mib": 100.0,
        "details": {},
    }
    times = [seconds * f for f in (0.9, 1.0, 1.0, 1.1, 1.2)]
    record.update(summarize(workload, times, [gflops] * len(times), work, 1e9))
    return record


def _report(*records: dict[str, Any]) -> dict[str, Any]:
    return build_report(list(records), {"threads": 2, "quick": False}, ENV)


# -- statistics ---------------------------------------------------------------------------------
def test_stats_of_odd_and_even_samples() -> None:
    odd = Stats.of([3.0, 1.0, 2.0, 10.0, 4.0])
    assert (odd.n, odd.median, odd.min, odd.max) == (5, 3.0, 1.0, 10.0)
    assert odd.mean == pytest.approx(4.0)
    assert Stats.of([1.0, 2.0, 3.0, 4.0]).median == 2.5
    assert Stats.of([2.0]).stdev == 0.0


def test_stats_rejects_empty_and_non_finite() -> None:
    with pytest.raises(BenchmarkError, match="at least 1 sample"):
        Stats.of([])
    with pytest.raises(BenchmarkError, match="finite"):
        Stats.of([1.0, float("nan")])
    with pytest.raises(BenchmarkError, match="positive factor"):
        Stats.of([1.0]).scaled(0.0)


def test_stats_scaled() -> None:
    scaled = Stats.of([1.0, 2.0, 3.0]).scaled(1000.0)
    assert (scaled.median, scaled.min, scaled.max) == (2000.0, 1000.0, 3000.0)


def test_measure_counts_warmups_and_uses_clock() -> None:
    calls: list[int] = []
    ticks = iter(float(i) for i in range(100))

    def op() -> None:
        calls.append(1)

    times, cals = measure(op, warmup=2, runs=3, clock=lambda: next(ticks))
    assert len(calls) == 5
    assert times == [1.0, 1.0, 1.0]
    assert cals == [1.0, 1.0, 1.0]


def test_measure_pairs_each_run_with_the_calibrations_around_it() -> None:
    readings = iter([100.0, 200.0, 50.0, 150.0])
    times, cals = measure(lambda: 0.5, warmup=1, runs=3, calibrate=lambda: next(readings))
    assert times == [0.5, 0.5, 0.5]  # self-reported durations
    assert cals == [150.0, 125.0, 100.0]
    with pytest.raises(BenchmarkError, match="runs >= 1"):
        measure(lambda: None, warmup=0, runs=0)


# -- figures, efficiency, targets ---------------------------------------------------------------
def test_figure_rates_and_times() -> None:
    assert figure("latent steps/s", 0.5, 240.0) == 480.0
    assert figure("ms/action", 0.25, 1.0) == 250.0
    assert figure("s/update", 0.3, 1.0) == 0.3
    with pytest.raises(BenchmarkError, match="unknown unit"):
        figure("furlongs", 1.0, 1.0)
    with pytest.raises(BenchmarkError, match="positive time and work"):
        figure("s", 0.0, 1.0)


def test_summarize_efficiency_floor_and_calibrated_time() -> None:
    workload = _workload()
    # 240 latent steps of 10 MFLOP each in 0.1 s on a 200 GFLOP/s machine.
    out = summarize(workload, [0.1] * 5, [200.0] * 5, 240.0, 240 * 10e6)
    assert out["value"]["median"] == pytest.approx(2400.0)
    assert out["achieved_gflops"] == pytest.approx(24.0)
    assert out["efficiency"] == pytest.approx(24.0 / 200.0)
    assert out["floor"] == pytest.approx(20000.0)  # 200e9 / 10e6 steps/s at efficiency 1
    assert out["calibrated_time"] == pytest.approx(0.1 / 240 * 200.0)
    assert out["value_at_reference"] == pytest.approx(2400.0 * 206.0 / 200.0)
    assert out["target"] is None


def test_summarize_normalises_run_by_run() -> None:
    # The second run was slowed by load, and so was the matmul next to it: same calibrated time.
    out = summarize(_workload("s/update"), [0.1, 0.2, 0.1], [200.0, 100.0, 200.0], 1.0, 4e9)
    assert out["time_s"]["median"] == pytest.approx(0.1)
    assert out["calibrated_time"] == pytest.approx(20.0)
    assert out["efficiency"] == pytest.approx(4.0 / 20.0)
    assert out["calibration_gflops"] == 200.0
    with pytest.raises(BenchmarkError, match="one calibration per run"):
        summarize(_workload(), [0.1, 0.2], [200.0], 1.0, None)


def test_summarize_best_and_worst_follow_the_unit_direction() -> None:
    times = [0.2, 0.1, 0.4]
    rate = summarize(_workload(), times, [200.0] * 3, 10.0, None)
    assert rate["value"]["best"] == pytest.approx(100.0)
    assert rate["value"]["worst"] == pytest.approx(25.0)
    assert rate["efficiency"] is None and rate["floor"] is None
    time = summarize(_workload("s/update"), times, [200.0] * 3, 1.0, None)
    assert (time["value"]["best"], time["value"]["worst"]) == (0.1, 0.4)


def test_targets_scale_with_calibration() -> None:
    # The issue's 6,000 steps/s target was set at 206 GFLOP/s; at 103 GFLOP/s it halves.
    rate = Target(6000.0, reference=2450.0)
    out = summarize(_workload(target=rate), [0.1] * 5, [103.0] * 5, 400.0, None)
    assert out["target"]["scaled_value"] == pytest.approx(3000.0)
    assert out["target"]["scaled_reference"] == pytest.approx(1225.0)
    assert out["target"]["met"] is True  # 4,000 >= 3,000
    # A time target doubles at half the calibration: 250 ms -> 500 ms.
    ms = summarize(_workload("ms/action", Target(250.0)), [0.6] * 5, [103.0] * 5, 1.0, None)
    assert ms["target"]["scaled_value"] == pytest.approx(500.0)
    assert ms["target"]["met"] is False  # 600 ms > 500 ms


def test_wall_clock_targets_do_not_scale() -> None:
    target = Target(2.0, scales_with_calibration=False)
    out = summarize(_workload("s", target), [1.5] * 5, [50.0] * 5, 1.0, None)
    assert out["target"]["scaled_value"] == 2.0 and out["target"]["met"] is True


def test_workload_plan_and_validation() -> None:
    w = _workload()
    assert w.plan(RunSettings()) == (w.warmup, w.runs)
    assert w.plan(RunSettings(quick=True)) == (w.quick_warmup, w.quick_runs)
    assert w.plan(RunSettings(quick=True, runs=7, warmup=0)) == (0, 7)
    with pytest.raises(BenchmarkError, match="unknown unit"):
        Workload(name="x", description="", unit="op/s", prepare=lambda s: Prepared(print))
    with pytest.raises(BenchmarkError, match="runs >= 1"):
        Workload(name="x", description="", unit="s", prepare=lambda s: Prepared(print), runs=0)


# -- FLOP accounting (the reference notes' numbers, world-models.md §0 and §10.4) ---------------
def test_mlp_macs() -> None:
    assert mlp_macs([3, 4, 5]) == 3 * 4 + 4 * 5
    assert mlp_macs([7]) == 0


def test_dreamerv3_size12m_imagination_flops() -> None:
    d = DREAMERV3_PRESETS["size12m"]
    assert dreamer_imagine_step(d) == 2 * 5_047_808  # 10.1 MFLOP, 5.05M MACs
    assert dreamer_imagine_step(d) + dreamer_policy(d) == pytest.approx(11.7e6, rel=0.01)
    assert 1024 * 15 * dreamer_imagine_step(d) == pytest.approx(155e9, rel=0.01)


def test_dreamerv3_size12m_rollout_flops() -> None:
    d = DREAMERV3_PRESETS["size12m"]
    # feat 2560: reward 2560x256 + 256x255, continue 2560x256 + 256x1,
    # obs 2560x256 + 2 x 256x256 + 256x24 = 2,168,832 MACs on top of the prior step
    assert dreamer_rollout_step(d) == 2 * (5_047_808 + 2_168_832)


def test_dreamerv3_size1m_rssm_and_train_step_flops() -> None:
    d = DREAMERV3_PRESETS["size1m"]
    assert dreamer_imagine_step(d) / 2 == pytest.approx(0.32e6, rel=0.02)
    assert dreamer_train_step(d, 16, 64) == pytest.approx(31.7e9, rel=0.01)
    assert dreamer_train_step(DREAMERV3_PRESETS["size12m"], 16, 64) == pytest.approx(
        470e9, rel=0.02
    )
    # linear in the number of replay states
    assert dreamer_train_step(d, 32, 64) == pytest.approx(2 * dreamer_train_step(d, 16, 64))


def test_dreamerv3_ci_vector_and_pixel_train_step_flops() -> None:
    from benchmarks.flops import dreamer_with_image

    d = DREAMERV3_PRESETS["ci"]  # deter 64, hidden 16, 32 x 4 stoch, units 16, 8 blocks
    # prior step: inputs 64x16 + 128x16 + 6x16 = 3,168; block GRU (8 + 48) x 64 = 3,584;
    # gates 3 x 64 x 64 / 8 = 1,536; prior MLP 64x16 + 16x16 + 16x128 = 3,328 -> 11,616 MACs
    assert dreamer_imagine_step(d) == 2 * 11_616
    # per replay state (MACs): world model 3 x (enc 896 + observe 14,944 + dec 3,968 + rew
    # 7,152 + con 3,088) = 90,144; imagination 15 x (11,616 + pi 3,776) = 230,880; heads
    # 16 x 52,224 = 835,584; replay value 4 x 7,664 = 30,656 -> 1,187,264
    assert dreamer_train_step(d, 32, 16) == 2 * 1_187_264 * 32 * 16
    px = dreamer_with_image(d, (3, 64, 64))
    # conv encoder (5x5, 8/12/16/16 channels at 64/32/16/8 px): 2,457,600 + 2,457,600 +
    # 1,228,800 + 409,600 = 6,553,600; decoder: projection 2,048 + 4,096 + 8,192, convs at
    # 8/16/32/64 px 409,600 + 1,228,800 + 2,457,600 + 2,457,600 -> 6,567,936 (the flop counter
    # counts exactly this for the decoder); embed 16 x 4 x 4 = 256 feeds the posterior
    assert px.embed == 256
    world_model = 3 * (6_553_600 + 11_616 + 320 * 16 + 16 * 128 + 6_567_936 + 7_152 + 3_088)
    per_state = world_model + 230_880 + 835_584 + 30_656
    assert dreamer_train_step(px, 32, 16) == 2 * per_state * 32 * 16  # 41.5 GFLOP
    # a vector preset's formula does not depend on the CNN fields
    assert dreamer_train_step(DREAMERV3_PRESETS["size1m"], 16, 64) == pytest.approx(
        31.7e9, rel=0.01
    )


def test_tdmpc2_5m_flops() -> None:
    d = TDMPC2_PRESETS["5m"]
    assert tdmpc2_dynamics_step(d) == 1_579_008  # 1.58 MFLOP
    assert tdmpc2_mppi(d, q_heads=5) == pytest.approx(46.3e9, rel=0.01)
    assert tdmpc2_mppi(d, q_heads=2) == pytest.approx(35.6e9, rel=0.01)
    assert tdmpc2_update(d, 256, 3) == pytest.approx(40.5e9, rel=0.01)
    # the floors of the issue's table at 206 GFLOP/s
    assert 206e9 / tdmpc2_dynamics_step(d) == pytest.approx(130_000, rel=0.01)
    assert tdmpc2_mppi(d) / 206e9 == pytest.approx(0.175, rel=0.02)


def test_config_mismatches_reports_only_stated_differences() -> None:
    class Config:
        latent_dim = 512
        mlp_dim = 256

    found = config_mismatches(
        Config(),
        {"latent": 512, "mlp": 512, "enc": 256},
        {
            "latent": "latent_dim",
            "mlp": "mlp_dim",
            "enc": "enc_dim",
        },
    )
    assert found == {"mlp": {"expected": 512, "config": 256}}


# -- running a workload in-process --------------------------------------------------------------
def test_run_workload_reports_skips_and_errors_without_raising() -> None:
    def skip(settings: RunSettings) -> Prepared:
        raise Skipped("model 'x' is not registered yet")

    def boom(settings: RunSettings) -> Prepared:
        raise RuntimeError("kaput")

    skipped = run_workload(Workload("a", "", "s", skip), RunSettings(threads=1))
    assert skipped["status"] == "skipped"
    assert skipped["reason"] == "model 'x' is not registered yet"
    errored = run_workload(Workload("b", "", "s", boom), RunSettings(threads=1))
    assert errored["status"] == "error" and "RuntimeError: kaput" in errored["reason"]


# -- report schema, compare, baseline -----------------------------------------------------------
def test_report_validates_and_round_trips(tmp_path: Path) -> None:
    skipped = {
        "name": "s",
        "description": "s",
        "unit": "s",
        "higher_is_better": False,
        "status": "skipped",
        "reason": "not yet",
    }
    report = _report(_record("a", 0.3, 200.0), skipped)
    assert report["summary"]["ok"] == 1 and report["summary"]["skipped"] == 1
    path = tmp_path / "out" / "bench.json"
    write_report(report, path)
    assert load_report(path) == json.loads(path.read_text())
    assert "a " in format_table(report)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("git"), "'git' is a required property"),
        (lambda r: r["workloads"][0].pop("efficiency"), "'efficiency' is a required property"),
        (lambda r: r["workloads"][0].update(status="fine"), "workloads/0/status"),
        (lambda r: r["workloads"][0]["time_s"].update(n=0), "workloads/0/time_s/n"),
        (lambda r: r.update(schema_version="v0"), "schema_version"),
    ],
)
def test_report_schema_rejects_broken_reports(mutate: Any, message: str) -> None:
    report = _report(_record("a", 0.3, 200.0))
    broken = copy.deepcopy(report)
    mutate(broken)
    with pytest.raises(BenchmarkError, match=message):
        validate_report(broken)


def test_load_report_names_the_bad_file(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="no such report"):
        load_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(BenchmarkError, match=r"bad\.json: cannot read"):
        load_report(bad)


def test_compare_flags_a_possible_regression_only_when_every_run_is_slower() -> None:
    base = _report(_record("slow", 0.30, 200.0), _record("fast", 0.30, 200.0))
    # "slow": 50% more time at the same calibration, every run (0.9..1.2 x) above 20% slower.
    # "fast": 40% more time, but the machine's matmuls also got 40% slower -> same.
    new = _report(_record("slow", 0.45, 200.0), _record("fast", 0.42, 200.0 / 1.4))
    verdicts = {c.name: c for c in compare(new, base, tolerance=0.2)}
    assert verdicts["slow"].verdict == "possible regression"
    assert "--baseline REV" in verdicts["slow"].note
    assert verdicts["slow"].ratio == pytest.approx(1.5)
    assert verdicts["slow"].low == pytest.approx(1.35)
    assert verdicts["fast"].verdict == "same"
    assert verdicts["fast"].ratio == pytest.approx(1.0)
    # 25% slower at the median, but the fastest run is within 20%: no verdict
    assert compare(_report(_record("slow", 0.375, 200.0)), base)[0].verdict == "same"


def test_compare_a_load_spike_in_one_run_makes_no_verdict() -> None:
    base = _report(_record("w", 0.30, 200.0))
    spiked = _record("w", 0.30, 200.0)
    spiked["calibrated_time_runs"][-1] *= 46.0  # one run hit a load spike
    spiked["calibrated_time"] = sorted(spiked["calibrated_time_runs"])[2]
    (only,) = compare(_report(spiked), base)
    assert only.verdict == "same" and only.high == pytest.approx(46 * 1.2)


def test_compare_improvements_thresholds_and_missing() -> None:
    base = _report(_record("a", 0.30, 200.0), _record("b", 0.30, 200.0))
    new = _report(_record("a", 0.20, 200.0), _record("b", 0.359, 200.0), _record("c", 1.0, 200.0))
    verdicts = {c.name: c.verdict for c in compare(new, base)}
    assert verdicts == {"a": "improved", "b": "same", "c": "not compared"}
    with pytest.raises(BenchmarkError, match="tolerance"):
        compare(new, base, tolerance=-0.1)


def test_compare_uses_time_per_unit_of_work() -> None:
    base = _report(_record("t", 0.1, 200.0, unit="latent steps/s", work=100.0))
    new = _report(_record("t", 0.2, 200.0, unit="latent steps/s", work=200.0))
    assert compare(new, base)[0].verdict == "same"


def test_merge_baseline_keeps_workloads_not_rerun() -> None:
    old = _report(_record("a", 0.3, 200.0), _record("b", 0.3, 200.0))
    new = _report(_record("b", 0.1, 200.0), _record("c", 0.1, 200.0))
    merged = merge_baseline(old, new)
    assert [w["name"] for w in merged["workloads"]] == ["a", "b", "c"]
    assert merged["workloads"][1]["time_s"]["median"] == pytest.approx(0.1)
    assert merged["summary"]["ok"] == 3


def test_committed_baseline_is_a_valid_report() -> None:
    path = ROOT / "benchmarks" / "baseline.json"
    if not path.exists():
        pytest.skip("no committed baseline yet")
    report = load_report(path)
    assert {w["name"] for w in report["workloads"]} <= {w.name for w in WORKLOADS}


# -- selection and the worker protocol -----------------------------------------------------------
def test_select_by_name_glob_and_comma_list() -> None:
    names = [w.name for w in select(["tdmpc2.*"])]
    assert names and all(n.startswith("tdmpc2.") for n in names)
    both = [w.name for w in select(["import.cold,replay.sample"])]
    assert both == ["import.cold", "replay.sample"]
    assert len(select(None)) == len(WORKLOADS)
    with pytest.raises(BenchmarkError, match="matches no workload"):
        select(["nope*"])
    with pytest.raises(BenchmarkError, match="unknown workload 'nope'"):
        get("nope")


def test_catalogue_covers_the_issue_workloads() -> None:
    issue_workloads = {
        "import.cold",
        "replay.sample",
        "dreamerv3.imagine.b16",
        "dreamerv3.imagine.b1024",
        "dreamerv3.train.size1m",
        "tdmpc2.transition.b256",
        "tdmpc2.mppi",
        "tdmpc2.update",
        "cli.generate_check",
        "cli.conformance_ci",
    }
    extra = {"dreamerv3.rollout.b16", "dreamerv3.rollout.b1024"}  # model.rollout incl. decode
    extra |= {"cli.help", "cli.models_list"}  # CLI start-up (no torch): <= 0.5 s
    extra |= {"dreamerv3.train.ci", "dreamerv3.train.pixels64"}  # issue 19: the ci preset
    assert {w.name for w in WORKLOADS} >= issue_workloads | extra
    slow = {"dreamerv3.train.pixels64"}  # ~3 s per update on 2 CPU cores: 3 runs
    assert all(w.runs >= 5 for w in WORKLOADS if w.name not in slow)


def test_parse_result() -> None:
    line = RESULT_PREFIX + json.dumps({"name": "x"})
    assert parse_result(f"noise\n{line}\n") == {"name": "x"}
    with pytest.raises(BenchmarkError, match="no result line"):
        parse_result("just noise\n")
    with pytest.raises(BenchmarkError, match="not JSON"):
        parse_result(RESULT_PREFIX + "{oops")


def test_harness_import_does_not_import_model_families() -> None:
    code = (
        "import sys, benchmarks.cli, benchmarks.worker, benchmarks.workloads; "
        "print(sorted(m for m in sys.modules if m == 'worldflux' or m.startswith('worldflux.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.cli import main

    assert main(["--only", "nope*", "--list"]) == 2
    assert "matches no workload" in capsys.readouterr().err
    assert main(["--list", "--only", "tdmpc2.*"]) == 0
    assert "tdmpc2.mppi" in capsys.readouterr().out


def test_cli_compare_from_report_exits_1_on_regression(tmp_path: Path) -> None:
    from benchmarks.cli import main

    base, new = tmp_path / "base.json", tmp_path / "new.json"
    write_report(_report(_record("a", 0.30, 200.0)), base)
    write_report(_report(_record("a", 0.45, 200.0)), new)
    assert main(["--from", str(new), "--compare", str(base)]) == 1
    assert main(["--from", str(base), "--compare", str(base)]) == 0


def test_median_record_keeps_the_middle_process() -> None:
    from benchmarks.cli import median_record

    records = [_record("a", t, 200.0) for t in (0.3, 0.1, 0.2)]
    skipped = {"name": "a", "status": "skipped", "reason": "x"}
    chosen = median_record([*records, skipped])
    assert chosen["time_s"]["median"] == pytest.approx(0.2)
    assert chosen["details"]["processes"] == 4
    assert len(chosen["details"]["process_calibrated_times"]) == 3
    assert median_record([skipped]) is skipped
    assert median_record(records[:1])["details"] == {}


def test_the_table_judges_nothing_against_another_machine() -> None:
    from benchmarks.report import format_table

    report = {
        "workloads": [
            {
                "name": "w",
                "status": "ok",
                "unit": "s",
                "value": {"median": 1.0, "best": 0.9, "worst": 1.1},
                "efficiency": 0.5,
                "floor": 0.5,
                "calibration_gflops": 371.0,
                "target": {"met": False},
            }
        ],
        "summary": {"calibration_gflops": None, "depressed_calibration": False},
    }
    table = format_table(report)
    assert "MISSED" not in table and "@206" not in table and "50%" in table
