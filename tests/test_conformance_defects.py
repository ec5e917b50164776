"""Seeded defects: the external adapter from docs/conformance.md
(:mod:`worldflux.conformance.example_adapter`) with one realistic implementer mistake each.

Every defect must be caught at the ci profile (``--strict``: a SHOULD clause the adapter
violates is a FAIL too), and the correct adapter must pass every clause. The fast tests run
the check that should catch each defect; the slow test runs the whole suite on every defect
and reports the kill rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from worldflux.conformance.engine import check_model
from worldflux.conformance.example_adapter import ACT_DIM, LATENT, PlainWorldAdapter

from worldflux.core.exceptions import ContractViolation
from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory


class Good(PlainWorldAdapter):
    """The adapter as shipped (a subclass so each test has its own class)."""


class PerSampleLoss(PlainWorldAdapter):
    """The total loss keeps a dim of size 1 (``[1]``, passes as 'scalar' at B = 1)."""

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        out = super().loss(batch)
        return LossOutput(out.loss.reshape(1), out.components)


class RolloutRepeatsFirstAction(PlainWorldAdapter):
    """Every rollout step uses the first action (only right for H = 1)."""

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        first = actions[:, :1].expand_as(actions).contiguous()
        traj = super().rollout(state, first)
        return Trajectory(
            traj.states, actions.clone(), traj.rewards, traj.continues, traj.predictions
        )


class RolloutDropsStart(PlainWorldAdapter):
    """states[:, 0] is the first predicted state, not the start (the last one duplicated)."""

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        t = super().rollout(state, actions)
        shifted = State({k: torch.cat([v[:, 1:], v[:, -1:]], dim=1) for k, v in t.states.items()})
        return Trajectory(shifted, t.actions, t.rewards, t.continues, t.predictions)


class RolloutRewardOffByOne(PlainWorldAdapter):
    """Rollout rewards are predicted from the state before the action, decode's from after."""

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        t = super().rollout(state, actions)
        before = t.states["latent"][:, :-1]
        reward, _ = self.inner.heads(before)
        preds = {**t.predictions, "reward": reward}
        return Trajectory(t.states, t.actions, reward, t.continues, preds)


class RolloutContinueIsDone(PlainWorldAdapter):
    """The trajectory's continues hold the termination probability (1 - continue)."""

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        t = super().rollout(state, actions)
        return Trajectory(t.states, t.actions, t.rewards, 1 - t.continues, t.predictions)


class BatchNormalisedObs(PlainWorldAdapter):
    """Observations standardised with batch statistics: samples depend on each other."""

    def encode(self, obs: Tensor) -> State:
        self.contract.validate_observation(obs)
        centred = obs - obs.mean(0, keepdim=True) if obs.shape[0] > 1 else obs
        return State(latent=self.inner.embed(centred))


class CastsAnyDtype(PlainWorldAdapter):
    """Integer observations are silently cast instead of rejected."""

    def encode(self, obs: Tensor) -> State:
        return super().encode(obs.float() if isinstance(obs, Tensor) else obs)


class AddsBatchDim(PlainWorldAdapter):
    """An unbatched observation is silently given a batch dim."""

    def encode(self, obs: Tensor) -> State:
        if isinstance(obs, Tensor) and obs.dim() == 1:
            obs = obs.unsqueeze(0)
        return super().encode(obs)


class SlicesActions(PlainWorldAdapter):
    """Actions are sliced to the expected width instead of validated."""

    def transition(self, state: Mapping[str, Tensor], action: Tensor) -> State:
        return State(latent=self.inner.step(state["latent"], action[..., :2].float()))


class NoisyInEval(PlainWorldAdapter):
    """Exploration noise left on in eval mode."""

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        out = super().decode(state)
        reward = out.predictions["reward"] + 0.01 * torch.randn_like(out.predictions["reward"])
        return ModelOutput({**out.predictions, "reward": reward})


class StateAsPrediction(PlainWorldAdapter):
    """Adds a latent prediction that is the input state itself (an alias)."""

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        out = super().decode(state)
        return ModelOutput({**out.predictions, "latent": state["latent"]})


