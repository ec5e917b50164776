"""Checks on the checker: for every check, a deliberately broken model fails it and the good
toy passes it (so no check can silently pass everything)."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from worldflux.conformance.engine import check_model
from worldflux.conformance.registry import all_checks
from worldflux.conformance.report import CheckResult
from worldflux.conformance.toys import make_toy, registered, toy_spec, trainable_count

from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory

SWAP = {"swap_candidates": {"observation_encoder": ["wf_conformance_toy/encoder_mlp"]}}


class Planner(SpecWorldModel):
    """The good toy's planning capability: actions from the latent, inside [-1, 1]."""

    def plan(self, obs: Tensor, **_: Any) -> Tensor:
        latent = self.encode(obs)["latent"]
        if self.config.action_type == "discrete":
            return latent[:, : self.config.action_dim].argmax(-1)
        return torch.tanh(latent[:, : self.config.action_dim])


def good_spec(discrete: bool = False) -> dict[str, Any]:
    spec = toy_spec(discrete=discrete)
    spec["capabilities"] = [*spec["capabilities"], "planning"]
    return spec


class _Handler:
    """A parity handler for the toy: recomputes decode(encode(obs)) of a seeded build."""

    def check_golden(self, model_id: str, golden: Path) -> list[Any]:
        from worldflux.factory import create_world_model
        from worldflux.parity import compare, read_golden

        tensors, meta = read_golden(golden)
        torch.manual_seed(int(meta["seed"]))
        model = create_world_model(model_id)
        with torch.no_grad():
            reward = model.decode(model.encode(tensors["obs"])).predictions["reward"]
        return [compare("reward", reward, tensors["reward"], atol=1e-6, rtol=1e-5)]

    def load_official(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - unused
        raise NotImplementedError


def write_golden(model_type: str, path: Path, perturb: float = 0.0) -> None:
    from safetensors.torch import save_file

    from worldflux.factory import create_world_model

    torch.manual_seed(3)
    model = create_world_model(f"{model_type}:ci")
    obs = torch.randn(5, 4)
    with torch.no_grad():
        reward = model.decode(model.encode(obs)).predictions["reward"] + perturb
    save_file({"obs": obs, "reward": reward}, str(path), metadata={"seed": "3"})


@pytest.fixture
def golden_dir(tmp_path: Path) -> Path:
    return tmp_path


def with_parity(
    cls: type[SpecWorldModel], tmp: Path, *, count_delta: int = 0, golden: str = "ok"
) -> None:
    """Fill the registered toy's parity facts (exact counts, a golden file) in place."""
    from worldflux.parity import _handlers, register_parity_handler

    model_type = cls.SPEC["model_type"]
    counts = {p: trainable_count(cls, p) + count_delta for p in ("ci",)}
    path = tmp / f"{model_type}.safetensors"
    if golden != "missing":
        register_parity_handler(model_type, _Handler())
        write_golden(model_type, path, perturb=0.5 if golden == "wrong" else 0.0)
    else:
        _handlers.pop(model_type, None)
    cls.SPEC["parity"] = {
        "param_counts": {"obs_shape": [4], "action_dim": 2, "counts": counts},
        "goldens": [{"file": str(path), "preset": "ci"}],
    }
    cls.SPEC["preset_params"] = {"ci": trainable_count(cls, "ci")}


@pytest.fixture(autouse=True)
def _forget_handlers() -> Iterator[None]:
    from worldflux.parity import _handlers

    before = dict(_handlers)
    yield
    _handlers.clear()
    _handlers.update(before)


def run_one(target: Any, check_id: str, tmp: Path, **kwargs: Any) -> CheckResult:
    kwargs.setdefault("hints", SWAP)
    report = check_model(
        target, checks=[check_id], profile="ci", seed=0, crash_dir=tmp / "crashes", **kwargs
    )
    (result,) = report.results
    found = [c for c in result.checks if c.id == check_id]
    assert found, f"{check_id} did not run: {[c.id for c in result.checks]} ({result.error})"
    return found[0]


# -- broken models ----------------------------------------------------------------------------
class BadEncodeShape(Planner):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        s = super().encode(obs, state, action, validate=validate)
        return State(latent=s["latent"][:, :-1])


class NaNTransition(Planner):
    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        s = super().transition(state, action, validate=validate)
        return State(latent=s["latent"] * float("nan"))


class MissingPrediction(Planner):
    def decode(self, state: State) -> ModelOutput:
        out = super().decode(state)
        return ModelOutput({k: v for k, v in out.predictions.items() if k != "continue"})


class RolloutWithoutStart(Planner):
    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        t = super().rollout(state, actions, validate=validate)
        return Trajectory(
            t.states.index(slice(1, None)), t.actions, t.rewards, t.continues, t.predictions
        )


class ExtraLossComponent(Planner):
    def loss(self, batch: Any) -> LossOutput:
        out = super().loss(batch)
        return LossOutput(out.loss, {**out.components, "bonus": out.loss * 0})


class NoValidation(Planner):
    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.validate_inputs = False


class OffsetRollout(Planner):
    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        t = super().rollout(state, actions, validate=validate)
        return Trajectory(t.states, t.actions, t.rewards + 0.1, t.continues, t.predictions)


class HiddenCounter(Planner):
    """Each rollout shifts its states a little more: not re-entrant."""

    calls = 0

    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        t = super().rollout(state, actions, validate=validate)
        self.calls += 1
        states = State({k: v + 1e-2 * self.calls for k, v in t.states.items()})
        return Trajectory(states, t.actions, t.rewards, t.continues, t.predictions)


class SqueezeAll(Planner):
    def decode(self, state: State) -> ModelOutput:
        out = super().decode(state)
        return ModelOutput({k: v.squeeze() for k, v in out.predictions.items()})


class BatchCoupled(Planner):
    def decode(self, state: State) -> ModelOutput:
        out = super().decode(state)
        reward = out.predictions["reward"]
        return ModelOutput({**out.predictions, "reward": reward - reward.mean()})


class UnseededNoise(Planner):
    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        s = super().transition(state, action, validate=validate)
        gen = torch.Generator().manual_seed(random.SystemRandom().randrange(2**31))
        return State(latent=s["latent"] + 0.1 * torch.randn(s["latent"].shape, generator=gen))


class MutatesObs(Planner):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        out = super().encode(obs, state, action, validate=validate)
        obs.mul_(0.5).add_(1.0)
        return out


class UnusedParameter(Planner):
    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.unused = nn.Linear(2, 2)


class FrozenLoss(Planner):
    def loss(self, batch: Any) -> LossOutput:
        out = super().loss(batch)
        zero = sum(p.sum() for p in self.parameters()) * 0.0
        return LossOutput(
            out.loss.detach() + zero, {k: v.detach() for k, v in out.components.items()}
        )


class UnsavedScale(Planner):
    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.register_buffer("scale", torch.rand(1) + 0.5, persistent=False)

    def decode(self, state: State) -> ModelOutput:
        out = super().decode(state)
        return ModelOutput({**out.predictions, "reward": out.predictions["reward"] * self.scale})


class ShadowEncoder(Planner):
    """loss() uses a private copy of the encoder, around the slot."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.shadow = copy.deepcopy(self.observation_encoder)

    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        if not validate:
            assert self.shadow is not None
            return self.shadow(obs)
        return super().encode(obs, state, action, validate=validate)


class WildPlanner(Planner):
    def plan(self, obs: Tensor, **kwargs: Any) -> Tensor:
        return super().plan(obs, **kwargs) * 10 + 5


def spec_with(**changes: Any) -> dict[str, Any]:
    spec = good_spec()
    for dotted, value in changes.items():
        node = spec
        *path, last = dotted.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    return spec


#: check id -> (base class, spec changes, make_toy kwargs, parity mode)
BROKEN: dict[str, tuple[type[SpecWorldModel], dict[str, Any], dict[str, Any]]] = {
    "spec.valid": (Planner, {"composable": ["teleporter"]}, {}),
    "spec.presets_build": (Planner, {}, {"presets": {"ci": {}, "big": {"latent_dim": "wide"}}}),
    "registry.aliases": (Planner, {}, {"aliases": {"wfc-ghost": "nonexistent"}}),
    "io.encode": (BadEncodeShape, {}, {}),
    "io.transition": (NaNTransition, {}, {}),
    "io.decode": (MissingPrediction, {}, {}),
    "io.rollout.shapes": (RolloutWithoutStart, {}, {}),
    "io.loss": (ExtraLossComponent, {}, {}),
    "io.capability_outputs": (
        Planner,
        {"io_contract__predictions": {"reward": {"shape": []}, "continue": {"shape": []}}},
        {},
    ),
    "negative.obs_rank": (NoValidation, {}, {}),
    "negative.obs_dtype": (NoValidation, {}, {}),
    "negative.obs_size": (NoValidation, {}, {}),
    "negative.action": (NoValidation, {}, {}),
    "rollout.consistency": (OffsetRollout, {}, {}),
    "rollout.state_machine": (HiddenCounter, {}, {}),
    "batch.polymorphism": (SqueezeAll, {}, {}),
    "batch.independence": (BatchCoupled, {}, {}),
    "determinism.seeded": (UnseededNoise, {}, {}),
    "numeric.no_mutation": (MutatesObs, {}, {}),
    "numeric.grad_flow": (UnusedParameter, {}, {}),
    "numeric.learnability": (FrozenLoss, {}, {}),
    "serde.roundtrip": (UnsavedScale, {}, {}),
    "slots.swap": (ShadowEncoder, {}, {}),
    "planning.act": (WildPlanner, {}, {}),
    "parity.param_counts": (Planner, {}, {}),
    "parity.goldens": (Planner, {}, {}),
}
#: checks whose broken case is not a model class (see their own tests below)
SPECIAL = {"registry.registered"}


def test_every_check_has_a_broken_model() -> None:
    from test_conformance_branches import NEW_BROKEN
    from test_conformance_cases import CASES

    ids = {c.info.id for c in all_checks()}
    broken_cases = {case[0] for case in CASES if case[2] == "fail"}
    assert ids == set(BROKEN) | SPECIAL | set(NEW_BROKEN) | broken_cases


def _toy(
    name: str, base: type[SpecWorldModel], spec: dict[str, Any], **kw: Any
) -> type[SpecWorldModel]:
    return make_toy(name, spec=spec, base=base, **kw)


@pytest.mark.parametrize("check_id", sorted(BROKEN))
def test_good_toy_passes(check_id: str, tmp_path: Path) -> None:
    cls = _toy("wfc_good", Planner, good_spec())
    with registered(cls):
        with_parity(cls, tmp_path)
        result = run_one("wfc_good", check_id, tmp_path)
    assert result.status == "pass", result.message


@pytest.mark.parametrize("check_id", sorted(BROKEN))
def test_broken_toy_fails(check_id: str, tmp_path: Path) -> None:
    base, changes, kwargs = BROKEN[check_id]
    cls = _toy("wfc_broken", base, spec_with(**changes), **kwargs)
    with registered(cls):
        if check_id.startswith("parity."):
            mode = {"parity.param_counts": "counts", "parity.goldens": "wrong"}[check_id]
            with_parity(cls, tmp_path, count_delta=int(mode == "counts"), golden=mode)
        result = run_one("wfc_broken", check_id, tmp_path)
    assert result.status == "fail", f"{check_id} passed a broken model: {result.message}"
    assert result.message
    assert result.repro and check_id in result.repro


def test_registry_registered_fails_for_an_unregistered_type(tmp_path: Path) -> None:
    cls = _toy("wfc_ghost", Planner, good_spec())
    cls.model_type = "wfc_ghost"  # claims a registry entry it does not have
    result = run_one(cls, "registry.registered", tmp_path)
    assert result.status == "fail" and "not registered" in result.message
    with registered(_toy("wfc_good", Planner, good_spec())):
        assert run_one("wfc_good", "registry.registered", tmp_path).status == "pass"


def test_missing_golden_file_is_a_clear_failure(tmp_path: Path) -> None:
    cls = _toy("wfc_good", Planner, good_spec())
    with registered(cls):
        with_parity(cls, tmp_path)
        cls.SPEC["parity"]["goldens"] = [
            {"file": "specs/parity/wfc_good/none.safetensors", "preset": "ci"}
        ]
        result = run_one("wfc_good", "parity.goldens", tmp_path)
    assert result.status == "fail"
    assert "not found" in result.message and "none.safetensors" in result.message


@pytest.mark.parametrize("broken", [False, True])
def test_discrete_out_of_range_action(broken: bool, tmp_path: Path) -> None:
    cls = _toy("wfc_disc", NoValidation if broken else Planner, good_spec(discrete=True))
    with registered(cls):
        result = run_one("wfc_disc", "negative.action", tmp_path)
    assert result.status == ("fail" if broken else "pass"), result.message
    if broken:
        assert "ContractViolation" in result.message


def test_rejection_must_name_the_tensor(tmp_path: Path) -> None:
    from worldflux.core.exceptions import ContractViolation

    class Vague(Planner):
        def encode(
            self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
        ) -> State:
            try:
                return super().encode(obs, state, action, validate=validate)
            except ContractViolation:
                raise ContractViolation("bad input") from None

    with registered(_toy("wfc_vague", Vague, good_spec())):
        result = run_one("wfc_vague", "negative.obs_rank", tmp_path)
    assert result.status == "fail" and "does not name" in result.message
