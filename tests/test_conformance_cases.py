"""More expectations on the checks, as one table (also the mutation runner's kill suite):
a toy that is right only in eval mode must pass everything, and one breaker per remaining
comparison (each call of no_mutation, each branch of the bounds, empty-batch and size checks,
non-finite gradients, a prediction missing at run time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_conformance_branches import NotCopyable
from test_conformance_meta import (
    BROKEN,
    MissingPrediction,
    Planner,
    _toy,
    good_spec,
    run_one,
    spec_with,
)
from torch import Tensor
from worldflux.conformance.toys import ToyMLPEncoder, registered

from worldflux.core.exceptions import ContractViolation
from worldflux.core.model import SpecWorldModel
from worldflux.core.registry import register_component
from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory


class TrainModeNoise(Planner):
    """Dropout-like: noisy in train mode, exact in eval mode (a correct model)."""

    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        out = super().decode(state, validate=validate)
        if not self.training:
            return out
        r = out.predictions["reward"]
        return ModelOutput({**out.predictions, "reward": r + 0.05 * torch.randn_like(r)})


def _mutator(where: str) -> type[SpecWorldModel]:
    class Mutates(Planner):
        def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
            out = super().transition(state, action, validate=validate)
            if where == "action" and action.is_floating_point():
                action.mul_(0.5)
            if where == "state":
                state["latent"].add_(1.0)
            return out

        def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
            out = super().rollout(state, actions, validate=validate)
            if where == "actions" and actions.is_floating_point():
                actions.mul_(0.5)
            return out

        def loss(self, batch: Any) -> LossOutput:
            out = super().loss(batch)
            if where == "batch":
                batch["rewards"].add_(1.0)
            return out

    return Mutates


class LenientSize(Planner):
    """Pads or truncates observation features instead of rejecting them."""

    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        if isinstance(obs, Tensor) and obs.dim() == 2 and obs.shape[-1] != 4:
            obs = torch.nn.functional.pad(obs, (0, max(0, 4 - obs.shape[-1])))[:, :4]
        return super().encode(obs, state, action, validate=validate)


def _bounds(kind: str) -> type[SpecWorldModel]:
    class Bounds(Planner):
        def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
            if action.is_floating_point() and bool((action.abs() > 1).any()):
                if kind == "raises":
                    raise ValueError("action out of range")
                if kind == "vague":
                    raise ContractViolation("out of range")
                if kind == "rejects":
                    raise ContractViolation("action: expected values in [-1, 1]")
                if kind == "wrong_shape":
                    return State(latent=torch.zeros(action.shape[0], 3))
            return super().transition(state, action, validate=validate)

    return Bounds


def _empty(kind: str) -> type[SpecWorldModel]:
    class Empty(Planner):
        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            if kind.startswith("declared"):
                self.validate_inputs = False

        def loss(self, batch: Any) -> LossOutput:
            if kind in ("loss_accepts", "declared") and batch["obs"].shape[0] == 0:
                return LossOutput(
                    torch.zeros(()),
                    {
                        "dynamics": torch.zeros(()),
                        "reward": torch.zeros(()),
                        "recon": torch.zeros(()),
                    },
                )
            return super().loss(batch)

        def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
            if kind == "transition_accepts" and action.shape[0] == 0:
                return State(latent=state["latent"])
            return super().transition(state, action, validate=validate)

    return Empty


class NaNGrad(Planner):
    """A finite loss whose gradient is NaN (sqrt at 0 times 0)."""

    def loss(self, batch: Any) -> LossOutput:
        out = super().loss(batch)
        first = next(self.parameters())
        nan_grad = torch.sqrt((first - first.detach()).abs().sum())
        return LossOutput(out.loss + nan_grad, out.components)


class Acting(Planner):
    """The policy and value capabilities: act(obs, carry) and value(state)."""

    @property
    def can_act(self) -> bool:
        return True

    def act(self, obs: Tensor, carry: Any = None, **_: Any) -> tuple[Tensor, Any]:
        return self.plan(obs), carry

    def value(self, state: State) -> Tensor:
        return state["latent"].mean(-1)


class WildActor(Acting):
    def act(self, obs: Tensor, carry: Any = None, **_: Any) -> tuple[Tensor, Any]:
        return self.plan(obs) * 10 + 5, carry


class ShapelessValue(Acting):
    def value(self, state: State) -> Tensor:
        return state["latent"].mean()


def _acting() -> dict[str, Any]:
    spec = good_spec()
    spec["capabilities"] = [*spec["capabilities"], "policy", "value"]
    return spec


def _size(repairs: str) -> type[SpecWorldModel]:
    class Size(Planner):
        def encode(
            self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
        ) -> State:
            if isinstance(obs, Tensor) and obs.dim() == 2:
                if repairs == "extra" and obs.shape[-1] > 4:
                    obs = obs[:, :4]
                if repairs == "missing" and obs.shape[-1] < 4:
                    obs = torch.nn.functional.pad(obs, (0, 4 - obs.shape[-1]))
            return super().encode(obs, state, action, validate=validate)

    return Size


class RaisesValueError(Planner):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        if isinstance(obs, Tensor) and obs.dim() != 2:
            raise ValueError("bad rank")
        return super().encode(obs, state, action, validate=validate)


class LenientRollout(Planner):
    """rollout repairs invalid actions (transition still rejects them)."""

    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        if self.config.action_type == "discrete":
            actions = actions.long().clamp(0, 2)
        elif actions.shape[-1] != 2:
            actions = torch.nn.functional.pad(actions, (0, 2 - actions.shape[-1]))[..., :2]
        return super().rollout(state, actions, validate=validate)


class NaNDecodeOutOfBounds(Planner):
    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        out = super().transition(state, action, validate=validate)
        if bool((action.abs() > 1).any()):
            return State(latent=out["latent"] * 0 + 1e6)
        return out

    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        out = super().decode(state, validate=validate)
        if bool((state["latent"].abs() > 1e5).any()):
            r = out.predictions["reward"]
            return ModelOutput({**out.predictions, "reward": r * float("nan")})
        return out


def _empty_broken(where: str) -> type[SpecWorldModel]:
    class EmptyBroken(Planner):
        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.validate_inputs = False

        def encode(
            self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
        ) -> State:
            out = super().encode(obs, state, action, validate=validate)
            if where == "encode" and obs.shape[0] == 0:
                return State(latent=out["latent"][:, :3])
            return out

        def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
            out = super().transition(state, action, validate=validate)
            if where == "transition" and action.shape[0] == 0:
                return State(latent=out["latent"][:, :3])
            return out

        def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
            t = super().rollout(state, actions, validate=validate)
            if where == "rollout" and actions.shape[0] == 0:
                states = State({k: v[:, 1:] for k, v in t.states.items()})
                return Trajectory(states, t.actions, t.rewards, t.continues, t.predictions)
            return t

        def loss(self, batch: Any) -> LossOutput:
            if batch["obs"].shape[0] == 0:
                zero = torch.zeros(())
                return LossOutput(zero, {"dynamics": zero, "reward": zero, "recon": zero})
            return super().loss(batch)

    return EmptyBroken


def _trajectory_breaker(change: str) -> type[SpecWorldModel]:
    class Broken(Planner):
        def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
            t = super().rollout(state, actions, validate=validate)
            preds = dict(t.predictions)
            conts: Any = t.continues
            if change == "no_continues":
                conts = None
            if change == "prediction_missing":
                preds.pop("obs")
            return Trajectory(t.states, t.actions, t.rewards, conts, preds)

    return Broken


class NoisyEverywhere(Planner):
    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        out = super().decode(state, validate=validate)
        r = out.predictions["reward"]
        return ModelOutput({**out.predictions, "reward": r + 0.01 * torch.randn_like(r)})


def _stochastic() -> dict[str, Any]:
    spec = good_spec()
    spec["conformance"] = {**spec["conformance"], "stochastic_eval": True}
    return spec


class Tied(Planner):
    """A correct model with tied weights (a second module sharing the encoder's weight)."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        first = next(self.observation_encoder.parameters())
        self.echo = torch.nn.Linear(first.shape[1], first.shape[0], bias=False)
        self.echo.weight = first


class UntiedOnLoad(Tied):
    def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        out = super().load_state_dict(state_dict, *args, **kwargs)
        self.echo.weight = torch.nn.Parameter(self.echo.weight.detach().clone())
        return out


class UntiedOnCopy(Tied):
    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        import copy as _copy

        clone = _copy.copy(self)
        clone.__dict__ = {k: _copy.deepcopy(v, memo) for k, v in self.__dict__.items()}
        clone._modules = dict(clone._modules)
        echo = _copy.deepcopy(self.echo)
        echo.weight = torch.nn.Parameter(self.echo.weight.detach().clone())
        clone._modules["echo"] = echo
        return clone


class DriftingCopy(Planner):
    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        import copy as _copy

        clone = _copy.copy(self)
        clone.__dict__ = {k: _copy.deepcopy(v, memo) for k, v in self.__dict__.items()}
        with torch.no_grad():
            for p in clone.parameters():
                p.add_(0.1)
        return clone


def _side_effect(mode: str) -> type[SpecWorldModel]:
    class SideEffect(Planner):
        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.register_buffer("calls", torch.zeros(()))

        def loss(self, batch: Any) -> LossOutput:
            if self.training == (mode == "train"):
                with torch.no_grad():
                    self.calls.add_(1.0)
            return super().loss(batch)

    return SideEffect


class StridedState(Planner):
    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        latent = state["latent"]
        raw = torch.as_strided(latent, latent.shape, (latent.shape[1], 1))
        return super().transition(State(latent=raw), action, validate=validate)


class StridedBatch(Planner):
    def loss(self, batch: Any) -> LossOutput:
        obs = batch["obs"]
        raw = torch.as_strided(obs, obs.shape, (obs.shape[1] * obs.shape[2], obs.shape[2], 1))
        return super().loss({**batch, "obs": raw})


def _b1(where: str) -> type[SpecWorldModel]:
    """Breaks only at B = 1 (a squeeze), in one call."""

    class AtB1(Planner):
        def encode(
            self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
        ) -> State:
            out = super().encode(obs, state, action, validate=validate)
            return State(latent=out["latent"].squeeze(0)) if where == "encode" else out

        def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
            out = super().transition(state, action, validate=validate)
            return State(latent=out["latent"].squeeze(0)) if where == "transition" else out

        def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
            t = super().rollout(state, actions, validate=validate)
            if where != "rollout":
                return t
            states = State({k: v.squeeze(0) for k, v in t.states.items()})
            return Trajectory(states, t.actions, t.rewards, t.continues, t.predictions)

        def loss(self, batch: Any) -> LossOutput:
            out = super().loss(batch)
            if where == "loss" and batch["obs"].shape[0] == 1:
                return LossOutput(out.loss.reshape(1), out.components)
            return out

    AtB1.__name__ = f"AtB1_{where}"
    return AtB1


class PerInstanceOffset(Planner):
    """Each instance draws a hidden offset outside the seeded RNG (not in the state_dict)."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        import random as _random

        self.offset = _random.SystemRandom().random()

    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        out = super().decode(state, validate=validate)
        return ModelOutput({**out.predictions, "reward": out.predictions["reward"] + self.offset})


class DriftsPerCall(Planner):
    """Outputs drift with a hidden call counter."""

    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        count = self.__dict__.get("_count", 0) + 1
        self.__dict__["_count"] = count
        out = super().encode(obs, state, action, validate=validate)
        return State(latent=out["latent"] + 0.01 * count)


class TransitionDouble(Planner):
    """transition returns float64 states (the layout changes along a program)."""

    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        out = super().transition(state, action, validate=validate)
        return State(latent=out["latent"].double())


class DecoderNotLoaded(Planner):
    """load_state_dict skips the decoder: a loaded model decodes with fresh weights."""

    def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        kept = {k: v for k, v in state_dict.items() if not k.startswith("decoder")}
        return super().load_state_dict(kept, strict=False)


class DropsStateKey(Planner):
    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        t = super().rollout(state, actions, validate=validate)
        states = State({"other": t.states["latent"]})
        return Trajectory(states, t.actions, t.rewards, t.continues, t.predictions)


class BareActor(Acting):
    def act(self, obs: Tensor, carry: Any = None, **_: Any) -> Any:
        return self.plan(obs)


class WideActor(Acting):
    def act(self, obs: Tensor, carry: Any = None, **_: Any) -> tuple[Tensor, Any]:
        action = self.plan(obs)
        return torch.cat([action, action], dim=-1), carry


class DictValue(Acting):
    def value(self, state: State) -> Any:
        return {"value": state["latent"].mean(-1)}


class NaNValue(Acting):
    def value(self, state: State) -> Tensor:
        return state["latent"].mean(-1) * float("nan")


class Frozen(Planner):
    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        for p in self.parameters():
            p.requires_grad_(False)


class BadObjectives(Planner):
    def objectives(self) -> Any:
        return [self.loss]


class MismatchedOptimizers(Planner):
    def objectives(self) -> dict[str, Any]:
        return {"model": self.loss}

    def optimizers(self) -> dict[str, Any]:
        return {"other": torch.optim.SGD(self.parameters(), lr=1e-3)}


@register_component("observation_encoder", "wf_conformance_toy/encoder_nan_at_b3", override=True)
class NaNAtB3Encoder(ToyMLPEncoder):
    """Serves small batches (passes the swap probe), NaN from B = 3 on."""

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        out = super().forward(obs)
        if out["latent"].shape[0] >= 3:
            return State(latent=out["latent"] * float("nan"))
        return out


@register_component("observation_encoder", "wf_conformance_toy/encoder_nan", override=True)
class NaNEncoder(ToyMLPEncoder):
    """Always NaN: refused by swap_component's probe."""

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        return State(latent=super().forward(obs)["latent"] * float("nan"))


def _swap_to(key: str) -> dict[str, Any]:
    return {"swap_candidates": {"observation_encoder": [key]}}


def _declared_empty() -> dict[str, Any]:
    return spec_with(io_contract__empty_batch="empty")


#: (check id, toy base, expected status, words in the message, spec, discrete)
CASES: list[tuple[Any, ...]] = [
    *[
        (cid, TrainModeNoise, "pass", "", None, False)
        for cid in sorted(BROKEN)
        if not cid.startswith(("spec.", "registry.", "parity."))
    ],
    *[
        (cid, TrainModeNoise, "pass", "", None, False)
        for cid in (
            "batch.equivalence",
            "determinism.eval",
            "io.strided",
            "numeric.no_alias",
            "numeric.loss_pure",
        )
    ],
    ("numeric.no_mutation", _mutator("action"), "fail", "transition modified", None, False),
    ("numeric.no_mutation", _mutator("state"), "fail", "input state", None, False),
    ("numeric.no_mutation", _mutator("actions"), "fail", "rollout modified", None, False),
    ("numeric.no_mutation", _mutator("batch"), "fail", "loss modified", None, False),
    ("negative.obs_size", LenientSize, "fail", "one extra feature", None, False),
    ("negative.action_bounds", _bounds("raises"), "fail", "ValueError", None, False),
    ("negative.action_bounds", _bounds("vague"), "fail", "does not name", None, False),
    ("negative.action_bounds", _bounds("rejects"), "pass", "", None, False),
    ("negative.action_bounds", _bounds("wrong_shape"), "fail", "latent", None, False),
    ("negative.empty_batch", _empty("loss_accepts"), "fail", "loss(batch", None, False),
    ("negative.empty_batch", _empty("transition_accepts"), "fail", "transition", None, False),
    ("negative.empty_batch", _empty("declared"), "pass", "", _declared_empty, False),
    ("negative.empty_batch", Planner, "fail", "B = 0", _declared_empty, False),
    ("numeric.grad_flow", NaNGrad, "fail", "non-finite", None, False),
    ("io.capability_outputs", MissingPrediction, "fail", "does not return", None, False),
    ("negative.obs_size", _size("extra"), "fail", "one extra feature", None, False),
    ("negative.obs_size", _size("missing"), "fail", "one feature missing", None, False),
    ("negative.obs_rank", RaisesValueError, "fail", "found ValueError", None, False),
    ("negative.action", LenientRollout, "fail", "rollout(state, invalid", None, False),
    ("negative.action", LenientRollout, "fail", "rollout(state, invalid", None, True),
    ("negative.action_bounds", NaNDecodeOutOfBounds, "fail", "finite", None, False),
    (
        "negative.empty_batch",
        _empty_broken("encode"),
        "fail",
        "encode(B = 0)",
        _declared_empty,
        False,
    ),
    (
        "negative.empty_batch",
        _empty_broken("transition"),
        "fail",
        "transition(B = 0)",
        _declared_empty,
        False,
    ),
    (
        "negative.empty_batch",
        _empty_broken("rollout"),
        "fail",
        "rollout(B = 0)",
        _declared_empty,
        False,
    ),
    ("io.rollout.shapes", _trajectory_breaker("no_continues"), "fail", "continues", None, False),
    (
        "io.rollout.shapes",
        _trajectory_breaker("prediction_missing"),
        "fail",
        "trajectory.predictions",
        None,
        False,
    ),
    ("determinism.eval", NoisyEverywhere, "skip", "stochastic_eval", _stochastic, False),
    ("batch.equivalence", NoisyEverywhere, "skip", "stochastic_eval", _stochastic, False),
    ("serde.copyable", NotCopyable, "fail", "copy.deepcopy(model) raised", None, False),
    ("serde.copyable", Tied, "pass", "", None, False),
    ("serde.copyable", UntiedOnLoad, "fail", "after load_state_dict", None, False),
    ("serde.copyable", UntiedOnCopy, "fail", "after deepcopy", None, False),
    ("serde.copyable", DriftingCopy, "fail", "deep copy gives different outputs", None, False),
    ("numeric.loss_pure", _side_effect("train"), "fail", "train mode", None, False),
    ("numeric.loss_pure", _side_effect("eval"), "fail", "eval mode", None, False),
    ("io.strided", StridedState, "fail", "non-contiguous state", None, False),
    ("io.strided", StridedBatch, "fail", "non-contiguous batch", None, False),
    *[
        ("batch.polymorphism", _b1(where), "fail", "B=1", None, False)
        for where in ("encode", "transition", "rollout", "loss")
    ],
    ("determinism.seeded", PerInstanceOffset, "fail", "same weights, different", None, False),
    ("determinism.seeded", DriftsPerCall, "fail", "on the same model differs", None, False),
    ("rollout.consistency", DropsStateKey, "fail", "missing from the trajectory", None, False),
    (
        "rollout.state_machine",
        TransitionDouble,
        "fail",
        "expected dtype float32, found float64",
        None,
        False,
    ),
    (
        "rollout.state_machine",
        DecoderNotLoaded,
        "fail",
        "decode changed after save/load",
        None,
        False,
    ),
    ("planning.policy", BareActor, "fail", "expected (action, carry)", _acting, False),
    ("planning.policy", WideActor, "fail", "act step", _acting, False),
    ("planning.policy", Planner, "not-exercised", "no act", _acting, False),
    ("planning.value", DictValue, "pass", "", _acting, False),
    ("planning.value", NaNValue, "fail", "finite", _acting, False),
    ("planning.value", Planner, "not-exercised", "no value", _acting, False),
    ("numeric.grad_flow", Frozen, "fail", "no trainable parameters", None, False),
    ("numeric.learnability", Frozen, "fail", "no trainable parameters", None, False),
    ("numeric.grad_flow", BadObjectives, "fail", "objectives() must return", None, False),
    ("numeric.learnability", MismatchedOptimizers, "fail", "one optimizer per", None, False),
    ("planning.policy", Acting, "pass", "", _acting, False),
    ("planning.policy", WildActor, "fail", "expected actions in", _acting, False),
    ("planning.value", Acting, "pass", "", _acting, False),
    ("planning.value", ShapelessValue, "fail", "expected a [B]", _acting, False),
]


#: slots.swap cases: (expected status, words, the candidate implementation key)
SWAP_CASES = [
    ("fail", "expected finite values", "wf_conformance_toy/encoder_nan_at_b3"),
    ("not-exercised", "refused", "wf_conformance_toy/encoder_nan"),
]
CASES += [
    ("slots.swap", Planner, expect, words, None, False, _swap_to(key))
    for expect, words, key in SWAP_CASES
]


def run_case(case: tuple[Any, ...], tmp: Path, **kw: Any) -> bool:
    """True when the check's outcome on the toy is the expected one."""
    check_id, base, expect, words, spec, discrete = case[:6]
    if len(case) > 6:
        kw["hints"] = case[6]
    the_spec = spec() if callable(spec) else good_spec(discrete=discrete)
    with registered(_toy("wfc_case", base, the_spec)):
        result = run_one("wfc_case", check_id, tmp, **kw)
    return result.status == expect and words in (result.message or "")


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c[0]}-{c[1].__name__}-{c[2]}-{c[3][:12]}" for c in CASES]
)
def test_case(case: tuple[Any, ...], tmp_path: Path) -> None:
    assert run_case(case, tmp_path), case
