"""More expectations on the checks, as one table (also the mutation runner's kill suite):
a toy that is right only in eval mode must pass everything, and one breaker per remaining
comparison (each call of no_mutation, each branch of the bounds, empty-batch and size checks,
non-finite gradients, a prediction missing at run time). Correct models a check must not fail
where a careless check would (noise or batch statistics in train mode only, sampling in eval
mode, scalar and dict observations, a model built in eval mode, constant unsaved buffers); slot
swaps whose new module is bypassed or breaks only past the swap probe; failures that replay from
their crash files."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from conformance_behaviour_cases import BEHAVIOUR_CASES
from test_conformance_branches import NaNOutOfBounds, NotCopyable
from test_conformance_meta import (
    BROKEN,
    FrozenLoss,
    HiddenCounter,
    MissingPrediction,
    Planner,
    RolloutWithoutStart,
    _toy,
    good_spec,
    run_one,
    spec_with,
)
from torch import Tensor, nn
from torch.nn import functional as F
from worldflux.conformance.toys import ToyDynamics, ToyHeads, ToyMLPEncoder, registered

from worldflux.components.rollout import OpenLoopRollout
from worldflux.core.components import BuildContext, Decoder, ObservationEncoder
from worldflux.core.exceptions import ContractViolation
from worldflux.core.registry import SLOTS, register_component, unregister_component
from worldflux.core.spec_model import SpecWorldModel
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

        def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
            out = super().decode(state, validate=validate)
            if where != "decode":
                return out
            return ModelOutput({k: v.squeeze(0) for k, v in out.predictions.items()})

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


#: The broken and alternative slot implementations below, registered only while a case runs
#: (:func:`toy_components`): registered for the whole session they would be swap candidates of
#: every other model's ``slots.swap`` in this process.
_TOY_COMPONENTS: list[tuple[str, str, type]] = []


def _toy_component(slot: str, key: str) -> Callable[[type], type]:
    def decorate(cls: type) -> type:
        _TOY_COMPONENTS.append((slot, key, cls))
        return cls

    return decorate


@contextmanager
def toy_components() -> Iterator[None]:
    """Register this module's toy slot implementations for the block, then remove them."""
    for slot, key, cls in _TOY_COMPONENTS:
        register_component(slot, key, override=True)(cls)
    try:
        yield
    finally:
        for slot, key, _ in _TOY_COMPONENTS:
            unregister_component(slot, key)


@_toy_component("observation_encoder", "wf_conformance_toy/encoder_nan_at_b3")
class NaNAtB3Encoder(ToyMLPEncoder):
    """Serves small batches (passes the swap probe), NaN from B = 3 on."""

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        out = super().forward(obs)
        if out["latent"].shape[0] >= 3:
            return State(latent=out["latent"] * float("nan"))
        return out


@_toy_component("observation_encoder", "wf_conformance_toy/encoder_nan")
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
    (
        "serde.copyable",
        UntiedOnLoad,
        "fail",
        "tied parameters [['echo.weight', 'observation_encoder.net.weight']] are no longer "
        "shared after load_state_dict",
        None,
        False,
    ),
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
    (
        "fail",
        "encode(obs)['latent']: expected finite values",
        "wf_conformance_toy/encoder_nan_at_b3",
    ),
    ("not-exercised", "refused", "wf_conformance_toy/encoder_nan"),
]
CASES += [
    ("slots.swap", Planner, expect, words, None, False, _swap_to(key))
    for expect, words, key in SWAP_CASES
]


# -- more breakers, one per comparison the cases above leave untested ----------------------------
def _spec(**env: Any) -> Callable[[], dict[str, Any]]:
    """The good toy's spec with other ``default_env`` values (e.g. ``action_dim=1``)."""

    def make() -> dict[str, Any]:
        spec = good_spec()
        spec["default_env"] = {**spec["default_env"], **env}
        return spec

    return make


def _hinted(**hints: Any) -> Callable[[], dict[str, Any]]:
    """The good toy's spec with ``conformance`` hints added (e.g. ``action_conditioned``)."""

    def make() -> dict[str, Any]:
        spec = good_spec()
        spec["conformance"] = {**spec["conformance"], **hints}
        return spec

    return make


def _changed(**changes: Any) -> Callable[[], dict[str, Any]]:
    return lambda: spec_with(**changes)


