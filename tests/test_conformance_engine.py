"""The conformance engine: robustness, achieved maturity, reports, crash files and replay."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jsonschema
import pytest
import torch
from hypothesis import given, settings
from torch import Tensor
from worldflux.conformance.engine import check_model, make_options
from worldflux.conformance.registry import select_checks
from worldflux.conformance.replay import load_crash, replay_crash
from worldflux.conformance.report import render_junit, render_markdown, render_scoreboard
from worldflux.conformance.strategies import (
    Case,
    actions,
    cases,
    observations,
    training_batches,
)
from worldflux.conformance.toys import make_toy, registered, toy_spec

from worldflux.core.exceptions import CheckpointError, ConfigurationError, ModelNotFoundError
from worldflux.core.spec import ModelIOContract
from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import State

SCHEMA = Path(__file__).resolve().parents[1] / "conformance" / "schema" / "report.v1.schema.json"
FAST = ["spec", "io", "negative"]


def run(target: Any, tmp: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("profile", "ci")
    kwargs.setdefault("seed", 0)
    return check_model(target, crash_dir=tmp / "crashes", **kwargs)


def statuses(report: Any) -> dict[str, str]:
    return {c.id: c.status for c in report.results[0].checks}


# -- robustness: the run goes on --------------------------------------------------------------
class Raises(SpecWorldModel):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        raise RuntimeError("boom in encode")


class Garbage(SpecWorldModel):
    def decode(self, state: State) -> Any:
        return [1, 2, 3]


class Hangs(SpecWorldModel):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        time.sleep(60)
        raise AssertionError("unreachable")


class SetsDtype(SpecWorldModel):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        torch.set_default_dtype(torch.float64)
        return super().encode(obs, state, action, validate=validate)


class DisablesGrad(SpecWorldModel):
    def decode(self, state: State) -> Any:
        torch.set_grad_enabled(False)
        return super().decode(state)


class Reseeds(SpecWorldModel):
    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        torch.manual_seed(0)
        return super().transition(state, action, validate=validate)


def toy(name: str, base: type[SpecWorldModel] = SpecWorldModel, **kw: Any) -> type[SpecWorldModel]:
    return make_toy(
        name, base=base, spec=toy_spec(maturity=kw.pop("maturity", "experimental")), **kw
    )


def test_a_raising_target_fails_that_check_and_the_run_goes_on(tmp_path: Path) -> None:
    with registered(toy("wfc_raises", Raises)):
        report = run("wfc_raises", tmp_path, checks=FAST)
    found = statuses(report)
    encode = next(c for c in report.results[0].checks if c.id == "io.encode")
    assert encode.status == "fail"
    assert "raised RuntimeError: boom in encode" in encode.message
    assert found["spec.valid"] == "pass"  # every other check is still reported
    assert len(found) == len(select_checks(FAST))
    assert not report.passed


def test_garbage_output_is_named(tmp_path: Path) -> None:
    with registered(toy("wfc_garbage", Garbage)):
        report = run("wfc_garbage", tmp_path, checks=["io.decode"])
    (check,) = report.results[0].checks
    assert (
        check.status == "fail"
        and "expected a ModelOutput" in check.message
        and "list" in check.message
    )


def test_a_hanging_target_hits_the_time_budget(tmp_path: Path) -> None:
    start = time.perf_counter()
    with registered(toy("wfc_hangs", Hangs)):
        report = run("wfc_hangs", tmp_path, checks=["io.encode", "io.decode"], time_budget=0.5)
    assert time.perf_counter() - start < 30
    found = {c.id: c for c in report.results[0].checks}
    assert found["io.encode"].status == "fail" and "time budget" in found["io.encode"].message
    assert found["io.decode"].status == "fail"  # reported too (it also calls encode)


@pytest.mark.parametrize(
    ("base", "check_id", "text"),
    [
        (SetsDtype, "io.encode", "default dtype"),
        (DisablesGrad, "io.loss", "grad mode"),
        (Reseeds, "io.transition", "reseeded the global torch RNG"),
    ],
)
def test_global_state_changes_fail_and_are_restored(
    base: type[SpecWorldModel], check_id: str, text: str, tmp_path: Path
) -> None:
    rng = torch.random.get_rng_state()
    with registered(toy("wfc_global", base)):
        report = run("wfc_global", tmp_path, checks=[check_id])
    (check,) = report.results[0].checks
    assert check.status == "fail" and text in check.message
    assert torch.get_default_dtype() == torch.float32
    assert torch.is_grad_enabled()
    assert torch.equal(torch.random.get_rng_state(), rng)


# -- maturity ---------------------------------------------------------------------------------
def test_declared_above_achieved_fails(tmp_path: Path) -> None:
    # a REFERENCE claim without parity facts achieves EXPERIMENTAL at most
    with registered(toy("wfc_claims", maturity="reference")):
        report = run("wfc_claims", tmp_path, checks=["io", "parity"])
    result = report.results[0]
    assert result.declared_maturity == "reference"
    assert result.achieved_maturity == "experimental"
    assert not result.passed and not report.passed


class NoValidation(SpecWorldModel):
    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.validate_inputs = False


def test_should_failures_warn_with_codes_and_error_under_strict(tmp_path: Path) -> None:
    with registered(toy("wfc_skel", NoValidation, maturity="skeleton")):
        report = run("wfc_skel", tmp_path, checks=FAST)
        strict = run("wfc_skel", tmp_path, checks=FAST, strict=True)
        experimental = run("wfc_skel", tmp_path, checks=FAST, level="experimental")
    result = report.results[0]
    assert result.passed and result.achieved_maturity == "skeleton"
    warns = result.warnings()
    assert warns and {w.code for w in warns} == {"WFC201", "WFC202", "WFC203", "WFC204", "WFC206"}
    assert not strict.passed and strict.results[0].failures()
    # checked against EXPERIMENTAL the same model fails: negative inputs are MUST there
    assert experimental.results[0].achieved_maturity == "skeleton"
    assert not experimental.passed


def test_unbuildable_model_reports_none(tmp_path: Path) -> None:
    spec = toy_spec()
    spec["slots"]["decoder"] = {"impl": "wf_conformance_toy/no_such_decoder"}
    with registered(make_toy("wfc_nobuild", spec=spec)):
        report = run("wfc_nobuild", tmp_path, checks=FAST)
    result = report.results[0]
    assert result.achieved_maturity == "none" and not result.passed
    assert result.error and "no_such_decoder" in result.error
    assert any("no_such_decoder" in c.message for c in result.failures())


# -- reports ----------------------------------------------------------------------------------
def test_reports_validate_and_render(tmp_path: Path) -> None:
    with registered(toy("wfc_good")), registered(toy("wfc_raises", Raises)):
        good = run("wfc_good", tmp_path, checks=FAST)
        bad = run("wfc_raises", tmp_path, checks=FAST)
    good.results += bad.results
    data = json.loads(good.to_json())
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert data["schema_version"] == "worldflux-conformance/1"
    # encode raising breaks MUST io checks: not even SKELETON is achieved
    assert [r["achieved_maturity"] for r in data["results"]] == ["experimental", "none"]
    assert data["summary"]["targets"] == 2 and data["summary"]["conformant"] == 1
    board = render_scoreboard(good)
    assert "wfc_good" in board and "declared" in board and "achieved" in board
    assert "repro:" in board and "FAIL" in board
    junit = ET.fromstring(render_junit(good))
    assert len(junit.findall("testsuite")) == 2
    assert junit.findall(".//failure")
    assert "| `wfc_good` |" in render_markdown(good)


def test_schema_rejects_a_wrong_maturity() -> None:
    schema = json.loads(SCHEMA.read_text())
    bad = {
        "schema_version": "worldflux-conformance/1",
        "results": [
            {
                "target": "x",
                "declared_maturity": "REFERENCE",
                "achieved_maturity": "none",
                "passed": False,
                "checks": [],
            }
        ],
        "passed": False,
        "profile": "ci",
        "seed": 0,
        "summary": {"targets": 1, "conformant": 0, "statuses": {}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# -- crash files and replay -------------------------------------------------------------------
class Squeezes(SpecWorldModel):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        out = super().encode(obs, state, action, validate=validate)
        return State(latent=out["latent"].squeeze(0))


def test_failure_saves_inputs_and_replay_reruns_them(tmp_path: Path) -> None:
    with registered(toy("wfc_squeeze", Squeezes)):
        report = run("wfc_squeeze", tmp_path, checks=["io.encode"])
        (check,) = report.results[0].checks
        assert check.status == "fail" and check.crash_file
        assert "worldflux conformance replay" in (check.repro or "")
        crash = load_crash(check.crash_file)
        assert crash["check"] == "io.encode" and crash["target"] == "wfc_squeeze"
        obs = crash["inputs"]["obs"]
        assert isinstance(obs, Tensor) and obs.shape[0] == 1  # B=1 squeezes away
        status, message = replay_crash(crash)
        assert status == "FAILED" and "latent" in message
    with registered(toy("wfc_fixed")):
        status, _ = replay_crash(crash, target="wfc_fixed")
    assert status == "FIXED"


def test_state_machine_failure_replays_its_program(tmp_path: Path) -> None:
    class NotReentrant(SpecWorldModel):
        calls = 0

        def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Any:
            traj = super().rollout(state, actions, validate=validate)
            self.calls += 1
            traj.states = State({k: v + self.calls for k, v in traj.states.items()})
            return traj

    with registered(toy("wfc_reentrant", NotReentrant)):
        report = run("wfc_reentrant", tmp_path, checks=["rollout.state_machine"])
        (check,) = report.results[0].checks
        assert check.status == "fail" and "re-entrancy" not in check.message
        assert "same seed differ" in check.message
        crash = load_crash(check.crash_file)
        ops = [step["op"] for step in crash["inputs"]["steps"]]
        assert ops[:2] == ["encode", "rollout"]
        status, message = replay_crash(crash)
    assert status == "FAILED" and "same seed differ" in message


def test_load_crash_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such crash file"):
        load_crash(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(CheckpointError, match="expected format"):
        load_crash(other)


# -- usage errors -----------------------------------------------------------------------------
def test_usage_errors_raise_worldflux_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        run("no_such_model_anywhere", tmp_path)
    with pytest.raises(ConfigurationError, match="cannot_import_me"):
        run("cannot_import_me.module:thing", tmp_path)
    with pytest.raises(ConfigurationError, match="matches no check"):
        select_checks(["io.nonsense"])
    with pytest.raises(ConfigurationError, match="unknown profile"):
        make_options("nightly-ish")


# -- strategies -------------------------------------------------------------------------------
CONTRACT = ModelIOContract.from_dict(
    {
        "observation": {"rgb": {"shape": [3, 4, 4], "dtype": "uint8"}, "vec": {"shape": [5]}},
        "action": {"kind": "discrete", "dim": 4},
        "state": {"latent": {"shape": [8]}},
    }
)


@settings(max_examples=25, deadline=None, database=None)
@given(case=cases(max_batch=3, max_horizon=3))
def test_materialized_cases_honour_the_contract(case: Case) -> None:
    inputs = case.materialize(CONTRACT)
    b = case.batch
    CONTRACT.validate_observation(inputs["obs"], (b,))
    CONTRACT.validate_action(inputs["action"], (b,))
    CONTRACT.validate_action(inputs["actions"], (b, case.horizon))
    CONTRACT.validate_batch(inputs["batch"])
    assert inputs["batch"]["is_first"][:, 0].all()
    assert 0 <= inputs["i"] < b and 0 <= inputs["j"] < b
    assert (inputs["i"] != inputs["j"]) == (b > 1)
    vec = inputs["obs"]["vec"]
    assert bool(vec.isfinite().all()) and float(vec.abs().max()) <= 1e4 * 10


def test_continuous_actions_stay_in_bounds() -> None:
    contract = ModelIOContract.from_dict(
        {"action": {"kind": "continuous", "dim": 3, "low": -2.0, "high": 0.5}}
    ).bind(action_dim=3)
    for mode in ("uniform", "low", "high"):
        a = Case(4, 3, 2, 7, 1.0, mode).materialize(contract)["actions"]
        assert a.shape == (4, 3, 3) and float(a.min()) >= -2.0 and float(a.max()) <= 0.5


@settings(max_examples=15, deadline=None, database=None)
@given(
    obs=observations(CONTRACT, batch=2),
    action=actions(CONTRACT, (2,)),
    batch=training_batches(CONTRACT, max_batch=3),
)
def test_public_strategies_honour_the_contract(obs: Any, action: Tensor, batch: Any) -> None:
    CONTRACT.validate_observation(obs, (2,))
    CONTRACT.validate_action(action, (2,))
    CONTRACT.validate_batch(batch)
