"""Clauses about how outputs relate to inputs and to each other: batch equivalence, eval-mode
determinism, strided inputs, aliasing, and side effects of ``loss()``."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from worldflux.conformance.checks.common import as_batch, batch_size, sample
from worldflux.conformance.context import (
    CheckContext,
    CheckFailed,
    CheckSkipped,
    as_loss,
    as_state,
    as_trajectory,
    predictions_of,
    seeded,
    set_mode,
    tensors_equal,
)
from worldflux.conformance.registry import Cost, check
from worldflux.conformance.strategies import clone_tree
from worldflux.conformance.variants import noncontiguous

ATOL, RTOL = 1e-5, 1e-4
SHOULD_MUST = ("should", "must", "must")
NA_MUST = ("n/a", "must", "must")


def _same(found: str, what: str) -> None:
    if found:
        raise CheckFailed(f"{what}: {found}")


def eval_outputs(
    ctx: CheckContext, model: Any, inputs: dict[str, Any], seed: int
) -> dict[str, Mapping[str, Tensor | None]]:
    """encode / transition / decode / rollout outputs (no grad, global RNG seeded by ``seed``)."""
    seeded(seed)
    with torch.no_grad():
        state = as_state(ctx.call("encode(obs)", model.encode, inputs["obs"]), "encode")
        nxt = as_state(
            ctx.call("transition(state, action)", model.transition, state, inputs["action"]),
            "transition",
        )
        preds = predictions_of(ctx.call("decode(state)", model.decode, nxt), "decode")
        traj = as_trajectory(
            ctx.call("rollout(state, actions)", model.rollout, state, inputs["actions"]),
            "rollout",
        )
    return {
        "encode": dict(state),
        "transition": dict(nxt),
        "decode": preds,
        "rollout": {
            **{f"states[{k!r}]": v for k, v in traj.states.items()},
            "rewards": traj.rewards,
            "continues": traj.continues,
            **{f"predictions[{k!r}]": v for k, v in traj.predictions.items()},
        },
    }


def _deterministic_eval(ctx: CheckContext) -> None:
    if ctx.hints().get("stochastic_eval"):
        raise CheckSkipped("n/a: the model declares stochastic_eval (it samples in eval mode)")


@check(
    "batch.equivalence",
    clause="In eval mode, sample i of a batch's encode / transition / decode / rollout outputs "
    "equals the output for sample i alone (B = 1), at non-minimal B.",
    levels=SHOULD_MUST,
    code="WFC403",
    cost=Cost.MEDIUM,
    example="""
model.eval(); full = model.encode(obs)["latent"]          # obs [4, *obs_shape]
assert torch.allclose(full[2:3], model.encode(obs[2:3])["latent"], atol=1e-5)
""",
)
def batch_equivalence(ctx: CheckContext) -> None:
    _deterministic_eval(ctx)
    model = ctx.model()
    set_mode(model, False)

    def prop(inputs: dict[str, Any]) -> None:
        i = inputs["i"]
        full = eval_outputs(ctx, model, inputs, inputs["seed"])
        alone = {k: sample(inputs[k], i) for k in ("obs", "action", "actions")}
        single = eval_outputs(ctx, model, alone, inputs["seed"])
        _same(
            tensors_equal(sample(full, i), single, atol=ATOL, rtol=RTOL, path="output"),
            f"sample {i} of a batch of {batch_size(inputs)} differs from the same sample run alone",
        )

    ctx.property(prop, min_batch=2)


@check(
    "determinism.eval",
    clause="In eval mode, encode / transition / decode / rollout give the same outputs under "
    "different global RNG states (no sampling in eval mode).",
    levels=SHOULD_MUST,
    code="WFC502",
    cost=Cost.MEDIUM,
    example="""
model.eval(); torch.manual_seed(1); a = model.rollout(s0, actions)
torch.manual_seed(2); b = model.rollout(s0, actions)       # identical to a
""",
)
def determinism_eval(ctx: CheckContext) -> None:
    _deterministic_eval(ctx)
    model = ctx.model()
    set_mode(model, False)

    def prop(inputs: dict[str, Any]) -> None:
        first = eval_outputs(ctx, model, inputs, inputs["seed"])
        second = eval_outputs(ctx, model, inputs, inputs["seed"] + 7919)
        _same(
            tensors_equal(first, second, path="output"),
            "eval-mode outputs depend on the global RNG state",
        )

    ctx.property(prop)


@check(
    "io.strided",
    clause="Non-contiguous (strided, transposed-view) observations, actions, states and batches "
    "give the same outputs as contiguous copies.",
    levels=SHOULD_MUST,
    code="WFC107",
    cost=Cost.MEDIUM,
    example="""
