"""Negative-input checks (``negative.*``): invalid inputs generated as data
(:mod:`worldflux.conformance.variants`); each must raise a
:class:`~worldflux.core.exceptions.ContractViolation` whose message names the tensor."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from worldflux.conformance.checks.common import as_batch, batch_size
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
from worldflux.conformance.registry import check
from worldflux.conformance.variants import (
    Variant,
    action_variants,
    first_modality,
    obs_dtype_variants,
    obs_rank_variants,
    out_of_bounds,
    replace_obs,
)

from worldflux.core.exceptions import ContractViolation

NEGATIVE = ("should", "must", "must")


def expect_violation(ctx: CheckContext, what: str, name: str, fn: Callable[[], Any]) -> None:
    """``fn()`` must raise a ContractViolation whose message names the tensor ``name``."""
    try:
        with torch.no_grad():
            fn()
    except ContractViolation as error:
        if name not in str(error):
            raise CheckFailed(
                f"{what}: raised a ContractViolation that does not name the tensor {name!r}: "
                f"{error}"
            ) from None
        return
    except Exception as error:
        raise CheckFailed(
            f"{what}: expected a worldflux ContractViolation naming {name!r}, found "
            f"{type(error).__name__}: {str(error)[:200]}"
        ) from None
    raise CheckFailed(
        f"{what}: accepted the invalid input; expected a ContractViolation naming {name!r}"
    )


def _each(
    ctx: CheckContext, call: str, variants: Iterable[Variant], run: Callable[[Any], Any]
) -> None:
    for variant in variants:
        expect_violation(
            ctx,
            f"{call} with {variant.name}",
            variant.names,
            lambda v=variant.value: run(v),  # type: ignore[misc]
        )


@check(
    "negative.obs_rank",
    clause="encode rejects observations of the wrong rank (unbatched, an extra leading dim, an "
    "extra trailing dim) with a ContractViolation naming obs.",
    levels=NEGATIVE,
    code="WFC201",
    example="""
with pytest.raises(ContractViolation, match="obs"):
    model.encode(torch.randn(4, *obs_shape, 1))
""",
)
def negative_obs_rank(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract

    def prop(inputs: dict[str, Any]) -> None:
        _each(ctx, "encode(obs)", obs_rank_variants(contract, inputs["obs"]), model.encode)

    ctx.property(prop)


@check(
    "negative.obs_dtype",
    clause="encode rejects observations of every dtype the contract does not accept (each float "
    "and int width, bool) with a ContractViolation naming obs.",
    levels=NEGATIVE,
    code="WFC202",
    example="""
for dtype in (torch.int64, torch.int32, torch.uint8, torch.bool):
    with pytest.raises(ContractViolation, match="obs"):
        model.encode(torch.zeros(4, *obs_shape, dtype=dtype))
""",
)
def negative_obs_dtype(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract

    def prop(inputs: dict[str, Any]) -> None:
        _each(ctx, "encode(obs)", obs_dtype_variants(contract, inputs["obs"]), model.encode)

    ctx.property(prop)


@check(
    "negative.obs_size",
    clause="encode rejects observations whose feature size differs from the contract with a "
    "ContractViolation naming obs.",
    levels=NEGATIVE,
    code="WFC203",
    example="""
with pytest.raises(ContractViolation, match="obs"):
    model.encode(torch.randn(4, obs_dim + 1))
""",
)
def negative_obs_size(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract
    key = "obs" if contract.single_modality else sorted(contract.observation)[0]
    if not contract.observation[key].shape:
        raise CheckSkipped("n/a: observations are scalars per sample")

    def prop(inputs: dict[str, Any]) -> None:
        _, _, tensor = first_modality(contract, inputs["obs"])
        bigger = replace_obs(contract, inputs["obs"], torch.cat([tensor, tensor[..., :1]], -1))
        smaller = replace_obs(contract, inputs["obs"], tensor[..., :-1])
        # with one feature, "one missing" is a zero-width [B, 0]: still a size to reject
        variants = [
            Variant("one extra feature", bigger, "obs"),
            Variant("one feature missing", smaller, "obs"),
        ]
        _each(ctx, "encode(obs)", variants, model.encode)

    ctx.property(prop)


@check(
    "negative.action",
    clause="transition and rollout reject invalid actions with a ContractViolation naming the "
    "action: discrete as float / int32 / one-hot, negative or >= n; continuous of the wrong "
    "size, an integer or bool dtype, or unbatched.",
    levels=NEGATIVE,
    code="WFC204",
    example="""
with pytest.raises(ContractViolation, match="action"):
    model.transition(state, torch.full((4,), action_dim))      # discrete: index == action_dim
