"""DreamerV3 parity against golden tensors recorded from the official JAX code (e3f0224).

The tiny goldens live in the repo (specs/parity/dreamerv3/) and run here; the size1m goldens stay
in ../shared/parity/dreamerv3/ and run in a slow test (skipped when that directory is absent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import worldflux
from worldflux.cli import main
from worldflux.core.exceptions import CheckpointError
from worldflux.families.dreamerv3.weights import from_official, to_official, weight_map
from worldflux.parity import check_golden, load_official, read_golden

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "specs" / "parity" / "dreamerv3"
SHARED = ROOT.parent / "shared" / "parity" / "dreamerv3"
WALKER = ["height:", "orientations:14", "velocity:9"]


@pytest.mark.parametrize("name", ["tiny", "tiny_perturbed"])
def test_tiny_goldens_match(name: str) -> None:
    rows = check_golden("dreamerv3:ci", TINY / f"{name}.safetensors")
    assert len(rows) == 33
    failed = [(r.name, r.max_abs, r.atol) for r in rows if not r.passed]
    assert not failed


def test_parity_cli_exits_zero_on_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["parity", "check", "dreamerv3:ci", "--golden", str(TINY / "tiny.safetensors")])
    assert code == 0
    assert "33/33 outputs within tolerance" in capsys.readouterr().out


def test_parity_detects_a_wrong_weight() -> None:
    from worldflux.families.dreamerv3.parity import compute_outputs

    tensors, _ = read_golden(TINY / "tiny_perturbed.safetensors")
    tensors = dict(tensors)
    model = load_official("dreamerv3:ci", tensors, obs_shape=(24,), action_dim=6)
    inputs = {k[len("inputs.") :]: v for k, v in tensors.items() if k.startswith("inputs.")}
    dyn: Any = model.dynamics_model
    with torch.no_grad():
        dyn.dyngru.bias[0] += 0.01
    ours = compute_outputs(model, inputs)
    assert not torch.allclose(ours["img_deter"], tensors["outputs.img_deter"], atol=1e-5)


def test_weight_map_covers_every_trainable_parameter_once() -> None:
    model = worldflux.create_world_model("dreamerv3:ci", obs_shape=(24,), action_dim=6)
    entries = weight_map(model)
    ours = [e.ours for e in entries]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert len(ours) == len(set(ours)) and set(ours) == trainable
    tensors, _ = read_golden(TINY / "tiny.safetensors")
    walker = worldflux.create_world_model(
        "dreamerv3:ci", obs_shape=(24,), action_dim=6, obs_keys=WALKER
    )
    official = {k[len("weights.") :] for k in tensors if k.startswith("weights.")}
    assert {e.official for e in weight_map(walker)} == official
    assert len(official) == 85


def test_official_round_trip_and_slow_copy() -> None:
    tensors, _ = read_golden(TINY / "tiny_perturbed.safetensors")
    model = load_official("dreamerv3:ci", tensors, obs_shape=(24,), action_dim=6)
    back = to_official(model, prefix="weights.")
    for key, value in back.items():
        assert torch.equal(value, tensors[key]), key
    objective: Any = getattr(model, "objective", None)
    for a, b in zip(objective.val.parameters(), objective.slowval.parameters(), strict=True):
        assert torch.equal(a, b)


def test_loading_reports_missing_unexpected_and_misshaped_and_loads_nothing() -> None:
    tensors, _ = read_golden(TINY / "tiny.safetensors")
    state = {k: v for k, v in tensors.items() if k.startswith("weights.")}
    del state["weights.dyn/dyngru/bias"]
    state["weights.dyn/extra/kernel"] = torch.zeros(2)
    state["weights.rew/head/logits/kernel"] = torch.zeros(3, 255)
    model = worldflux.create_world_model(
        "dreamerv3:ci", obs_shape=(24,), action_dim=6, obs_keys=WALKER
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        from worldflux.families.dreamerv3.weights import load_official_weights

        load_official_weights(model, state)
    message = str(info.value)
    assert "missing: dyn/dyngru/bias" in message
    assert "unexpected: dyn/extra/kernel" in message
    assert "mis-shaped: rew/head/logits/kernel" in message
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(CheckpointError):
        from_official(model, {})


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="shared size1m goldens not available")
@pytest.mark.parametrize("name", ["size1m", "size1m_perturbed"])
def test_size1m_goldens_match_via_cli(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    golden = SHARED / f"{name}.safetensors"
    code = main(["parity", "check", "dreamerv3:size1m", "--golden", str(golden)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "33/33 outputs within tolerance" in out