class ReusedOutputBuffer(PlainWorldAdapter):
    """encode writes into one preallocated buffer, returned to every caller."""

    def encode(self, obs: Tensor) -> State:
        latent = super().encode(obs)["latent"]
        buf = self.__dict__.get("_buf")
        if buf is None or buf.shape != latent.shape:
            buf = torch.empty_like(latent)
            self.__dict__["_buf"] = buf
        buf.copy_(latent)
        return State(latent=buf)


class MutatesObs(PlainWorldAdapter):
    """Observations are clipped in place."""

    def encode(self, obs: Tensor) -> State:
        if isinstance(obs, Tensor) and obs.is_floating_point():
            obs.clamp_(-1.0, 1.0)
        return super().encode(obs)


class LossUpdatesRunningStats(PlainWorldAdapter):
    """loss() updates a persistent running-mean buffer (an undeclared side effect)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("reward_mean", torch.zeros(()))

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        with torch.no_grad():
            self.reward_mean.mul_(0.9).add_(0.1 * batch["rewards"].float().mean())
        return super().loss(batch)


class UnsavedTrainedScale(PlainWorldAdapter):
    """A learned reward scale kept in a non-persistent buffer: trained, never saved."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()), persistent=False)

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        if self.training:
            with torch.no_grad():
                self.scale.add_(0.1)
        return super().loss(batch)

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        out = super().decode(state)
        return ModelOutput({**out.predictions, "reward": out.predictions["reward"] * self.scale})


class AssumesContiguous(PlainWorldAdapter):
    """Reads observations with contiguous strides whatever their real layout."""

    def encode(self, obs: Tensor) -> State:
        self.contract.validate_observation(obs)
        raw = torch.as_strided(obs, obs.shape, (obs.shape[1], 1))
        return State(latent=self.inner.embed(raw))


class EnablesGrad(PlainWorldAdapter):
    """decode switches grad mode on (a leftover torch.set_grad_enabled(True))."""

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        torch.set_grad_enabled(True)
        return super().decode(state)


class LeaksThread(PlainWorldAdapter):
    """encode starts a background prefetch thread that outlives the call."""

    def encode(self, obs: Tensor) -> State:
        threading.Thread(target=time.sleep, args=(0.3,), daemon=True).start()
        return super().encode(obs)


class ReseedsRng(PlainWorldAdapter):
    """transition reseeds the global RNG."""

    def transition(self, state: Mapping[str, Tensor], action: Tensor) -> State:
        torch.manual_seed(0)
        return super().transition(state, action)


class UntrainedContinueHead(PlainWorldAdapter):
    """The continue loss is computed from a detached input: its head gets no gradient."""

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        out = super().loss(batch)
        cont = out.components["continue"].detach()
        total = out.components["dynamics"] + out.components["reward"] + cont
        return LossOutput(total, {**out.components, "continue": cont})


class ZeroScaledLoss(PlainWorldAdapter):
    """The total is multiplied by zero (a bad loss weight): gradients exist, nothing learns."""

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        out = super().loss(batch)
        return LossOutput(out.loss * 0.0, {k: v * 0.0 for k, v in out.components.items()})


