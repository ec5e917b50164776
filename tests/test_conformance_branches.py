"""Checks on the checker, per comparison branch: a broken toy for each new check, and for
every comparison a check makes (each rollout.consistency comparison, each generated invalid
input, each watched piece of global state, each serde path) a toy that breaks only that one,
with the message showing that the intended branch caught it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_conformance_meta import (
    BatchCoupled,
    NoValidation,
    Planner,
    _toy,
    good_spec,
    run_one,
)
from torch import Tensor
from worldflux.conformance.toys import registered

from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory


class NoisyDecode(Planner):
    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        out = super().decode(state, validate=validate)
        r = out.predictions["reward"]
        return ModelOutput({**out.predictions, "reward": r + 0.01 * torch.randn_like(r)})


class StridedBlind(Planner):
    def encode(
        self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
    ) -> State:
        if isinstance(obs, Tensor) and obs.dim() == 2:
            obs = torch.as_strided(obs, obs.shape, (obs.shape[1], 1))
        return super().encode(obs, state, action, validate=validate)


class AliasedReward(Planner):
    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        out = super().decode(state, validate=validate)
        return ModelOutput({**out.predictions, "reward": state["latent"][:, 0]})


class LossSideEffect(Planner):
    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.register_buffer("seen", torch.zeros(()))

    def loss(self, batch: Any) -> LossOutput:
        with torch.no_grad():
            self.seen.add_(1.0)
        return super().loss(batch)


class NaNOutOfBounds(Planner):
    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        s = super().transition(state, action, validate=validate)
        return State(latent=s["latent"] * torch.sqrt(1 - action[:, :1] ** 2).mean())


class NotCopyable(Planner):
    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.lock = threading.Lock()  # deepcopy: cannot pickle '_thread.lock'


#: the new checks: check id -> broken base class
NEW_BROKEN: dict[str, type[SpecWorldModel]] = {
    "batch.equivalence": BatchCoupled,
    "determinism.eval": NoisyDecode,
    "io.strided": StridedBlind,
    "numeric.no_alias": AliasedReward,
    "numeric.loss_pure": LossSideEffect,
    "negative.action_bounds": NaNOutOfBounds,
    "negative.empty_batch": NoValidation,
    "serde.copyable": NotCopyable,
}


def _run(base: type[SpecWorldModel], check_id: str, tmp: Path, discrete: bool = False) -> Any:
    with registered(_toy("wfc_branch", base, good_spec(discrete=discrete))):
        return run_one("wfc_branch", check_id, tmp)


@pytest.mark.parametrize("check_id", sorted(NEW_BROKEN))
def test_new_check_passes_the_good_toy(check_id: str, tmp_path: Path) -> None:
    result = _run(Planner, check_id, tmp_path)
    assert result.status == "pass", result.message


@pytest.mark.parametrize("check_id", sorted(NEW_BROKEN))
def test_new_check_fails_its_broken_toy(check_id: str, tmp_path: Path) -> None:
    result = _run(NEW_BROKEN[check_id], check_id, tmp_path)
    assert result.status == "fail", f"{check_id} passed a broken model: {result.message}"


# -- rollout.consistency: one breaker per comparison ------------------------------------------
def _rollout_breaker(change: str) -> type[SpecWorldModel]:
    class Broken(Planner):
        def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
            t = super().rollout(state, actions, validate=validate)
            states, rewards, conts, preds = t.states, t.rewards, t.continues, dict(t.predictions)
            if change == "states":
                states = State(
                    {k: torch.cat([v[:, :1], v[:, 1:] + 0.1], 1) for k, v in states.items()}
                )
            elif change == "start":
                states = State(
                    {k: torch.cat([v[:, :1] * 0, v[:, 1:]], 1) for k, v in states.items()}
                )
            elif change == "missing_prediction":
                preds.pop("obs")
            elif change == "prediction_values":
                preds["obs"] = preds["obs"] + 0.1
            elif change == "rewards":
                rewards = rewards + 0.1
            elif change == "continues":
                conts = 1 - conts
            elif change == "second_start":
                cache = self.__dict__.setdefault("_cache", {})
                key = (tuple(actions.shape), float(actions.sum()))
                return cache.setdefault(key, t)
            return Trajectory(states, t.actions, rewards, conts, preds)

    Broken.__name__ = f"Rollout_{change}"
    return Broken


#: comparison branch -> words its failure message must contain
ROLLOUT_BRANCHES = {
    "states": "rollout != repeated transition: trajectory.states step 1 vs transition",
    "start": "does not start at the given state",
    "missing_prediction": "lacks 'obs'",
    "prediction_values": "predictions['obs']",
    "rewards": "reward step",
    "continues": "continue step",
    "second_start": "second start state",
}


@pytest.mark.parametrize("branch", sorted(ROLLOUT_BRANCHES))
def test_rollout_consistency_catches_each_comparison(branch: str, tmp_path: Path) -> None:
    result = _run(_rollout_breaker(branch), "rollout.consistency", tmp_path)
    assert result.status == "fail", f"{branch}: passed ({result.message})"
    assert ROLLOUT_BRANCHES[branch] in result.message, result.message


# -- negative.*: one breaker per generated invalid input ---------------------------------------
def _lenient_encode(accept: Any) -> type[SpecWorldModel]:
    """encode repairs inputs for which ``accept(obs)`` is True instead of rejecting them."""

    class Lenient(Planner):
        def encode(
            self, obs: Any, state: Any = None, action: Any = None, *, validate: bool = True
        ) -> State:
            if isinstance(obs, Tensor) and accept(obs):
                if obs.dim() == 1:
                    obs = obs.unsqueeze(0)
                elif obs.dim() == 3:
                    obs = obs[0] if obs.shape[0] == 1 and obs.shape[-1] != 1 else obs[..., 0]
                obs = obs.float()
            return super().encode(obs, state, action, validate=validate)

    return Lenient


@pytest.mark.parametrize(
    "dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool]
)
def test_obs_dtype_tries_every_width(dtype: torch.dtype, tmp_path: Path) -> None:
    result = _run(_lenient_encode(lambda o: o.dtype == dtype), "negative.obs_dtype", tmp_path)
    assert result.status == "fail", result.message
    assert str(dtype).removeprefix("torch.") in result.message


@pytest.mark.parametrize(
    ("variant", "accept"),
    [
        ("unbatched", lambda o: o.dim() == 1),
        ("extra leading dim", lambda o: o.dim() == 3 and o.shape[0] == 1 and o.shape[-1] != 1),
        ("extra trailing dim", lambda o: o.dim() == 3 and o.shape[-1] == 1),
    ],
)
def test_obs_rank_tries_each_wrong_rank(variant: str, accept: Any, tmp_path: Path) -> None:
    result = _run(_lenient_encode(accept), "negative.obs_rank", tmp_path)
    assert result.status == "fail", result.message
    assert variant in result.message, result.message


def _lenient_transition(accept: Any, repair: Any) -> type[SpecWorldModel]:
    class Lenient(Planner):
        def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
            if accept(action):
                action = repair(action, self)
            return super().transition(state, action, validate=validate)

    return Lenient


CONTINUOUS_VARIANTS = {
    "one extra entry": (lambda a: a.dim() == 2 and a.shape[-1] == 3, lambda a, m: a[:, :2]),
    "one entry missing": (
        lambda a: a.dim() == 2 and a.shape[-1] == 1,
        lambda a, m: torch.cat([a, a], -1),
    ),
    "dtype int64": (lambda a: a.dtype == torch.int64, lambda a, m: a.float()),
    "dtype bool": (lambda a: a.dtype == torch.bool, lambda a, m: a.float()),
    "unbatched": (lambda a: a.dim() == 1, lambda a, m: a.expand(1, -1).float()),
}


@pytest.mark.parametrize("variant", sorted(CONTINUOUS_VARIANTS))
def test_action_tries_each_continuous_variant(variant: str, tmp_path: Path) -> None:
    accept, repair = CONTINUOUS_VARIANTS[variant]
    result = _run(_lenient_transition(accept, repair), "negative.action", tmp_path)
    assert result.status == "fail", result.message
    assert variant in result.message, result.message


DISCRETE_VARIANTS = {
    "float discrete": (lambda a: a.is_floating_point(), lambda a, m: a.long()),
    "int32 discrete": (lambda a: a.dtype == torch.int32, lambda a, m: a.long()),
    "negative discrete": (
        lambda a: a.dtype == torch.int64 and a.dim() == 1 and bool((a < 0).any()),
        lambda a, m: a.clamp(min=0),
    ),
    "discrete action == n": (
        lambda a: a.dtype == torch.int64 and a.dim() == 1 and bool((a == 3).any()),
        lambda a, m: a.clamp(max=2),
    ),
    "discrete action > n": (
        lambda a: a.dtype == torch.int64 and a.dim() == 1 and bool((a > 3).any()),
        lambda a, m: a.clamp(max=2),
    ),
    "one-hot": (lambda a: a.dim() == 2, lambda a, m: a.argmax(-1)),
}


@pytest.mark.parametrize("variant", sorted(DISCRETE_VARIANTS))
def test_action_tries_each_discrete_variant(variant: str, tmp_path: Path) -> None:
    accept, repair = DISCRETE_VARIANTS[variant]
    breaker = _lenient_transition(accept, repair)
    result = _run(breaker, "negative.action", tmp_path, discrete=True)
    assert result.status == "fail", result.message
    assert variant in result.message, result.message


# -- the global-state guard: one breaker per watched piece of state ----------------------------
def _state_breaker(what: str) -> type[SpecWorldModel]:
    class Broken(Planner):
        def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
            if what == "grad mode":
                torch.set_grad_enabled(True)
            elif what == "default dtype":
                torch.set_default_dtype(torch.float64)
            elif what == "deterministic algorithms":
                torch.use_deterministic_algorithms(not torch.are_deterministic_algorithms_enabled())
            elif what == "intra-op threads":
                torch.set_num_threads(torch.get_num_threads() + 1)
            elif what == "thread":
                threading.Thread(target=time.sleep, args=(0.3,), daemon=True).start()
            elif what == "reseeded":
                torch.manual_seed(0)
            return super().decode(state, validate=validate)

    return Broken


@pytest.mark.parametrize(
    "what",
    [
        "grad mode",
        "default dtype",
        "deterministic algorithms",
        "intra-op threads",
        "thread",
        "reseeded",
    ],
)
def test_guard_sees_each_global_change(what: str, tmp_path: Path) -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        result = _run(_state_breaker(what), "io.decode", tmp_path)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    assert result.status == "fail", result.message
    assert what in result.message, result.message
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()


# -- serde: the buffer-perturbation branch ------------------------------------------------------
class BufferNotLoaded(Planner):
    """load_state_dict ignores buffers: only seen once buffers differ from a fresh build."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.register_buffer("reward_scale", torch.ones(()))

    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        out = super().decode(state, validate=validate)
        r = out.predictions["reward"]
        return ModelOutput({**out.predictions, "reward": r * self.reward_scale})

    def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        kept = {k: v for k, v in state_dict.items() if k != "reward_scale"}
        return super().load_state_dict(kept, strict=False)


