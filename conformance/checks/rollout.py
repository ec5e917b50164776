"""Rollout checks: ``rollout`` equals stepping ``transition`` + ``decode`` (consistency), and a
Hypothesis state machine drives the rollout executor step by step."""

from __future__ import annotations

import copy
import io
from typing import Any

import torch
from hypothesis import seed as hypothesis_seed
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)
from worldflux.conformance.checks.common import (
    ATOL,
    RTOL,
    SHOULD_MUST,
    batch_size,
    encode_state,
    same,
    validated,
)
from worldflux.conformance.context import (
    CheckContext,
    CheckFailed,
    as_state,
    as_trajectory,
    predictions_of,
    register_torch_random,
    seeded,
    set_mode,
    tensors_equal,
)
from worldflux.conformance.registry import Cost, check
from worldflux.conformance.strategies import Case, random_action

from worldflux.core.spec import ModelIOContract
from worldflux.core.types import State


# -- rollout -----------------------------------------------------------------------------------
@check(
    "rollout.consistency",
    clause="In eval mode with the same seed, rollout(state, actions) equals H repeated "
    "transition + decode calls: states[:, 0] is the start state, states[:, t+1], rewards, "
    "continues and predictions match step by step (action-conditioned predictions: "
    "predict(states[:, t], actions[:, t])).",
    levels=SHOULD_MUST,
    code="WFC301",
    cost=Cost.MEDIUM,
    example="""
torch.manual_seed(0); traj = model.rollout(s0, actions)
torch.manual_seed(0); s1 = model.transition(s0, actions[:, 0]); p1 = model.decode(s1)
assert torch.allclose(traj.states["latent"][:, 1], s1["latent"])
""",
)
def rollout_consistency(ctx: CheckContext) -> None:
    model = ctx.model()
    set_mode(model, False)
    conditioned = ctx.action_conditioned()

    def prop(inputs: dict[str, Any]) -> None:
        seed, actions = inputs["seed"], inputs["actions"]
        with torch.no_grad():
            seeded(seed)
            start = encode_state(ctx, model, inputs["obs"])
            seeded(seed + 1)
            traj = as_trajectory(
                ctx.call("rollout(state, actions)", model.rollout, start, actions), "rollout"
            )
            seeded(seed + 1)
            state = start
            for t in range(int(actions.shape[1])):
                before = state
                state = as_state(
                    ctx.call("transition", model.transition, state, actions[:, t]), "transition"
                )
                preds = predictions_of(ctx.call("decode", model.decode, state), "decode")
                if conditioned:  # r_t = f(s_t, a_t): from the state before the step
                    extra = predictions_of(
                        ctx.call("predict", model.predict, before, actions[:, t]), "predict"
                    )
                    preds.update({k: extra[k] for k in conditioned if k in extra})
                step = traj.states.index(t + 1)
                keys = _compared_keys(ctx, step, state)
                found = tensors_equal(
                    {k: step[k] for k in keys},
                    {k: state[k] for k in keys},
                    atol=ATOL,
                    rtol=RTOL,
                    path=f"trajectory.states step {t + 1} vs transition",
                )
                same(found, "rollout != repeated transition")
                for key, value in preds.items():
                    if key not in traj.predictions:
                        raise CheckFailed(
                            f"trajectory.predictions lacks {key!r} that decode returns"
                        )
                    same(
                        tensors_equal(
                            traj.predictions[key][:, t],
                            value,
                            atol=ATOL,
                            rtol=RTOL,
                            path=f"predictions[{key!r}] step {t}",
                        ),
                        "rollout != repeated decode",
                    )
                for key, field_ in (("reward", traj.rewards), ("continue", traj.continues)):
                    if key in preds and field_ is not None:
                        same(
                            tensors_equal(
                                field_[:, t],
                                preds[key],
                                atol=ATOL,
                                rtol=RTOL,
                                path=f"{key} step {t}",
                            ),
                            "rollout != repeated decode",
                        )
            same(
                tensors_equal(
                    {k: traj.states.index(0)[k] for k in _compared_keys(ctx, traj.states, start)},
                    {k: start[k] for k in _compared_keys(ctx, traj.states, start)},
                    atol=ATOL,
                    rtol=RTOL,
                    path="trajectory.states[:, 0]",
                ),
                "the trajectory does not start at the given state",
            )
            # a second start state on the same model: a memoised or stale rollout shows here
            # mutation: equivalent[2 -> 3]: this seed only draws the second start state, from
            # which rollout and transition (both reseeded with seed + 3) are then compared
            seeded(seed + 2)
            other = encode_state(ctx, model, inputs["obs_alt"])
            seeded(seed + 3)
            again = as_trajectory(
                ctx.call("rollout(state, actions)", model.rollout, other, actions), "rollout"
            )
            seeded(seed + 3)
            first = as_state(
                ctx.call("transition", model.transition, other, actions[:, 0]), "transition"
            )
            keys = _compared_keys(ctx, again.states, first)
            same(
                tensors_equal(
                    {k: again.states.index(1)[k] for k in keys},
                    {k: first[k] for k in keys},
                    atol=ATOL,
                    rtol=RTOL,
                    path="trajectory.states step 1 (second start state) vs transition",
                ),
                "rollout from a second start state != transition",
            )

    ctx.property(prop)