class UnseededInit(PlainWorldAdapter):
    """Initialisation from a private, unseeded generator: builds are not reproducible."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(int(time.perf_counter_ns() % 2**31))
        with torch.no_grad():
            for p in self.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=gen))


class CrashesOnEmptyBatch(PlainWorldAdapter):
    """Validates shapes by hand, forgetting B = 0 (then crashes inside reshape)."""

    def encode(self, obs: Tensor) -> State:
        if not isinstance(obs, Tensor) or obs.dim() != 2 or obs.shape[1] != 6:
            raise ContractViolation(f"obs: expected [B, 6], found {getattr(obs, 'shape', obs)}")
        if not obs.is_floating_point():
            raise ContractViolation(f"obs: expected a float tensor, found {obs.dtype}")
        flat = obs.reshape(obs.shape[0], 3, -1).flatten(1)
        return State(latent=self.inner.embed(flat))


class NaNOutsideBounds(PlainWorldAdapter):
    """A squashing correction that is NaN for actions outside [-1, 1]."""

    def transition(self, state: Mapping[str, Tensor], action: Tensor) -> State:
        out = super().transition(state, action)
        return State(latent=out["latent"] * torch.sqrt(1 - action[:, :1] ** 2).mean())


class SqueezedPredictions(PlainWorldAdapter):
    """Predictions squeezed (loses the batch dim when B = 1)."""

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        out = super().decode(state)
        return ModelOutput({k: v.squeeze() for k, v in out.predictions.items()})


class CachedRollout(PlainWorldAdapter):
    """Rollouts are memoised by batch size (stale trajectories for new inputs)."""

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        cache = self.__dict__.setdefault("_cache", {})
        key = tuple(actions.shape)
        if key not in cache:
            cache[key] = super().rollout(state, actions)
        return cache[key]


class HoldsALock(PlainWorldAdapter):
    """Keeps a threading.Lock: not deep-copyable (the suite would silently rebuild it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


class LossWeightsNotSaved(PlainWorldAdapter):
    """Learned loss weights (uncertainty weighting) live on the adapter, while state_dict() and
    load_state_dict() cover only the wrapped PlainWorld: trained weights are lost on save/load."""

    def __init__(self) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(3))

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        out = super().loss(batch)
        parts = [out.components[k] for k in ("dynamics", "reward", "continue")]
        total = sum(torch.exp(-s) * part + s for s, part in zip(self.log_vars, parts, strict=True))
        return LossOutput(total, out.components)  # type: ignore[arg-type]

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {f"inner.{k}": v for k, v in self.inner.state_dict().items()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, **_: Any) -> Any:
        inner = {k.removeprefix("inner."): v for k, v in state_dict.items()}
        return self.inner.load_state_dict(inner, strict=strict)


#: defect -> the check expected to catch it (the fast tests run that check only).
DEFECTS: dict[type[PlainWorldAdapter], str] = {
    PerSampleLoss: "io.loss",
    RolloutRepeatsFirstAction: "rollout.consistency",
    RolloutDropsStart: "rollout.consistency",
    RolloutRewardOffByOne: "rollout.consistency",
    RolloutContinueIsDone: "rollout.consistency",
    BatchNormalisedObs: "batch.equivalence",
    CastsAnyDtype: "negative.obs_dtype",
    AddsBatchDim: "negative.obs_rank",
    SlicesActions: "negative.action",
    NoisyInEval: "determinism.eval",
    StateAsPrediction: "numeric.no_alias",
    ReusedOutputBuffer: "numeric.no_alias",
    MutatesObs: "numeric.no_mutation",
    LossUpdatesRunningStats: "numeric.loss_pure",
    UnsavedTrainedScale: "serde.roundtrip",
    AssumesContiguous: "io.strided",
    EnablesGrad: "io.decode",
    LeaksThread: "io.encode",
    ReseedsRng: "io.transition",
    UntrainedContinueHead: "numeric.grad_flow",
    ZeroScaledLoss: "numeric.learnability",
    UnseededInit: "determinism.seeded",
    CrashesOnEmptyBatch: "negative.empty_batch",
    NaNOutsideBounds: "negative.action_bounds",
    SqueezedPredictions: "io.decode",
    CachedRollout: "rollout.consistency",
    HoldsALock: "serde.copyable",
    LossWeightsNotSaved: "serde.roundtrip",
}


# -- what a failure must name, and correct variants a check must not fail -----------------------
class NotAModule:
    """The adapter holds the torch model as an attribute instead of being an nn.Module: the
    suite finds no state_dict() to watch and no named_parameters() to train."""

    maturity = "experimental"
    capabilities = PlainWorldAdapter.capabilities

    def __init__(self) -> None:
        self.model = PlainWorldAdapter()

    def io_contract(self) -> Any:
        return self.model.io_contract()

    def encode(self, obs: Tensor) -> State:
        return self.model.encode(obs)

    def transition(self, state: Mapping[str, Tensor], action: Tensor) -> State:
        return self.model.transition(state, action)

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        return self.model.decode(state)

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        return self.model.rollout(state, actions)

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        return self.model.loss(batch)


