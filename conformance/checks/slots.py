"""Slot swaps (``slots.swap``), planning (``planning.act``), the policy and value capabilities
(``planning.policy``, ``planning.value``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from worldflux.conformance.checks.common import (
    as_batch,
    batch_size,
    check_scalar,
    validated,
    within_bounds,
)
from worldflux.conformance.context import (
    CheckContext,
    CheckFailed,
    CheckSkipped,
    NotExercised,
    as_loss,
    as_state,
    as_trajectory,
    seeded,
)
from worldflux.conformance.registry import Cost, check

from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import SLOTS, list_components
from worldflux.core.spec import Capability

#: slots a rollout does not go through (they are exercised by encode before the rollout)
_ROLLOUT_VIA_ENCODE = {"observation_encoder"}
#: slots the loss need not call
_LOSS_OPTIONAL = {"rollout_executor"}


class _Spy:
    """Records whether one module's forward ran (since the last reset of ``called``)."""

    def __init__(self, module: nn.Module) -> None:
        self.called = False
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        self.called = True


def _exercise(
    ctx: CheckContext, model: Any, slot: str, module: nn.Module, inputs: dict[str, Any]
) -> None:
    """I/O checks of a model with a swapped slot, and the spy on that slot."""
    contract = ctx.contract
    spy = _Spy(module)
    try:
        seeded(inputs["seed"])
        b, h = batch_size(inputs), int(inputs["actions"].shape[1])
        with torch.no_grad():
            state = as_state(ctx.call("encode", model.encode, inputs["obs"]), "encode(obs)")
            validated(lambda: contract.validate_state(state, (b,), "encode(obs)"))
            if slot not in _ROLLOUT_VIA_ENCODE:
                spy.called = False
            traj = as_trajectory(
                ctx.call("rollout", model.rollout, state, inputs["actions"]), "rollout"
            )
            validated(lambda: contract.validate_state(traj.states, (b, h + 1), "trajectory.states"))
            validated(
                lambda: contract.validate_predictions(
                    traj.predictions, (b, h), "trajectory.predictions"
                )
            )
        if not spy.called:
            raise CheckFailed("the swapped slot was never called by encode + rollout")
        spy.called = False
        out = as_loss(ctx.call("loss", model.loss, as_batch(inputs["batch"])), "loss")
        check_scalar(out.loss, "loss(batch).loss")
        validated(lambda: contract.validate_loss(out.components, "loss(batch).components"))
        if not spy.called and slot not in _LOSS_OPTIONAL:
            raise CheckFailed("the swapped slot was never called by loss (loss goes around it)")
    finally:
        # mutation: equivalent: the model and its swapped module are dropped after this call;
        # a hook left on them only sets a flag that nothing reads again
        spy.handle.remove()


@check(
    "slots.swap",
    clause="Each composable slot replaced by another registered implementation of that slot "
    "still passes the I/O checks, and a spy shows rollout and loss really call it. An "
    "implementation that cannot serve the model must refuse at build with ConfigurationError.",
    levels=("n/a", "must", "must"),
    code="WFC801",
    cost=Cost.EXPENSIVE,
    example="""
model.swap_component("observation_encoder", "mlp")   # another registered encoder
model.loss(batch); model.rollout(model.encode(obs), actions)   # both call the new encoder
""",
)
def slots_swap(ctx: CheckContext) -> None:
    composable = ctx.composable()
    if not composable:
        raise CheckSkipped("n/a: the model declares no composable slots")
    probe = ctx.model()
    if not hasattr(probe, "swap_component"):
        raise CheckFailed(
            f"declares composable slots {composable} but has no swap_component(slot, key)"
        )
    hint = ctx.hints().get("swap_candidates") or {}
    candidates: list[tuple[str, str]] = []
    for slot in composable:
        current = getattr(getattr(probe, SLOTS.get(slot, slot), None), "component_key", None)
        keys = hint[slot] if slot in hint else list_components(slot)[slot]
        candidates += [(slot, key) for key in keys if key != current]
    tried: set[str] = set()  # over all examples (the same candidates each time)
    refused: set[str] = set()

    def prop(inputs: dict[str, Any]) -> None:
        problems = []
        for slot, key in candidates:
            model = ctx.model()
            try:
                module = model.swap_component(slot, key)
            except ConfigurationError:
                refused.add(f"{slot}={key}")
                continue
            except Exception as error:
                problems.append(
                    f"{slot}={key}: swap_component raised {type(error).__name__}: {error}"
                )
                continue
            tried.add(f"{slot}={key}")
            if not isinstance(module, nn.Module):
                module = getattr(model, SLOTS[slot])
            try:
                _exercise(ctx, model, slot, module, inputs)
            except CheckFailed as error:
                problems.append(f"{slot}={key}: {error}")
        if problems:
            raise CheckFailed("; ".join(problems))

    ctx.property(prop)
    if not tried:
        raise NotExercised(
            f"no other registered implementation could be swapped into {composable}"
            + (f" (refused: {sorted(refused)})" if refused else "")
        )