def _compared_keys(ctx: CheckContext, stacked: State, single: State) -> list[str]:
    """The declared state keys, plus undeclared keys present in both states."""
    declared = set(ctx.contract.state)
    missing = sorted(k for k in declared if k not in stacked or k not in single)
    if missing:
        raise CheckFailed(f"declared state tensors {missing} missing from the trajectory or step")
    return sorted(declared | (set(stacked) & set(single)))


class _Executor:
    """Runs the state machine's operations (also used to replay a recorded program)."""

    def __init__(self, ctx: CheckContext, model: Any, contract: ModelIOContract) -> None:
        self.ctx, self.model, self.contract = ctx, model, contract
        self.states: list[State] = []
        self.signature: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None
        # mutation: equivalent: every program (drawn, or recorded and replayed) starts with an
        # encode step, which sets the batch before anything reads it
        self.batch = 0

    def _keep(self, state: State, what: str) -> int:
        validated(lambda: self.contract.validate_state(state, (self.batch,), what))
        sig = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
        if self.signature is None:
            self.signature = sig
        elif sig != self.signature:
            raise CheckFailed(f"{what}: state layout changed from {self.signature} to {sig}")
        self.states.append(state)
        return len(self.states) - 1

    def run(self, step: dict[str, Any]) -> int | None:
        op = step["op"]
        ctx, model = self.ctx, self.model
        with torch.no_grad():
            if op == "encode":
                self.batch = int(step["batch"])
                return self._keep(encode_state(ctx, model, step["obs"]), "encode(obs)")
            if op == "transition":
                state = self.states[step["state"]]
                nxt = ctx.call("transition", model.transition, state, step["action"])
                return self._keep(as_state(nxt, "transition"), "transition(state, action)")
            if op == "rollout":
                state, actions = self.states[step["state"]], step["actions"]
                runs = []
                for _ in range(2):
                    seeded(step["seed"])
                    runs.append(
                        as_trajectory(ctx.call("rollout", model.rollout, state, actions), "rollout")
                    )
                h = int(actions.shape[1])
                validated(
                    lambda: self.contract.validate_state(
                        runs[0].states, (self.batch, h + 1), "trajectory.states"
                    )
                )
                same(
                    tensors_equal(dict(runs[0].states), dict(runs[1].states), path="states"),
                    "two rollouts from the same stored state with the same seed differ "
                    "(hidden mutable state?)",
                )
                # mutation: equivalent[0 -> 1]: runs[0] and runs[1] were found equal just above
                return self._keep(runs[0].states.index(h), "trajectory.states[:, -1]")
            if op == "save_load":
                state = self.states[step["state"]]
                seeded(step["seed"])
                before = predictions_of(ctx.call("decode", model.decode, state), "decode")
                fresh = ctx.build(int(step["seed"]) + 1)
                set_mode(fresh, False)
                buffer = io.BytesIO()
                torch.save(model.state_dict(), buffer)
                buffer.seek(0)
                ctx.call("load_state_dict", fresh.load_state_dict, torch.load(buffer))
                self.model = fresh
                seeded(step["seed"])
                after = predictions_of(ctx.call("decode", fresh.decode, state), "decode")
                same(tensors_equal(before, after, path="decode"), "decode changed after save/load")
                return None
        raise CheckFailed(f"unknown state-machine step {op!r}")