class PlanningWithoutPlan(PlainWorldAdapter):
    """Declares the planning capability but has no plan(obs) (planning lives elsewhere)."""

    capabilities = (*PlainWorldAdapter.capabilities, "planning")


class ActsWithoutCanAct(PlainWorldAdapter):
    """A policy head behind act(obs, carry), without the optional can_act flag: correct."""

    capabilities = (*PlainWorldAdapter.capabilities, "policy")

    def __init__(self) -> None:
        super().__init__()
        self.actor = nn.Linear(LATENT, ACT_DIM)

    def act(self, obs: Tensor, carry: Any = None) -> tuple[Tensor, Any]:
        return torch.tanh(self.actor(self.encode(obs)["latent"])), carry


class ExportsOnly(PlainWorldAdapter):
    """Exports its weights with save_pretrained(directory) (for deployment) and has no
    from_pretrained: the suite must round-trip it through state_dict; correct."""

    def save_pretrained(self, directory: str | Path) -> Path:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "weights.pt")
        return path


#: (adapter, check id, expected status, words its message must contain)
EXPECTATIONS: list[tuple[type, str, str, str]] = [
    (NotAModule, "numeric.loss_pure", "fail", "no state_dict()"),
    (NotAModule, "numeric.grad_flow", "fail", "no named_parameters()"),
    (PlanningWithoutPlan, "planning.act", "fail", "has no plan(obs)"),
    (ActsWithoutCanAct, "planning.policy", "pass", ""),
    (ExportsOnly, "serde.roundtrip", "pass", ""),
]


def outcome_holds(cls: type, check_id: str, expect: str, words: str, tmp: Path) -> bool:
    """True when ``check_id`` gives ``cls`` the status ``expect`` (a pass also allows a skip)
    with ``words`` in its message."""
    report = check_model(
        cls, profile="ci", seed=0, checks=[check_id], crash_dir=tmp / "crashes", strict=True
    )
    (result,) = report.results
    if result.error is not None:
        return False
    found = [c for c in result.checks if c.id == check_id]
    if expect == "pass":
        return all(c.status in ("pass", "skip") for c in found)
    return any(c.status == expect and words in (c.message or "") for c in found)


@pytest.mark.parametrize(
    "case", EXPECTATIONS, ids=[f"{c[0].__name__}-{c[1]}-{c[2]}" for c in EXPECTATIONS]
)
def test_expected_outcome(case: tuple[type, str, str, str], tmp_path: Path) -> None:
    assert outcome_holds(*case, tmp_path)


def _failures(cls: type, tmp: Path, checks: list[str] | None = None) -> list[str]:
    report = check_model(
        cls, profile="ci", seed=0, checks=checks, crash_dir=tmp / "crashes", strict=True
    )
    (result,) = report.results
    assert result.error is None, result.error
    return [f"{c.id}: {c.message}" for c in result.checks if c.status == "fail"]


@pytest.mark.parametrize("defect", list(DEFECTS), ids=lambda c: c.__name__)
def test_defect_is_caught_by_its_check(defect: type[PlainWorldAdapter], tmp_path: Path) -> None:
    check_id = DEFECTS[defect]
    failures = _failures(defect, tmp_path, [check_id])
    assert failures, f"{defect.__name__} passed {check_id}"


@pytest.mark.parametrize("check_id", sorted(set(DEFECTS.values())))
def test_the_correct_adapter_passes_each_targeted_check(check_id: str, tmp_path: Path) -> None:
    assert _failures(Good, tmp_path, [check_id]) == []


def test_there_are_at_least_twenty_defects() -> None:
    assert len(DEFECTS) >= 20


@pytest.mark.slow
def test_full_suite_kill_rate(tmp_path: Path) -> None:
    """Every defect against every clause: >= 95% killed, and the correct adapter clean."""
    assert _failures(Good, tmp_path) == []
    survivors = [d.__name__ for d in DEFECTS if not _failures(d, tmp_path)]
    rate = 1 - len(survivors) / len(DEFECTS)
    print(f"seeded-defect kill rate: {rate:.0%} ({len(DEFECTS) - len(survivors)}/{len(DEFECTS)})")
    assert rate >= 0.95, f"surviving defects: {survivors}"
