"""Protocol additions for real implementations: several objectives with their own optimisers
(e.g. TD-MPC2's policy prior), and trajectories without continues."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from worldflux.conformance.engine import check_model
from worldflux.conformance.example_adapter import LATENT, PlainWorldAdapter

from worldflux.core.types import LossOutput, Trajectory


class WithPolicy(PlainWorldAdapter):
    """A policy head trained by its own loss and optimiser (not by ``loss()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = nn.Linear(LATENT, 2)

    def policy_loss(self, batch: Mapping[str, Any]) -> Tensor:
        with torch.no_grad():
            z = self.inner.embed(batch["obs"].flatten(0, 1))
        return (self.policy(z) - batch["actions"].flatten(0, 1)).pow(2).mean()

    def objectives(self) -> dict[str, Any]:
        return {"model": self.loss, "policy": self.policy_loss}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        model_params = [p for n, p in self.named_parameters() if not n.startswith("policy")]
        return {
            "model": torch.optim.Adam(model_params, lr=1e-3),
            "policy": torch.optim.Adam(self.policy.parameters(), lr=1e-3),
        }


class PolicyWithoutObjective(WithPolicy):
    """The policy objective is not declared: its parameters get no gradient."""

    def objectives(self) -> dict[str, Any]:
        return {"model": self.loss}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.parameters(), lr=1e-3)}


class NoContinues(PlainWorldAdapter):
    """No continue_pred capability: the trajectory carries no continues."""

    capabilities = ("latent_dynamics", "reward_pred")

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        t = super().rollout(state, actions)
        return Trajectory(t.states, t.actions, t.rewards, None, t.predictions)  # type: ignore[arg-type]

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        return super().loss(batch)


def _statuses(cls: type, tmp: Path, checks: list[str]) -> dict[str, str]:
    report = check_model(cls, profile="ci", seed=0, checks=checks, crash_dir=tmp, strict=True)
    return {c.id: c.status for c in report.results[0].checks}


def test_declared_objectives_cover_a_separately_trained_policy(tmp_path: Path) -> None:
    checks = ["numeric.grad_flow", "numeric.learnability"]
    assert set(_statuses(WithPolicy, tmp_path, checks).values()) == {"pass"}
    # without the declaration the policy's parameters get no gradient from loss()
    assert _statuses(PolicyWithoutObjective, tmp_path, checks)["numeric.grad_flow"] == "fail"


def test_continues_are_optional_without_continue_pred(tmp_path: Path) -> None:
    found = _statuses(NoContinues, tmp_path, ["io.rollout.shapes", "rollout.consistency"])
    assert set(found.values()) == {"pass"}