""",
)
def negative_action(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract

    def prop(inputs: dict[str, Any]) -> None:
        with torch.no_grad():
            state = as_state(ctx.call("encode(obs)", model.encode, inputs["obs"]), "encode")
        _each(
            ctx,
            "transition(state, action)",
            action_variants(contract, inputs["action"]),
            lambda bad: model.transition(state, bad),
        )
        actions = inputs["actions"]
        bad = actions.float() + 0.5 if contract.action.kind == "discrete" else actions[..., :-1]
        if contract.action.kind == "continuous" and actions.shape[-1] == 1:
            bad = torch.cat([actions, actions], dim=-1)
        expect_violation(
            ctx, "rollout(state, invalid actions)", "action", lambda: model.rollout(state, bad)
        )

    ctx.property(prop)


@check(
    "negative.action_bounds",
    clause="continuous actions outside [low, high] either raise a ContractViolation naming the "
    "action or give finite, contract-shaped outputs (never NaN, never a crash).",
    levels=NEGATIVE,
    code="WFC205",
    example="""
state = model.transition(model.encode(obs), torch.full((4, action_dim), 3.0))
assert all(v.isfinite().all() for v in state.values())
""",
)
def negative_action_bounds(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract
    if contract.action.kind != "continuous":
        raise CheckSkipped("n/a: discrete actions")

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        bad = out_of_bounds(contract, inputs["action"])
        with torch.no_grad():
            state = as_state(ctx.call("encode(obs)", model.encode, inputs["obs"]), "encode")
            try:
                nxt = as_state(model.transition(state, bad), "transition")
            except ContractViolation as error:
                if "action" not in str(error):
                    raise CheckFailed(
                        f"transition(out-of-bounds action): the ContractViolation does not name "
                        f"the action: {error}"
                    ) from None
                return
            except Exception as error:
                raise CheckFailed(
                    "transition(out-of-bounds action) raised "
                    f"{type(error).__name__}: {str(error)[:200]}; expected finite outputs or a "
                    "ContractViolation naming the action"
                ) from None
            b = batch_size(inputs)
            try:
                contract.validate_state(nxt, (b,), "transition(state, out-of-bounds action)")
                preds = predictions_of(ctx.call("decode", model.decode, nxt), "decode")
                ctx.decode_contract().validate_predictions(
                    preds, (b,), "decode after out-of-bounds action"
                )
            except ContractViolation as error:
                raise CheckFailed(error.message) from None

    ctx.property(prop)


@check(
    "negative.empty_batch",
    clause="A batch of zero samples (B = 0) gets what io_contract.empty_batch declares: 'error' "
    "(default): encode, transition, rollout and loss raise a ContractViolation naming the "
    "tensor; 'empty': they return correctly shaped empty outputs.",
    levels=NEGATIVE,
    code="WFC206",
    example="""
with pytest.raises(ContractViolation, match="obs"):      # empty_batch: error (the default)
    model.encode(torch.zeros(0, *obs_shape))
""",
)
def negative_empty_batch(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.contract

    def empty(tree: Any) -> Any:
        if isinstance(tree, torch.Tensor):
            return tree[:0]
        if isinstance(tree, dict):
            return {k: empty(v) for k, v in tree.items()}
        return tree

    def prop(inputs: dict[str, Any]) -> None:
        obs, action, actions = (
            empty(inputs["obs"]),
            empty(inputs["action"]),
            empty(inputs["actions"]),
        )
        batch = as_batch(empty(inputs["batch"]))
        if contract.empty_batch == "error":
            expect_violation(ctx, "encode(obs with B = 0)", "obs", lambda: model.encode(obs))
            expect_violation(ctx, "loss(batch with B = 0)", "batch", lambda: model.loss(batch))
            with torch.no_grad():
                state = as_state(ctx.call("encode(obs)", model.encode, inputs["obs"]), "encode")
            none = {k: v[:0] for k, v in state.items()}
            expect_violation(
                ctx,
                "transition(state with B = 0)",
                "action",
                lambda: model.transition(none, action),
            )
            return
        with torch.no_grad():
            state = as_state(ctx.call("encode(obs with B = 0)", model.encode, obs), "encode")
            contract_check(ctx, lambda: contract.validate_state(state, (0,), "encode(B = 0)"))
            nxt = as_state(ctx.call("transition", model.transition, state, action), "transition")
            contract_check(ctx, lambda: contract.validate_state(nxt, (0,), "transition(B = 0)"))
            traj = as_trajectory(ctx.call("rollout", model.rollout, state, actions), "rollout")
            h = int(actions.shape[1])
            contract_check(
                ctx, lambda: contract.validate_state(traj.states, (0, h + 1), "rollout(B = 0)")
            )
        as_loss(ctx.call("loss(batch with B = 0)", model.loss, batch), "loss")

    ctx.property(prop)


def contract_check(ctx: CheckContext, fn: Callable[[], None]) -> None:
    """A contract validation whose violation is a CheckFailed."""
    try:
        fn()
    except ContractViolation as error:
        raise CheckFailed(error.message) from None