def test_serde_perturbs_buffers(tmp_path: Path) -> None:
    result = _run(BufferNotLoaded, "serde.roundtrip", tmp_path)
    assert result.status == "fail", result.message


# -- io.loss / io.rollout.shapes: one breaker per output comparison ------------------------------
def _output_breaker(change: str) -> type[SpecWorldModel]:
    class Broken(Planner):
        def loss(self, batch: Any) -> LossOutput:
            out = super().loss(batch)
            if change == "loss_not_tensor":
                return LossOutput(float(out.loss.detach()), out.components)  # type: ignore[arg-type]
            if change == "loss_integer":
                return LossOutput(out.loss.round().long(), out.components)
            if change == "loss_nan":
                return LossOutput(out.loss * float("nan"), out.components)
            if change == "loss_component_shape":
                return LossOutput(
                    out.loss, {**out.components, "reward": out.components["reward"].reshape(1)}
                )
            return out

        def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
            t = super().rollout(state, actions, validate=validate)
            rewards, actions_out = t.rewards, t.actions
            if change == "rewards_not_tensor":
                rewards = rewards.tolist()
            elif change == "rewards_shape":
                rewards = rewards[:, :-1]
            elif change == "rewards_integer":
                rewards = rewards.round().long()
            elif change == "rewards_nan":
                rewards = rewards * float("nan")
            elif change == "actions_shape":
                actions_out = actions_out[:, :-1]
            return Trajectory(t.states, actions_out, rewards, t.continues, t.predictions)

    return Broken


#: output comparison -> words its failure message must contain
OUTPUT_BRANCHES = {
    "loss_not_tensor": "expected a scalar tensor",
    "loss_integer": "expected a floating tensor",
    "loss_nan": "expected a finite value",
    "loss_component_shape": "components['reward']",
    "rewards_not_tensor": "expected a Tensor",
    "rewards_shape": "trajectory.rewards: expected shape",
    "rewards_integer": "expected a floating dtype",
    "rewards_nan": "expected finite values",
    "actions_shape": "trajectory.actions",
}


@pytest.mark.parametrize("branch", sorted(OUTPUT_BRANCHES))
def test_output_checks_catch_each_comparison(branch: str, tmp_path: Path) -> None:
    check_id = "io.loss" if branch.startswith("loss") else "io.rollout.shapes"
    result = _run(_output_breaker(branch), check_id, tmp_path)
    assert result.status == "fail", f"{branch}: passed ({result.message})"
    assert OUTPUT_BRANCHES[branch] in result.message, result.message