@check(
    "rollout.state_machine",
    clause="Any sequence of encode / transition / rollout / save-load keeps the declared state "
    "layout, finite values, and re-entrancy: rolling out twice from a stored state with the "
    "same seed gives identical trajectories.",
    levels=SHOULD_MUST,
    code="WFC302",
    cost=Cost.EXPENSIVE,
    example="""
s0 = model.encode(obs); s1 = model.transition(s0, a)
torch.manual_seed(1); t1 = model.rollout(s0, actions)
torch.manual_seed(1); t2 = model.rollout(s0, actions)      # identical to t1
""",
)
def rollout_state_machine(ctx: CheckContext) -> None:
    prototype, contract = ctx.model(), ctx.contract
    set_mode(prototype, False)
    if ctx.replay is not None:
        executor = _Executor(ctx, copy.deepcopy(prototype), contract)
        for step in ctx.replay["steps"]:
            executor.run(step)
        return
    log: list[dict[str, Any]] = []
    profile = ctx.options.profile
    horizons = st.integers(1, profile.max_horizon)
    seeds = st.integers(0, 2**31 - 1)

    @hypothesis_seed(ctx.options.seed)  # the run's seed fixes the programs, as for properties
    class Machine(RuleBasedStateMachine):
        states = Bundle("states")

        def __init__(self) -> None:
            super().__init__()
            log.clear()
            self.executor = _Executor(ctx, copy.deepcopy(prototype), contract)
            self.case: Case | None = None

        def _do(self, step: dict[str, Any]) -> int | None:
            log.append(step)
            ctx.record({"steps": list(log)})
            return self.executor.run(step)

        @initialize(target=states, case=ctx.cases())
        def start(self, case: Case) -> int | None:
            self.case = case
            inputs = case.materialize(contract)
            self.inputs = inputs
            first = self._do({"op": "encode", "obs": inputs["obs"], "batch": case.batch})
            # every program runs each operation at least once (re-entrancy, layout, save/load)
            self._do(
                {"op": "rollout", "state": first, "actions": inputs["actions"], "seed": case.seed}
            )
            self._do({"op": "transition", "state": first, "action": inputs["action"]})
            self._do({"op": "save_load", "state": first, "seed": case.seed})
            return first

        @rule(target=states, alt=st.booleans())
        def encode(self, alt: bool) -> int | None:
            obs = self.inputs["obs_alt" if alt else "obs"]
            return self._do({"op": "encode", "obs": obs, "batch": batch_size(self.inputs)})

        @rule(target=states, state=states, seed=seeds)
        def transition(self, state: int, seed: int) -> int | None:
            gen = torch.Generator().manual_seed(seed)
            action = random_action(contract.action, (batch_size(self.inputs),), gen)
            return self._do({"op": "transition", "state": state, "action": action})

        @rule(target=states, state=states, horizon=horizons, seed=seeds)
        def rollout(self, state: int, horizon: int, seed: int) -> int | None:
            gen = torch.Generator().manual_seed(seed)
            actions = random_action(contract.action, (batch_size(self.inputs), horizon), gen)
            return self._do({"op": "rollout", "state": state, "actions": actions, "seed": seed})

        @rule(state=states, seed=seeds)
        def save_load(self, state: int, seed: int) -> None:
            self._do({"op": "save_load", "state": state, "seed": seed})

    register_torch_random()
    base = ctx.hypothesis_settings()
    run_state_machine_as_test(
        Machine,
        settings=settings(
            base, stateful_step_count=profile.state_machine_steps, max_examples=base.max_examples
        ),
    )
