"""I/O contract checks (``io.*``).

Every ``io`` check runs the target on contract-generated inputs and compares what comes back with
the bound contract: keys, shapes (after the leading ``[B]``, ``[B, H+1]`` or ``[B, H]``),
dtypes and finiteness. Negative inputs live in :mod:`.negative`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor
from worldflux.conformance.checks.common import (
    MUST,
    as_batch,
    batch_size,
    check_scalar,
    encode_state,
    validated,
)
from worldflux.conformance.context import (
    CheckContext,
    CheckFailed,
    CheckSkipped,
    as_loss,
    as_state,
    as_trajectory,
    predictions_of,
    seeded,
)
from worldflux.conformance.registry import Cost, check

from worldflux.core.spec import Capability


@check(
    "io.encode",
    clause="encode(obs [B, *obs_shape]) returns a State with every declared state tensor "
    "[B, *shape], of its declared dtype, with finite values.",
    levels=MUST,
    code="WFC101",
    example="""
state = model.encode(torch.randn(4, *obs_shape))
assert state["latent"].shape == (4, latent_dim) and state["latent"].isfinite().all()
""",
)
def io_encode(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        with torch.no_grad():
            state = encode_state(ctx, model, inputs["obs"])
        validated(lambda: contract.validate_state(state, (batch_size(inputs),), "encode(obs)"))

    ctx.property(prop)


@check(
    "io.transition",
    clause="transition(state, action [B, A] or [B] int64) returns a State with every declared "
    "state tensor [B, *shape], finite.",
    levels=MUST,
    code="WFC102",
    example="""
next_state = model.transition(model.encode(obs), torch.rand(4, action_dim) * 2 - 1)
""",
)
def io_transition(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        with torch.no_grad():
            state = encode_state(ctx, model, inputs["obs"])
            out = ctx.call("transition(state, action)", model.transition, state, inputs["action"])
        nxt = as_state(out, "transition(state, action)")
        b = batch_size(inputs)
        validated(lambda: contract.validate_state(nxt, (b,), "transition(state, action)"))

    ctx.property(prop)


@check(
    "io.decode",
    clause="decode(state) returns every declared prediction [B, *shape] (e.g. reward [B], "
    "continue [B]), of its declared dtype, finite; action-conditioned predictions (hint "
    "action_conditioned) come from predict(state, action) instead.",
    levels=MUST,
    code="WFC103",
    example="""
predictions = model.decode(model.encode(obs)).predictions
assert predictions["reward"].shape == (4,)
""",
)
def io_decode(ctx: CheckContext) -> None:
    model, contract, full = ctx.model(), ctx.decode_contract(), ctx.contract
    conditioned = ctx.action_conditioned()

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        with torch.no_grad():
            state = encode_state(ctx, model, inputs["obs"])
            out = ctx.call("decode(state)", model.decode, state)
            extra = (
                predictions_of(
                    ctx.call("predict(state, action)", model.predict, state, inputs["action"]),
                    "predict(state, action)",
                )
                if conditioned
                else {}
            )
        preds = predictions_of(out, "decode(state)")
        b = batch_size(inputs)
        validated(lambda: contract.validate_predictions(preds, (b,), "decode(state).predictions"))
        for key in sorted(conditioned):
            if key not in extra:
                raise CheckFailed(f"predict(state, action) lacks the prediction {key!r}")
            validated(
                functools.partial(
                    full.predictions[key].validate,
                    f"predict(state, action)[{key!r}]",
                    extra[key],
                    (b,),
                )
            )

    ctx.property(prop)


def _float_tensor(value: Any, what: str, shape: tuple[int, ...]) -> None:
    if not isinstance(value, Tensor):
        raise CheckFailed(f"{what}: expected a Tensor, found {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise CheckFailed(f"{what}: expected shape {list(shape)}, found {list(value.shape)}")
    if not value.is_floating_point():
        raise CheckFailed(f"{what}: expected a floating dtype, found {value.dtype}")
    if not bool(value.isfinite().all()):
        raise CheckFailed(f"{what}: expected finite values, found NaN or inf")


@check(
    "io.rollout.shapes",
    clause="rollout(state, actions [B, H, ...]) returns a Trajectory: states [B, H+1, ...] "
    "(start included), actions [B, H, ...], rewards [B, H], continues [B, H] (may be None "
    "without the continue_pred capability), every declared "
    "prediction [B, H, ...]; all finite.",
    levels=MUST,
    code="WFC104",
    cost=Cost.MEDIUM,
    example="""