class ActionConditioned(Planner):
    """TD-MPC2-like: the reward is predict(state, action)'s, the reward of taking the action
    (declared with the action_conditioned hint); a correct model."""

    def predict(self, state: State, action: Tensor) -> ModelOutput:
        nxt = self.transition(state, action)
        return ModelOutput({"reward": self.decode(nxt).predictions["reward"]})


class PredictsContinueInstead(ActionConditioned):
    """predict(state, action) returns the continue prediction under its own key, no reward."""

    def predict(self, state: State, action: Tensor) -> ModelOutput:
        nxt = self.transition(state, action)
        return ModelOutput({"continue": self.decode(nxt).predictions["continue"]})


class PredictsRewardColumn(ActionConditioned):
    """predict(state, action) returns the reward head's [B, 1] column, not [B]."""

    def predict(self, state: State, action: Tensor) -> ModelOutput:
        reward = super().predict(state, action).predictions["reward"]
        return ModelOutput({"reward": reward.unsqueeze(-1)})


class VagueRejection(Planner):
    """encode re-raises contract violations with a message that names no tensor."""

    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        try:
            return super().encode(obs, state, action, validate=validate)
        except ContractViolation:
            raise ContractViolation("bad input") from None


def _time_feature(repair: str) -> type[SpecWorldModel]:
    """encode tolerates one trailing time feature (a time-limit wrapper's): ``drop`` removes an
    extra one, ``pad`` appends a missing one, instead of rejecting the wrong size."""

    class TimeFeature(Planner):
        def encode(
            self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
        ) -> State:
            n = int(self.config.obs_shape[-1])
            if isinstance(obs, Tensor) and obs.dim() == 2:
                if repair == "drop" and obs.shape[-1] == n + 1:
                    obs = obs[:, :n]
                elif repair == "pad" and obs.shape[-1] == n - 1:
                    obs = F.pad(obs, (0, 1))
            return super().encode(obs, state, action, validate=validate)

    TimeFeature.__name__ = f"TimeFeature_{repair}"
    return TimeFeature


@_toy_component("observation_encoder", "wf_conformance_toy/scalar_encoder")
class ScalarEncoder(ObservationEncoder):
    """``obs [B]`` (one number per sample, e.g. a position sensor) -> ``latent``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent = int(ctx.hparam("latent_dim"))
        self.net = nn.Linear(1, latent)
        ctx.dims["latent_dim"] = latent

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, Tensor)
        return State(latent=torch.tanh(self.net(obs.float().unsqueeze(-1))))


@_toy_component("decoder", "wf_conformance_toy/reward_heads")
class RewardHeads(Decoder):
    """Predictions ``reward [B]`` and ``continue [B]`` only (no observation decoder)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent = int(ctx.hparam("latent_dim"))
        self.heads = nn.Linear(latent, 2)

    def forward(self, state: State) -> ModelOutput:
        reward, cont = self.heads(state["latent"]).unbind(-1)
        return ModelOutput({"reward": reward, "continue": torch.sigmoid(cont)}, state=state)


def _scalar_obs() -> dict[str, Any]:
    """A toy observing one number per sample (``obs [B]``)."""
    spec = good_spec()
    spec["slots"]["observation_encoder"] = {"impl": "wf_conformance_toy/scalar_encoder"}
    spec["slots"]["decoder"] = {"impl": "wf_conformance_toy/reward_heads"}
    spec["capabilities"] = ["latent_dynamics", "reward_pred", "continue_pred", "planning"]
    contract = spec["io_contract"]
    contract["observation"] = {"obs": {"shape": [], "dtype": "float32"}}
    contract["predictions"] = {"reward": {"shape": []}, "continue": {"shape": []}}
    spec["default_env"] = {**spec["default_env"], "obs_shape": []}
    return spec


class SlicesWideActions(Planner):
    """rollout keeps the first action_dim entries of wider actions instead of rejecting them."""

    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        if actions.is_floating_point() and actions.dim() == 3:
            actions = actions[..., : int(self.config.action_dim)]
        return super().rollout(state, actions, validate=validate)


class PadsMissingActionEntry(Planner):
    """rollout pads actions one entry short (a missing gripper command) with 0."""

    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        short = actions.dim() == 3 and actions.shape[-1] == int(self.config.action_dim) - 1
        if actions.is_floating_point() and short:
            actions = F.pad(actions, (0, 1))
        return super().rollout(state, actions, validate=validate)


