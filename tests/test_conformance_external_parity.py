"""Parity for external targets: declared goldens and counts run; none declared is n/a."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from worldflux.conformance.engine import check_model
from worldflux.conformance.example_adapter import make_adapter

SPEC = """maturity: reference
capabilities: [latent_dynamics, reward_pred, continue_pred]
io_contract:
  observation: {{obs: {{shape: [6], dtype: float32}}}}
  action: {{kind: continuous, dim: 2, low: -1.0, high: 1.0}}
  state: {{latent: {{shape: [8], dtype: float32}}}}
  predictions: {{reward: {{shape: []}}, continue: {{shape: []}}}}
  loss_components: [dynamics, reward, continue]
parity:
  param_counts: {{counts: {{default: {count}}}}}
  goldens: [{{file: golden.safetensors, outputs: "wf_ext_parity_fn:outputs"}}]
"""


def outputs(model: Any, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The mapping from golden inputs to the adapter's outputs."""
    return {"reward": model.decode(model.encode(inputs["obs"])).predictions["reward"]}


def _setup(tmp: Path, perturb: float, count_delta: int) -> Path:
    from safetensors.torch import save_file

    module = type(sys)("wf_ext_parity_fn")
    module.outputs = outputs  # type: ignore[attr-defined]
    sys.modules["wf_ext_parity_fn"] = module
    torch.manual_seed(0)
    model = make_adapter().eval()
    obs = torch.randn(5, 6)
    with torch.no_grad():
        reward = outputs(model, {"obs": obs})["reward"] + perturb
    save_file({"obs": obs, "reward": reward}, str(tmp / "golden.safetensors"))
    count = sum(p.numel() for p in model.parameters()) + count_delta
    spec = tmp / "plain.yaml"
    spec.write_text(SPEC.format(count=count))
    return spec


@pytest.mark.parametrize(("perturb", "delta", "expect"), [(0.0, 0, "pass"), (0.1, 1, "fail")])
def test_external_parity_runs(perturb: float, delta: int, expect: str, tmp_path: Path) -> None:
    spec = _setup(tmp_path, perturb, delta)
    report = check_model(
        "worldflux.conformance.example_adapter:make_adapter",
        spec=spec,
        checks=["parity"],
        profile="ci",
        seed=0,
        crash_dir=tmp_path / "crashes",
    )
    statuses = {c.id: c.status for c in report.results[0].checks}
    assert statuses == {"parity.param_counts": expect, "parity.goldens": expect}


def test_external_without_parity_is_not_applicable(tmp_path: Path) -> None:
    report = check_model(
        make_adapter, level="reference", checks=["parity"], profile="ci", crash_dir=tmp_path
    )
    result = report.results[0]
    assert {c.status for c in result.checks} == {"skip"}
    assert result.passed
