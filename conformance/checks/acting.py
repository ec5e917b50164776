"""Behaviour checks: a model's declared behaviour (``model.behaviour``, the spec's ``behaviour``)
acts inside the action space, is reproducible in eval mode, and (when it learns) trains without
sending gradients into the world model."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from worldflux.conformance.checks.common import as_batch, batch_size, validated, within_bounds
from worldflux.conformance.context import (
    CheckContext,
    CheckFailed,
    NotExercised,
    as_loss,
    seeded,
    set_mode,
    tensors_equal,
)
from worldflux.conformance.registry import Cost, check

SHOULD_MUST = ("should", "must", "must")


def _behaviour(model: Any) -> Any:
    behaviour = getattr(model, "behaviour", None)
    if behaviour is None or not callable(getattr(behaviour, "act", None)):
        raise NotExercised("the model declares no behaviour (model.behaviour)")
    return behaviour


def _act(ctx: CheckContext, model: Any, inputs: dict[str, Any], carry: Any, step: int) -> Any:
    """One ``behaviour.act`` call; goal behaviours get the batch's other observations as goals
    (``obs`` rolled by one sample, so each goal differs from its start)."""
    behaviour = model.behaviour
    obs = inputs["obs"]
    goal = None
    if getattr(behaviour, "needs_goal", False):
        goal = (
            {k: v.roll(1, 0) for k, v in obs.items()} if isinstance(obs, dict) else obs.roll(1, 0)
        )
    with torch.no_grad():
        out = ctx.call(
            "behaviour.act(model, obs, carry)",
            behaviour.act,
            model,
            obs,
            carry,
            is_first=step == 0,
            eval_mode=True,
            goal=goal,
        )
    if not isinstance(out, tuple) or len(out) != 2:
        raise CheckFailed(f"behaviour.act: expected (action, carry), found {type(out).__name__}")
    return out


def _check_action(ctx: CheckContext, action: Any, b: int, what: str) -> None:
    contract = ctx.contract
    validated(lambda: contract.validate_action(action, (b,), what))
    if not isinstance(action, Tensor) or not bool(torch.isfinite(action.float()).all()):
        raise CheckFailed(f"{what}: expected finite actions")
    within_bounds(contract, action, what)


@check(
    "planning.behaviour_acts",
    clause="A declared behaviour acts: behaviour.act(model, obs, carry, is_first=, eval_mode=, "
    "goal=) returns (actions [B, A] inside [low, high] or [B] valid indices, carry), finite, "
    "and the carry feeds the next call (goal behaviours are given goal observations).",
    levels=SHOULD_MUST,
    code="WFC904",
    cost=Cost.EXPENSIVE,
    example="""
action, carry = model.behaviour.act(model, obs, None, is_first=True, eval_mode=True)
action, carry = model.behaviour.act(model, obs, carry, eval_mode=True)
""",
)
def behaviour_acts(ctx: CheckContext) -> None:
    model = ctx.model()
    _behaviour(model)
    set_mode(model, training=False)

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        b, carry = batch_size(inputs), None
        for step in range(2):
            action, carry = _act(ctx, model, inputs, carry, step)
            _check_action(ctx, action, b, f"behaviour.act step {step}")

    ctx.property(prop)


@check(
    "planning.behaviour_deterministic",
    clause="In eval mode a behaviour is reproducible: the same observations, a fresh carry (after "
    "reset()) and the same seed give identical actions (planners and stochastic encoders draw "
    "only from the seeded global generator).",
    levels=SHOULD_MUST,
    code="WFC905",
    cost=Cost.EXPENSIVE,
    example="""
torch.manual_seed(0); a1, _ = model.behaviour.act(model, obs, None, is_first=True, eval_mode=True)
torch.manual_seed(0); a2, _ = model.behaviour.act(model, obs, None, is_first=True, eval_mode=True)
assert torch.equal(a1, a2)
""",
)
def behaviour_deterministic(ctx: CheckContext) -> None:
    model = ctx.model()
    behaviour = _behaviour(model)
    set_mode(model, training=False)

    def fresh(seed: int, inputs: dict[str, Any]) -> Any:
        behaviour.reset()
        seeded(seed)
        action, _ = _act(ctx, model, inputs, None, 0)
        return action

    def prop(inputs: dict[str, Any]) -> None:
        first, again = fresh(inputs["seed"], inputs), fresh(inputs["seed"], inputs)
        found = tensors_equal(first, again, path="action")
        if found:
            raise CheckFailed(f"eval-mode actions differ under the same seed: {found}")

    ctx.property(prop)


@check(
    "planning.behaviour_gradient_isolation",
    clause="A learning behaviour's loss (behaviour.loss(model, batch)) is a finite scalar that "
    "gives gradient to the behaviour's own parameters and none (None or exactly zero) to the "
    "world model's.",
    levels=SHOULD_MUST,
    code="WFC906",
    cost=Cost.EXPENSIVE,
    example="""
out = model.behaviour.loss(model, batch); out.loss.backward()
assert all(p.grad is None or not p.grad.any() for p in world_model_params)
""",
)
def behaviour_gradient_isolation(ctx: CheckContext) -> None:
    model = ctx.model()
    behaviour = _behaviour(model)
    if not getattr(behaviour, "learns", False):
        raise NotExercised(f"behaviour {type(behaviour).__name__} does not learn")
    own = {id(p) for p in behaviour.parameters()}
    world = [(n, p) for n, p in model.named_parameters() if id(p) not in own and p.requires_grad]
    trainable = [p for p in behaviour.parameters() if p.requires_grad]
    set_mode(model, training=True)

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        model.zero_grad(set_to_none=True)
        out = as_loss(
            ctx.call("behaviour.loss", behaviour.loss, model, as_batch(inputs["batch"])),
            "behaviour.loss",
        )
        if out.loss.dim() != 0 or not bool(torch.isfinite(out.loss)):
            raise CheckFailed(f"behaviour.loss: expected a finite scalar, found {out.loss}")
        ctx.call("behaviour.loss(...).backward()", out.loss.backward)
        leaked = [n for n, p in world if p.grad is not None and bool(p.grad.ne(0).any())]
        if leaked:
            raise CheckFailed(
                f"behaviour.loss sends gradient into the world model: {leaked[:5]}"
                + (f" and {len(leaked) - 5} more" if len(leaked) > 5 else "")
            )
        if not any(p.grad is not None and bool(p.grad.ne(0).any()) for p in trainable):
            raise CheckFailed("behaviour.loss gives no gradient to the behaviour's parameters")

    ctx.property(prop)