class EmptyStateFastPath(Planner):
    """transition returns an empty (B = 0) state unchanged, before validating the action."""

    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        if all(v.shape[0] == 0 for v in state.values()):
            return State(dict(state))
        return super().transition(state, action, validate=validate)


class TrainModeImagination(Planner):
    """Imagination noise drawn once per rollout in train mode only: rollout differs from
    repeated transition in train mode, which the clause (eval mode) allows; correct."""

    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        t = super().rollout(state, actions, validate=validate)
        if not self.training:
            return t
        latent = t.states["latent"]
        noisy = torch.cat(
            [latent[:, :1], latent[:, 1:] + 0.01 * torch.randn_like(latent[:, 1:])], 1
        )
        return Trajectory(State(latent=noisy), t.actions, t.rewards, t.continues, t.predictions)


class SamplesInEval(Planner):
    """Samples its next latent and its reward in every mode (DreamerV3-like, declares
    stochastic_eval); rollout draws in the order of H transition + decode calls: correct."""

    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        out = super().transition(state, action, validate=validate)
        return State(latent=out["latent"] + 0.01 * torch.randn_like(out["latent"]))

    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        out = super().decode(state, validate=validate)
        r = out.predictions["reward"]
        return ModelOutput({**out.predictions, "reward": r + 0.01 * torch.randn_like(r)})


class BatchNormLatent(Planner):
    """A BatchNorm on the latent: batch statistics in train mode, running ones in eval mode,
    so samples are independent in eval mode (what the clause asks); correct."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.norm = nn.BatchNorm1d(int(self.config.latent_dim))

    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        out = super().encode(obs, state, action, validate=validate)
        return State(latent=self.norm(out["latent"]))


class UnseededActor(Planner):
    """An actor head (used by plan only) initialised from a private, unseeded generator: the
    outputs of encode / rollout / loss agree between builds, the weights do not."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.actor = nn.Linear(int(self.config.latent_dim), int(self.config.action_dim))
        gen = torch.Generator().manual_seed(random.SystemRandom().randrange(2**31))
        with torch.no_grad():
            self.actor.weight.copy_(torch.randn(self.actor.weight.shape, generator=gen))

    def plan(self, obs: Tensor, **_: Any) -> Tensor:
        return torch.tanh(self.actor(self.encode(obs)["latent"]))


class ClampsStateInDecode(Planner):
    """decode clips the latent of its input state in place."""

    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        state["latent"].clamp_(-0.5, 0.5)
        return super().decode(state, validate=validate)


class ValidationLossInEval(Planner):
    """Built in eval mode (like a model loaded for inference); in eval mode loss() records no
    autograd graph (a validation fast path). Trained in train mode: correct."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.eval()

    def loss(self, batch: Any) -> LossOutput:
        with torch.set_grad_enabled(self.training and torch.is_grad_enabled()):
            return super().loss(batch)


class ConfigNormalisedObs(Planner):
    """Observation scales from the config in a non-persistent buffer (rebuilt from the config,
    never saved): a constant, so save/load needs nothing of it; correct."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        scale = torch.full(tuple(self.config.obs_shape), 0.5)
        self.register_buffer("obs_scale", scale, persistent=False)

    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        scaled = obs * self.obs_scale if isinstance(obs, Tensor) and obs.dim() == 2 else obs
        return super().encode(scaled, state, action, validate=validate)


class PlansWholeSequence(Planner):
    """An MPC planner that returns the whole planned sequence [B, H, A], not the first action."""

    def plan(self, obs: Tensor, **kwargs: Any) -> Tensor:
        first = super().plan(obs, **kwargs)
        return first.unsqueeze(1).expand(-1, 3, -1)


class ActReturnsInfo(Acting):
    """act returns (action, carry, info), gym-style, instead of (action, carry)."""

    def act(self, obs: Tensor, carry: Any = None, **_: Any) -> Any:
        return self.plan(obs), carry, {}


class CompiledEncoderCopy(Planner):
    """encode runs a copy of the encoder made at build (a compiled one): swap_component
    replaces the slot, never the copy, so the swapped encoder is never used."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.compiled = copy.deepcopy(self.observation_encoder)

    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        if validate:
            self.bound_contract().validate_observation(obs)
        return self.compiled(obs)


@_toy_component("dynamics_model", "wf_conformance_toy/dynamics_residual")
class ResidualDynamics(ToyDynamics):
    """``latent' = tanh(latent + MLP([latent, action]))``: an alternative for slot swaps."""

    def forward(self, state: State, action_input: Tensor) -> State:
        return State(latent=torch.tanh(state["latent"] + self.net(action_input)))


