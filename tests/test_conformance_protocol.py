"""Protocol additions for real implementations: several objectives with their own optimisers
(e.g. TD-MPC2's policy prior), and trajectories without continues."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from worldflux.conformance.engine import check_model
from worldflux.conformance.example_adapter import LATENT, PlainWorldAdapter

from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory


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


class ActionReward(PlainWorldAdapter):
    """TD-MPC2-like: the reward depends on the state and the action (predict), not decode."""

    conformance_hints: ClassVar[dict[str, Any]] = {"action_conditioned": ["reward"]}

    def __init__(self) -> None:
        super().__init__()
        self.reward_head = nn.Linear(LATENT + 2, 1)

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        _, done_logit = self.inner.heads(state["latent"])
        return ModelOutput({"continue": torch.sigmoid(-done_logit)})

    def predict(self, state: Mapping[str, Tensor], action: Tensor) -> ModelOutput:
        joint = torch.cat([state["latent"], action], dim=-1)
        return ModelOutput({"reward": self.reward_head(joint).squeeze(-1)})

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        states, rewards, conts = [State(dict(state))], [], []
        for t in range(actions.shape[1]):
            rewards.append(self.predict(states[-1], actions[:, t]).predictions["reward"])
            states.append(self.transition(states[-1], actions[:, t]))
            conts.append(self.decode(states[-1]).predictions["continue"])
        preds = {"reward": torch.stack(rewards, 1), "continue": torch.stack(conts, 1)}
        return Trajectory(
            State.stack(states, dim=1), actions.clone(), preds["reward"], preds["continue"], preds
        )

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        out = super().loss(batch)
        obs, act = batch["obs"][:, 0], batch["actions"][:, 0]
        reward = self.predict(self.encode(obs), act).predictions["reward"]
        extra = (reward - batch["rewards"][:, 0].float()).pow(2).mean()
        return LossOutput(out.loss + extra, {**out.components, "reward": extra})


class ActionRewardFromNextState(ActionReward):
    """The rollout predicts the reward from the state after the action: inconsistent."""

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        t = super().rollout(state, actions)
        after = t.states["latent"][:, 1:]
        joint = torch.cat([after, actions], dim=-1)
        reward = self.reward_head(joint).squeeze(-1)
        return Trajectory(
            t.states, t.actions, reward, t.continues, {**t.predictions, "reward": reward}
        )


class ComposableWithoutSwap(PlainWorldAdapter):
    """Declares a composable slot but offers no swap_component (slots.swap is a MUST)."""

    composable_support = ("observation_encoder",)


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


def test_action_conditioned_predictions(tmp_path: Path) -> None:
    checks = [
        "io.decode",
        "io.capability_outputs",
        "io.rollout.shapes",
        "rollout.consistency",
        "batch.polymorphism",
        "numeric.grad_flow",
    ]
    assert set(_statuses(ActionReward, tmp_path, checks).values()) == {"pass"}
    found = _statuses(ActionRewardFromNextState, tmp_path, ["rollout.consistency"])
    assert found == {"rollout.consistency": "fail"}


def test_declared_composable_slots_must_be_swappable(tmp_path: Path) -> None:
    found = _statuses(ComposableWithoutSwap, tmp_path, ["slots.swap"])
    assert found == {"slots.swap": "fail"}