wide = torch.zeros(8, obs_dim); wide[0::2] = obs             # obs [4, obs_dim]
assert torch.allclose(model.encode(wide[0::2])["latent"], model.encode(obs)["latent"])
""",
)
def io_strided(ctx: CheckContext) -> None:
    model = ctx.model()
    set_mode(model, False)

    def prop(inputs: dict[str, Any]) -> None:
        seed = inputs["seed"]
        dense = eval_outputs(ctx, model, inputs, seed)
        views = {k: noncontiguous(inputs[k]) for k in ("obs", "action", "actions")}
        strided = eval_outputs(ctx, model, views, seed)
        _same(
            tensors_equal(dense, strided, atol=ATOL, rtol=RTOL, path="output"),
            "non-contiguous inputs give different outputs from contiguous copies",
        )
        with torch.no_grad():
            state = as_state(ctx.call("encode(obs)", model.encode, inputs["obs"]), "encode")
            seeded(seed)
            a = ctx.call("transition", model.transition, state, inputs["action"])
            seeded(seed)
            b = ctx.call(
                "transition", model.transition, noncontiguous(dict(state)), views["action"]
            )
        _same(
            tensors_equal(dict(as_state(a, "t")), dict(as_state(b, "t")), atol=ATOL, rtol=RTOL),
            "transition of a non-contiguous state differs",
        )
        seeded(seed)
        la = as_loss(ctx.call("loss", model.loss, as_batch(inputs["batch"])), "loss").loss
        seeded(seed)
        batch = as_batch(noncontiguous(inputs["batch"]))
        lb = as_loss(ctx.call("loss", model.loss, batch), "loss").loss
        _same(
            tensors_equal(la.detach(), lb.detach(), atol=ATOL, rtol=RTOL, path="loss"),
            "loss of a non-contiguous batch differs",
        )

    ctx.property(prop)


def _storages(tree: Any, prefix: str = "") -> dict[str, int]:
    """``path -> untyped storage pointer`` of every non-empty tensor of a nested structure."""
    if isinstance(tree, Tensor):
        return {prefix: tree.untyped_storage().data_ptr()} if tree.numel() else {}
    if isinstance(tree, dict):
        out: dict[str, int] = {}
        for k, v in tree.items():
            out.update(_storages(v, f"{prefix}[{k!r}]"))
        return out
    return {}


def _aliases(outputs: dict[str, int], inputs: dict[str, int]) -> list[str]:
    where = {ptr: name for name, ptr in inputs.items()}
    return [
        f"{name} shares storage with {where[ptr]}" for name, ptr in outputs.items() if ptr in where
    ]


@check(
    "numeric.no_alias",
    clause="Outputs never alias inputs (encode vs obs, transition vs state and action, decode "
    "vs state, rollout vs actions) and are not buffers reused across calls: a second call does "
    "not change the first call's outputs.",
    levels=NA_MUST,
    code="WFC604",
    cost=Cost.MEDIUM,
    example="""
s1 = model.encode(obs); kept = s1["latent"].clone(); model.encode(obs2)
assert torch.equal(s1["latent"], kept)             # not overwritten by the second call
""",
)
def numeric_no_alias(ctx: CheckContext) -> None:
    model = ctx.model()
    set_mode(model, False)

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        with torch.no_grad():
            obs, action, actions = inputs["obs"], inputs["action"], inputs["actions"]
            state = as_state(ctx.call("encode(obs)", model.encode, obs), "encode")
            found = _aliases(_storages(dict(state), "encode"), _storages(obs, "obs"))
            nxt = as_state(ctx.call("transition", model.transition, state, action), "transition")
            ins = {**_storages(dict(state), "state"), **_storages(action, "action")}
            found += _aliases(_storages(dict(nxt), "transition"), ins)
            preds = predictions_of(ctx.call("decode", model.decode, nxt), "decode")
            found += _aliases(_storages(preds, "decode"), _storages(dict(nxt), "state"))
            traj = as_trajectory(ctx.call("rollout", model.rollout, state, actions), "rollout")
            found += _aliases(
                {
                    **_storages(dict(traj.states), "trajectory.states"),
                    **_storages(traj.predictions, "trajectory.predictions"),
                },
                {**_storages(dict(state), "state"), **_storages(actions, "actions")},
            )
            if found:
                # mutation: equivalent[4 -> 5]: how many aliases the message lists
                raise CheckFailed("outputs alias inputs: " + "; ".join(found[:4]))
            first = clone_tree(eval_outputs(ctx, model, inputs, inputs["seed"]))
            kept = eval_outputs(ctx, model, inputs, inputs["seed"])
            kept_copy = clone_tree(kept)
            other = {"obs": inputs["obs_alt"], "action": action.flip(0), "actions": actions.flip(0)}
            eval_outputs(ctx, model, other, inputs["seed"] + 1)
        _same(
            tensors_equal(kept, kept_copy, path="output"),
            "a later call overwrote the outputs of an earlier one (a buffer reused across calls)",
        )
        del first

    ctx.property(prop)


def _module_state(model: Any) -> dict[str, Tensor]:
    state_dict = getattr(model, "state_dict", None)
    if state_dict is None:
        raise CheckFailed("the target has no state_dict(); expected an nn.Module")
    return {k: v.detach().clone() for k, v in state_dict().items() if isinstance(v, Tensor)}


@check(
    "numeric.loss_pure",
    clause="loss(batch) changes no parameter or buffer of the module (train and eval mode), "
    "unless the contract declares those side effects (hint loss_side_effects: [names]).",
    levels=NA_MUST,
    code="WFC605",
    cost=Cost.MEDIUM,
    example="""