class CapturedRolloutStep(Planner):
    """rollout steps with the dynamics module captured at build (a compiled step), so a
    swapped dynamics model serves transition and loss, never rollout."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.__dict__["step_fn"] = self.dynamics_model

    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        states, preds = [state], []
        for t in range(actions.shape[1]):
            joint = self.action_conditioner(states[-1], actions[:, t])
            states.append(self.__dict__["step_fn"](states[-1], joint))
            preds.append(self.decode(states[-1]).predictions)
        stacked = {k: torch.stack([p[k] for p in preds], 1) for k in preds[0]}
        return Trajectory(
            State.stack(states, dim=1), actions, stacked["reward"], stacked["continue"], stacked
        )


class SwapNotImplemented(Planner):
    """swap_component is a stub raising NotImplementedError (not a ConfigurationError)."""

    def swap_component(self, slot: str, key_or_module: Any, params: Any = None) -> Any:
        raise NotImplementedError("slot swaps are not implemented yet")


class SwapKeepsOldSlot(Planner):
    """swap_component builds and returns the new module but leaves the old one installed."""

    def swap_component(self, slot: str, key_or_module: Any, params: Any = None) -> Any:
        old = getattr(self, SLOTS[slot])
        module = super().swap_component(slot, key_or_module, params)
        setattr(self, SLOTS[slot], old)
        return module


class EncodeDouble(Planner):
    """encode returns a float64 latent (features computed in numpy's default precision)."""

    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        out = super().encode(obs, state, action, validate=validate)
        return State(latent=out["latent"].double())


@_toy_component("observation_encoder", "wf_conformance_toy/dict_encoder")
class DictEncoder(ObservationEncoder):
    """``{"pos": [B, 3], "speed": [B]}`` (a vector and a scalar modality) -> ``latent``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent = int(ctx.hparam("latent_dim"))
        self.net = nn.Linear(4, latent)
        ctx.dims["latent_dim"] = latent

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, dict)
        joint = torch.cat([obs["pos"].float(), obs["speed"].float().unsqueeze(-1)], -1)
        return State(latent=torch.tanh(self.net(joint)))


@_toy_component("decoder", "wf_conformance_toy/dict_heads")
class DictHeads(Decoder):
    """``reward``, ``continue`` and one observation prediction per modality (``obs_pos [B, 3]``,
    ``obs_speed [B]``)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.heads = nn.Linear(int(ctx.hparam("latent_dim")), 6)

    def forward(self, state: State) -> ModelOutput:
        out = self.heads(state["latent"])
        predictions = {
            "reward": out[:, 0],
            "continue": torch.sigmoid(out[:, 1]),
            "obs_pos": out[:, 2:5],
            "obs_speed": out[:, 5],
        }
        return ModelOutput(predictions, state=state)


def _dict_obs() -> dict[str, Any]:
    """A toy observing a dict: ``pos`` (a vector, first in key order) and ``speed`` (a scalar)."""
    spec = good_spec()
    spec["slots"]["observation_encoder"] = {"impl": "wf_conformance_toy/dict_encoder"}
    spec["slots"]["decoder"] = {"impl": "wf_conformance_toy/dict_heads"}
    contract = spec["io_contract"]
    contract["observation"] = {
        "pos": {"shape": [3], "dtype": "float32"},
        "speed": {"shape": [], "dtype": "float32"},
    }
    contract["predictions"] = {
        "reward": {"shape": []},
        "continue": {"shape": []},
        "obs_pos": {"shape": [3]},
        "obs_speed": {"shape": []},
    }
    return spec


@_toy_component("decoder", "wf_conformance_toy/heads_nan_at_b3")
class NaNAtB3Heads(ToyHeads):
    """Serves small batches (passes the swap probe), NaN predictions from B = 3 on."""

    def forward(self, state: State) -> ModelOutput:
        out = super().forward(state)
        if state["latent"].shape[0] < 3:
            return out
        return ModelOutput({k: v * float("nan") for k, v in out.predictions.items()}, state=state)


@_toy_component("decoder", "wf_conformance_toy/heads_nan_above_b3")
class NaNAboveB3Heads(ToyHeads):
    """Serves the batches decode and rollout see here (B <= 3), NaN predictions for the larger
    flattened ``B * T`` batches loss() decodes (a NaN reward)."""

    def forward(self, state: State) -> ModelOutput:
        out = super().forward(state)
        if state["latent"].shape[0] <= 3:
            return out
        reward = out.predictions["reward"] * float("nan")
        return ModelOutput({**out.predictions, "reward": reward}, state=state)


@_toy_component("rollout_executor", "wf_conformance_toy/rollout_no_start")
class RolloutNoStart(OpenLoopRollout):
    """An alternative executor that returns only the predicted states (no start state): the
    swap probe looks at the rewards only."""

    def forward(self, model: Any, state: State, actions: Tensor) -> Trajectory:
        t = super().forward(model, state, actions)
        states = t.states.index(slice(1, None))
        return Trajectory(states, t.actions, t.rewards, t.continues, t.predictions)


def _swap_slot(slot: str, key: str) -> dict[str, Any]:
    return {"swap_candidates": {slot: [key]}}


_DYNAMICS_SWAP = {"swap_candidates": {"dynamics_model": ["wf_conformance_toy/dynamics_residual"]}}

CASES += [
    ("io.decode", ActionConditioned, "pass", "", _hinted(action_conditioned=["reward"]), False),
    (
        "io.decode",
        PredictsContinueInstead,
        "fail",
        "lacks the prediction 'reward'",
        _hinted(action_conditioned=["reward"]),
        False,
    ),
    (
        "io.decode",
        PredictsRewardColumn,
        "fail",
        "predict(state, action)['reward']",
        _hinted(action_conditioned=["reward"]),
        False,
    ),
    (
        "io.capability_outputs",
        Planner,
        "skip",
        "no prediction capability",
        _changed(capabilities=["latent_dynamics", "planning"]),
        False,
    ),
    ("negative.obs_rank", VagueRejection, "fail", "does not name", None, False),
    ("negative.obs_size", _time_feature("drop"), "fail", "one extra feature", None, False),
    ("negative.obs_size", _time_feature("pad"), "fail", "one feature missing", None, False),
    ("negative.obs_size", Planner, "pass", "", _spec(obs_shape=[1]), False),
    ("negative.obs_size", Planner, "skip", "scalars per sample", _scalar_obs, False),
    ("negative.obs_size", Planner, "pass", "", _dict_obs, False),
    ("io.capability_outputs", Planner, "pass", "", _dict_obs, False),
    ("negative.action", Planner, "pass", "", _spec(action_dim=1), False),
    (
        "negative.action",
        SlicesWideActions,
        "fail",
        "rollout(state, invalid",
        _spec(action_dim=1),
        False,
    ),
    ("negative.action", PadsMissingActionEntry, "fail", "rollout(state, invalid", None, False),
    ("negative.action_bounds", Planner, "skip", "discrete", None, True),
    (
        "negative.action_bounds",
        NaNOutOfBounds,
        "fail",
        "transition(state, out-of-bounds action)",
        None,
        False,
    ),
    (
        "negative.empty_batch",
        EmptyStateFastPath,
        "fail",
        "transition(state with B = 0)",
        None,
        False,
    ),
    ("rollout.consistency", TrainModeImagination, "pass", "", None, False),
    ("rollout.state_machine", EncodeDouble, "fail", "encode(obs)['latent']", None, False),
    ("rollout.state_machine", RolloutWithoutStart, "fail", "trajectory.states[", None, False),
    (
        "rollout.state_machine",
        TransitionDouble,
        "fail",
        "trajectory.states[:, -1]: state layout changed",
        _changed(io_contract__state={"latent": {"shape": ["latent_dim"], "dtype": "float"}}),
        False,
    ),
    ("rollout.consistency", SamplesInEval, "pass", "", _stochastic, False),
    ("batch.polymorphism", _b1("decode"), "fail", "decode[B=1]", None, False),
    ("batch.independence", BatchNormLatent, "pass", "", None, False),
    ("determinism.seeded", UnseededActor, "fail", "two builds under seed", None, False),
    ("numeric.no_alias", Planner, "pass", "", None, True),
    ("numeric.no_mutation", ClampsStateInDecode, "fail", "input state", None, False),
    ("numeric.grad_flow", ValidationLossInEval, "pass", "", None, False),
    ("numeric.learnability", ValidationLossInEval, "pass", "", None, False),
    ("serde.roundtrip", ValidationLossInEval, "pass", "", None, False),
    ("serde.roundtrip", ConfigNormalisedObs, "pass", "", None, False),
    ("planning.act", PlansWholeSequence, "fail", "plan(obs)", None, False),
    ("planning.policy", ActReturnsInfo, "fail", "expected (action, carry)", _acting, False),
    ("slots.swap", Planner, "skip", "no composable slots", _changed(composable=[]), False),
    (
        "slots.swap",
        CompiledEncoderCopy,
        "fail",
        "never called by encode + rollout",
        None,
        False,
        _swap_to("wf_conformance_toy/encoder_mlp"),
    ),
    (
        "slots.swap",
        SwapKeepsOldSlot,
        "fail",
        "never called by encode + rollout",
        None,
        False,
        _swap_to("wf_conformance_toy/encoder_mlp"),
    ),
    (
        "slots.swap",
        SwapNotImplemented,
        "fail",
        "swap_component raised NotImplementedError",
        None,
        False,
        _swap_to("wf_conformance_toy/encoder_mlp"),
    ),
    (
        "slots.swap",
        Planner,
        "pass",
        "",
        _changed(composable=["dynamics_model"]),
        False,
        _DYNAMICS_SWAP,
    ),
    (
        "slots.swap",
        CapturedRolloutStep,
        "fail",
        "never called by encode + rollout",
        _changed(composable=["dynamics_model"]),
        False,
        _DYNAMICS_SWAP,
    ),
]

CASES += [
    (
        "slots.swap",
        Planner,
        "fail",
        "trajectory.predictions['reward']: expected finite values",
        _changed(composable=["decoder"]),
        False,
        _swap_slot("decoder", "wf_conformance_toy/heads_nan_at_b3"),
    ),
    (
        "slots.swap",
        Planner,
        "fail",
        "loss(batch).loss: expected a finite value",
        _changed(composable=["decoder"]),
        False,
        _swap_slot("decoder", "wf_conformance_toy/heads_nan_above_b3"),
    ),
    (
        "slots.swap",
        Planner,
        "fail",
        "trajectory.states['latent']: expected shape",
        _changed(composable=["rollout_executor"]),
        False,
        _swap_slot("rollout_executor", "wf_conformance_toy/rollout_no_start"),
    ),
]

CASES += BEHAVIOUR_CASES


def run_case(case: tuple[Any, ...], tmp: Path, **kw: Any) -> bool:
    """True when the check's outcome on the toy is the expected one."""
    check_id, base, expect, words, spec, discrete = case[:6]
    if len(case) > 6:
        kw["hints"] = case[6]
    with toy_components():
        the_spec = spec() if callable(spec) else good_spec(discrete=discrete)
        with registered(_toy("wfc_case", base, the_spec)):
            result = run_one("wfc_case", check_id, tmp, **kw)
    return result.status == expect and words in (result.message or "")


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c[0]}-{c[1].__name__}-{c[2]}-{c[3][:12]}" for c in CASES]
)
def test_case(case: tuple[Any, ...], tmp_path: Path) -> None:
    assert run_case(case, tmp_path), case


#: checks that record their own inputs (no Hypothesis property): check id -> a toy failing it
REPLAYED: dict[str, type[SpecWorldModel]] = {
    "numeric.learnability": FrozenLoss,
    "rollout.state_machine": HiddenCounter,
}


def replays_its_inputs(check_id: str, base: type[SpecWorldModel], tmp: Path) -> bool:
    """True when the failure of ``check_id`` on ``base`` saves the inputs it ran on in its crash
    file, and replaying that file fails again."""
    from worldflux.conformance.replay import load_crash, replay_crash

    with registered(_toy("wfc_replay", base, good_spec())):
        result = run_one("wfc_replay", check_id, tmp)
        if result.status != "fail" or not result.crash_file:
            return False
        crash = load_crash(result.crash_file)
        status, _ = replay_crash(crash)
    return isinstance(crash["inputs"], dict) and bool(crash["inputs"]) and status == "FAILED"


@pytest.mark.parametrize("check_id", sorted(REPLAYED))
def test_failure_replays_its_inputs(check_id: str, tmp_path: Path) -> None:
    assert replays_its_inputs(check_id, REPLAYED[check_id], tmp_path)