@check(
    "planning.act",
    clause="A model declaring the planning capability returns from plan(obs) actions "
    "[B, A] inside [low, high] (or [B] valid indices), finite.",
    levels=("should", "must", "must"),
    code="WFC901",
    cost=Cost.EXPENSIVE,
    capability=Capability.PLANNING,
    example="""
action = model.plan(obs, eval_mode=True)        # [B, action_dim] in [-1, 1]
""",
)
def planning_act(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract
    if not hasattr(model, "plan"):
        raise CheckFailed("declares the planning capability but has no plan(obs)")

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        with torch.no_grad():
            action = ctx.call("plan(obs)", model.plan, inputs["obs"])
        b = batch_size(inputs)
        validated(lambda: contract.validate_action(action, (b,), "plan(obs)"))
        if contract.action.kind == "continuous":
            low, high = float(contract.action.low), float(contract.action.high)
            if bool((action < low - 1e-6).any()) or bool((action > high + 1e-6).any()):
                raise CheckFailed(
                    f"plan(obs): expected actions in [{low}, {high}], found values in "
                    f"[{float(action.min()):.4g}, {float(action.max()):.4g}]"
                )

    ctx.property(prop)


@check(
    "planning.policy",
    clause="A model declaring the policy capability acts with act(obs) -> (actions [B, A] inside "
    "[low, high] or [B] valid indices, carry), finite; the carry feeds the next call.",
    levels=("should", "must", "must"),
    code="WFC902",
    cost=Cost.MEDIUM,
    capability=Capability.POLICY,
    example="""
action, carry = model.act(obs)                     # [B, action_dim]
action, carry = model.act(obs, carry)
""",
)
def planning_policy(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract
    act = getattr(model, "act", None)
    if not callable(act) or getattr(model, "can_act", True) is False:
        raise NotExercised("declares the policy capability but exposes no act(obs) to call")

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        b = batch_size(inputs)
        carry = None
        for step in range(2):
            with torch.no_grad():
                out = ctx.call("act(obs, carry)", act, inputs["obs"], carry)
            if not isinstance(out, tuple) or len(out) != 2:
                raise CheckFailed(f"act(obs, carry): expected (action, carry), found {out!r}")
            action, carry = out
            validated(lambda: contract.validate_action(action, (b,), f"act step {step}"))  # noqa: B023
            within_bounds(contract, action, "act(obs)")

    ctx.property(prop)


@check(
    "planning.value",
    clause="A model declaring the value capability estimates value(state) -> [B] finite floats "
    "(or a ModelOutput / dict with a 'value' prediction from decode).",
    levels=("should", "must", "must"),
    code="WFC903",
    cost=Cost.CHEAP,
    capability=Capability.VALUE,
    example="""
v = model.value(model.encode(obs))                 # [B]
""",
)
def planning_value(ctx: CheckContext) -> None:
    model = ctx.model()
    fn = getattr(model, "value", None)
    if not callable(fn):
        raise NotExercised("declares the value capability but exposes no value(state) to call")

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        b = batch_size(inputs)
        with torch.no_grad():
            state = as_state(ctx.call("encode(obs)", model.encode, inputs["obs"]), "encode")
            value = ctx.call("value(state)", fn, state)
        if isinstance(value, dict) or hasattr(value, "predictions"):
            value = dict(getattr(value, "predictions", value)).get("value")
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (b,):
            shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckFailed(f"value(state): expected a [B] = [{b}] tensor, found {shape}")
        if not value.is_floating_point() or not bool(value.isfinite().all()):
            raise CheckFailed("value(state): expected finite floating values")

    ctx.property(prop)