before = {k: v.clone() for k, v in model.state_dict().items()}
model.loss(batch)
assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
""",
)
def numeric_loss_pure(ctx: CheckContext) -> None:
    model = ctx.model()
    declared = set(ctx.hints().get("loss_side_effects") or ())
    behaviour = getattr(model, "behaviour", None)  # a learned behaviour's declared statistics
    declared |= {f"behaviour.{k}" for k in getattr(behaviour, "loss_side_effects", ())}

    def prop(inputs: dict[str, Any]) -> None:
        for training in (True, False):
            set_mode(model, training)
            before = _module_state(model)
            seeded(inputs["seed"])
            ctx.call("loss(batch)", model.loss, as_batch(inputs["batch"]))
            after = _module_state(model)
            changed = sorted(
                k
                for k in set(before) | set(after)
                if k not in declared
                and (k not in before or k not in after or tensors_equal(before[k], after[k]))
            )
            if changed:
                mode = "train" if training else "eval"
                raise CheckFailed(
                    # mutation: equivalent[6 -> 7]: how many names the message lists
                    f"loss(batch) in {mode} mode changed module state {changed[:6]} "
                    "(declare intended side effects with the loss_side_effects hint)"
                )

    ctx.property(prop)


def _tied_groups(model: Any) -> list[list[str]]:
    """Names of parameters/buffers sharing one storage (tied weights), in groups of >= 2."""
    named = getattr(model, "named_parameters", None)
    if named is None:
        return []
    by_ptr: dict[int, list[str]] = {}
    for name, tensor in named(remove_duplicate=False):
        by_ptr.setdefault(tensor.untyped_storage().data_ptr(), []).append(name)
    return sorted(sorted(names) for names in by_ptr.values() if len(names) > 1)


@check(
    "serde.copyable",
    clause="copy.deepcopy(model) works and the copy gives identical eval outputs; parameters "
    "that share storage (tied weights) in the model still share it in the copy and after a "
    "state_dict round trip into a fresh build.",
    levels=SHOULD_MUST,
    code="WFC702",
    cost=Cost.CHEAP,
    example="""
twin = copy.deepcopy(model)
assert twin.decoder.weight.data_ptr() == twin.encoder.weight.data_ptr()   # still tied
""",
)
def serde_copyable(ctx: CheckContext) -> None:
    original = ctx.build(ctx.options.seed)
    try:
        twin = copy.deepcopy(original)
    except Exception as error:
        raise CheckFailed(
            f"copy.deepcopy(model) raised {type(error).__name__}: {error} (the suite then "
            "rebuilds the model for every check, which is slow; make the adapter copyable)"
        ) from error
    tied = _tied_groups(original)
    if _tied_groups(twin) != tied:
        raise CheckFailed(
            f"tied parameters {tied} are no longer shared after deepcopy: {_tied_groups(twin)}"
        )
    fresh = ctx.call("building the model", ctx.build, ctx.options.seed + 1)
    ctx.call("load_state_dict", fresh.load_state_dict, original.state_dict())
    if _tied_groups(fresh) != tied:
        raise CheckFailed(
            f"tied parameters {tied} are no longer shared after load_state_dict into a fresh "
            f"build: {_tied_groups(fresh)}"
        )
    for model in (original, twin):
        set_mode(model, False)

    def prop(inputs: dict[str, Any]) -> None:
        _same(
            tensors_equal(
                eval_outputs(ctx, original, inputs, inputs["seed"]),
                eval_outputs(ctx, twin, inputs, inputs["seed"]),
                path="output",
            ),
            "a deep copy gives different outputs",
        )

    ctx.property(prop)