traj = model.rollout(model.encode(obs), actions)        # actions [4, 5, action_dim]
assert traj.states["latent"].shape == (4, 6, latent_dim) and traj.rewards.shape == (4, 5)
""",
)
def io_rollout_shapes(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        actions = inputs["actions"]
        b, h = int(actions.shape[0]), int(actions.shape[1])
        with torch.no_grad():
            state = encode_state(ctx, model, inputs["obs"])
            out = ctx.call("rollout(state, actions)", model.rollout, state, actions)
        traj = as_trajectory(out, "rollout(state, actions)")
        validated(lambda: contract.validate_state(traj.states, (b, h + 1), "trajectory.states"))
        if tuple(traj.actions.shape) != tuple(actions.shape):
            raise CheckFailed(
                f"trajectory.actions: expected shape {list(actions.shape)}, "
                f"found {list(traj.actions.shape)}"
            )
        _float_tensor(traj.rewards, "trajectory.rewards", (b, h))
        if traj.continues is not None or Capability.CONTINUE_PRED in ctx.capabilities():
            _float_tensor(traj.continues, "trajectory.continues", (b, h))
        validated(
            lambda: contract.validate_predictions(
                traj.predictions, (b, h), "trajectory.predictions"
            )
        )

    ctx.property(prop)


@check(
    "io.loss",
    clause="loss(batch [B, T, ...]) returns a LossOutput whose loss is a finite scalar and whose "
    "components are exactly the declared loss_components, each a finite scalar.",
    levels=MUST,
    code="WFC105",
    cost=Cost.MEDIUM,
    example="""
out = model.loss(batch)          # batch: obs [B, T, *obs_shape], actions [B, T, A], ...
assert out.loss.dim() == 0 and set(out.components) == set(contract.loss_components)
""",
)
def io_loss(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        out = as_loss(ctx.call("loss(batch)", model.loss, as_batch(inputs["batch"])), "loss")
        check_scalar(out.loss, "loss(batch).loss")
        validated(lambda: contract.validate_loss(out.components, "loss(batch).components"))
        for name, value in out.components.items():
            check_scalar(value, f"loss(batch).components[{name!r}]")

    ctx.property(prop)


_CAPABILITY_KEYS = {
    Capability.REWARD_PRED: "reward",
    Capability.CONTINUE_PRED: "continue",
    Capability.OBS_DECODER: "obs",
}


def _capability_predictions(ctx: CheckContext) -> dict[str, list[str]]:
    """Declared prediction capability -> the prediction keys it promises. ``obs_decoder``
    promises ``obs``, or ``obs_<modality>`` per modality of a dict observation."""
    out: dict[str, list[str]] = {}
    for cap, key in _CAPABILITY_KEYS.items():
        if cap not in ctx.capabilities():
            continue
        keys = [key]
        if cap is Capability.OBS_DECODER and not ctx.contract.single_modality:
            keys = [f"obs_{m}" for m in sorted(ctx.contract.observation)]
        out[cap.value] = keys
    return out


@check(
    "io.capability_outputs",
    clause="a declared prediction capability (reward_pred, continue_pred, obs_decoder) has its "
    "prediction (reward, continue, obs; obs_<modality> per modality of a dict observation) in "
    "the contract and in decode's output.",
    levels=MUST,
    code="WFC106",
    example="""
# capabilities: [reward_pred]  ->  io_contract.predictions has `reward`, decode returns it
assert "reward" in model.decode(state).predictions
""",
)
def io_capability_outputs(ctx: CheckContext) -> None:
    wanted = [(cap, key) for cap, keys in _capability_predictions(ctx).items() for key in keys]
    if not wanted:
        raise CheckSkipped("n/a: no prediction capability declared")
    contract, model = ctx.contract, ctx.model()
    missing = [f"{c} -> {k}" for c, k in wanted if k not in contract.predictions]
    if missing:
        raise CheckFailed(f"io_contract.predictions lacks the prediction of {missing}")

    def prop(inputs: dict[str, Any]) -> None:
        with torch.no_grad():
            state = encode_state(ctx, model, inputs["obs"])
            preds = predictions_of(ctx.call("decode(state)", model.decode, state), "decode")
        skip = ctx.action_conditioned()
        absent = [f"{c} -> {k}" for c, k in wanted if k not in preds and k not in skip]
        if absent:
            raise CheckFailed(f"decode(state) does not return the prediction of {absent}")

    ctx.property(prop)
