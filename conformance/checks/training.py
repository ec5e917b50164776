"""Training-related checks: no input mutation, gradient flow (over declared objectives),
learnability (with the model's own optimisers when declared) and save/load after training."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from worldflux.conformance.checks.common import NA_MUST, as_batch, check_scalar, encode_state, same
from worldflux.conformance.context import (
    CheckContext,
    CheckFailed,
    as_loss,
    as_trajectory,
    seeded,
    set_mode,
    tensors_equal,
)
from worldflux.conformance.registry import Cost, check
from worldflux.conformance.strategies import Case, clone_tree


# -- numeric -----------------------------------------------------------------------------------
@check(
    "numeric.no_mutation",
    clause="encode, transition, decode, rollout and loss never modify their input tensors "
    "(observations, states, actions, batches).",
    levels=NA_MUST,
    code="WFC601",
    cost=Cost.MEDIUM,
    example="""
before = obs.clone(); model.encode(obs); assert torch.equal(obs, before)
""",
)
def numeric_no_mutation(ctx: CheckContext) -> None:
    model = ctx.model()

    def prop(inputs: dict[str, Any]) -> None:
        seeded(inputs["seed"])
        kept = clone_tree(inputs)
        state = encode_state(ctx, model, inputs["obs"])
        same(tensors_equal(inputs["obs"], kept["obs"], path="obs"), "encode modified its input")
        kept_state = clone_tree(dict(state))
        ctx.call("transition", model.transition, state, inputs["action"])
        same(
            tensors_equal(inputs["action"], kept["action"], path="action"),
            "transition modified its input",
        )
        ctx.call("decode", model.decode, state)
        ctx.call("rollout", model.rollout, state, inputs["actions"])
        same(
            tensors_equal(dict(state), kept_state, path="state"),
            "transition/decode/rollout modified the input state",
        )
        same(
            tensors_equal(inputs["actions"], kept["actions"], path="actions"),
            "rollout modified its input",
        )
        ctx.call("loss", model.loss, as_batch(inputs["batch"]))
        same(tensors_equal(inputs["batch"], kept["batch"], path="batch"), "loss modified its input")

    ctx.property(prop)


def _trainable(model: Any) -> list[tuple[str, Tensor]]:
    named = getattr(model, "named_parameters", None)
    if named is None:
        raise CheckFailed("the target has no named_parameters(); expected an nn.Module")
    return [(n, p) for n, p in named() if p.requires_grad]


@check(
    "numeric.grad_flow",
    clause="loss(batch).loss.backward() gives every trainable (requires_grad) parameter a "
    "finite gradient; a model declaring objectives() (several losses) must reach every "
    "trainable parameter from their union.",
    levels=NA_MUST,
    code="WFC602",
    cost=Cost.EXPENSIVE,
    example="""
model.loss(batch).loss.backward()
assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
""",
)
def numeric_grad_flow(ctx: CheckContext) -> None:
    model = ctx.model()
    set_mode(model, True)
    params = _trainable(model)
    if not params:
        raise CheckFailed("the model has no trainable parameters")
    objectives = _objectives(ctx, model)

    def prop(inputs: dict[str, Any]) -> None:
        reached: set[str] = set()
        bad: list[str] = []
        for name, fn in objectives.items():
            for _, p in params:
                p.grad = None
            seeded(inputs["seed"])
            out = ctx.call(f"objective {name!r}", fn, as_batch(inputs["batch"]))
            loss = check_scalar(
                as_loss(out, name).loss if not isinstance(out, Tensor) else out, name
            )
            ctx.call(f"objective {name!r}: backward()", loss.backward)
            for n, p in params:
                if p.grad is not None:
                    reached.add(n)
                    if not bool(p.grad.isfinite().all()):
                        bad.append(n)
        missing = [n for n, _ in params if n not in reached]
        if missing:
            raise CheckFailed(
                f"{len(missing)}/{len(params)} trainable parameters get no gradient from "
                # mutation: equivalent[8 -> 9]: how many names the message lists
                f"{' or '.join(objectives)}: {missing[:8]}"
            )
        if bad:
            # mutation: equivalent[8 -> 9]: how many names the message lists
            raise CheckFailed(f"non-finite gradients in {sorted(set(bad))[:8]}")

    ctx.property(prop)


def _objectives(ctx: CheckContext, model: Any) -> dict[str, Any]:
    """``{"loss": model.loss}``, or the model's declared ``objectives()``: name -> a function
    ``fn(batch)`` returning a LossOutput or a 0-d tensor (e.g. a world-model loss and a policy
    loss trained by its own optimiser); gradients must reach every parameter from their union."""
    declared = getattr(model, "objectives", None)
    if not callable(declared):
        return {"loss": model.loss}
    found = ctx.call("objectives()", declared)
    if not isinstance(found, dict) or not found or not all(callable(f) for f in found.values()):
        raise CheckFailed("objectives() must return a non-empty dict of name -> fn(batch)")
    return dict(found)


@check(
    "numeric.learnability",
    clause="Overfitting one fixed batch for a few steps lowers the loss (evaluated with the "
    "same seed before and after; a learned behaviour's own terms, whose targets move with its "
    "policy, are left out), with Adam (lr 1e-3), or with the model's own optimizers() "
    "stepping each declared objective.",
    levels=NA_MUST,
    code="WFC603",
    cost=Cost.EXPENSIVE,
    example="""
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for _ in range(15): opt.zero_grad(); model.loss(batch).loss.backward(); opt.step()
""",
)
def numeric_learnability(ctx: CheckContext) -> None:
    model = ctx.model()
    set_mode(model, True)
    params = [p for _, p in _trainable(model)]
    if not params:
        raise CheckFailed("the model has no trainable parameters")
    if ctx.replay is not None:
        inputs = ctx.replay
    else:
        seq = max(ctx.seq_lens())  # the longest training sequence
        case = Case(min(4, ctx.options.profile.max_batch), 1, seq, ctx.options.seed, 1.0, "uniform")
        inputs = case.materialize(ctx.contract)
    ctx.record(inputs)
    batch, seed = as_batch(inputs["batch"]), int(inputs["seed"])

    behaviour = getattr(model, "behaviour", None)
    moving = tuple(getattr(behaviour, "loss_terms", ())) if getattr(behaviour, "learns", 0) else ()

    def evaluate() -> float:
        seeded(seed)
        with torch.no_grad():
            out = as_loss(ctx.call("loss", model.loss, batch), "loss")
        total = check_scalar(out.loss, "loss(batch).loss")
        # a learned behaviour's policy/value terms chase targets that move with the policy
        for term in moving:
            total = total - out.components[term]
        return float(total)

    initial = evaluate()
    plan = _optimisation_plan(ctx, model, params)
    steps = ctx.options.profile.learn_steps
    for _ in range(steps):
        for name, fn, optimizer in plan:
            optimizer.zero_grad()
            seeded(seed)
            out = ctx.call(f"objective {name!r}", fn, batch)
            loss = as_loss(out, name).loss if not isinstance(out, Tensor) else out
            ctx.call(f"objective {name!r}: backward()", check_scalar(loss, name).backward)
            optimizer.step()
    final = evaluate()
    if not final < initial - 1e-6 * abs(initial):
        raise CheckFailed(
            f"loss did not drop while overfitting one batch for {steps} Adam steps: "
            f"{initial:.6g} -> {final:.6g}"
        )


def _optimisation_plan(ctx: CheckContext, model: Any, params: list[Any]) -> list[Any]:
    """(objective name, fn, optimizer) triples: the model's own ``optimizers()`` (name ->
    optimizer, one per declared objective, or ``{"loss": opt}``) when it has them, else Adam
    (lr 1e-3) on every trainable parameter for ``loss``."""
    objectives = _objectives(ctx, model)
    own = getattr(model, "optimizers", None)
    if not callable(own):
        optimizer = torch.optim.Adam(params, lr=1e-3)
        return [(name, fn, optimizer) for name, fn in objectives.items()]
    found = ctx.call("optimizers()", own)
    if not isinstance(found, dict) or set(found) != set(objectives):
        raise CheckFailed(
            f"optimizers() must return one optimizer per objective {sorted(objectives)}, "
            f"found {sorted(found) if isinstance(found, dict) else type(found).__name__}"
        )
    return [(name, objectives[name], found[name]) for name in objectives]


# -- serde -------------------------------------------------------------------------------------
def _reload(ctx: CheckContext, model: Any) -> Any:
    cls = type(model)
    if hasattr(model, "save_pretrained") and hasattr(cls, "from_pretrained"):
        with tempfile.TemporaryDirectory() as tmp:
            ctx.call("save_pretrained", model.save_pretrained, Path(tmp) / "ckpt")
            return ctx.call("from_pretrained", cls.from_pretrained, Path(tmp) / "ckpt")
    fresh = ctx.call("building the model", ctx.build, ctx.options.seed + 1)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    ctx.call("load_state_dict", fresh.load_state_dict, torch.load(buffer))
    return fresh


def _train_and_perturb(ctx: CheckContext, model: Any) -> None:
    """One Adam step on a typical batch, then every persistent floating buffer scaled by
    ``1 + 0.01 e``:
    the state that is saved is no longer the state a fresh build starts from."""
    minimal, typical = ctx.explicit_cases()
    inputs = typical.materialize(ctx.contract)
    set_mode(model, True)
    params = [p for _, p in _trainable(model)] if hasattr(model, "named_parameters") else []
    if params:
        optimizer = torch.optim.Adam(params, lr=1e-2)
        seeded(inputs["seed"])
        out = as_loss(ctx.call("loss", model.loss, as_batch(inputs["batch"])), "loss")
        ctx.call("loss.backward()", check_scalar(out.loss, "loss").backward)
        optimizer.step()
    gen = torch.Generator().manual_seed(ctx.options.seed)
    saved = set(model.state_dict()) if hasattr(model, "state_dict") else set()
    with torch.no_grad():  # persistent buffers only: non-persistent ones are constants
        for name, buf in getattr(model, "named_buffers", lambda: iter(()))():
            if name in saved and buf.is_floating_point() and buf.numel():
                noise = torch.randn(buf.shape, generator=gen, dtype=torch.float32)
                buf.mul_(1 + 0.01 * noise.to(buf.dtype))
    del minimal


@check(
    "serde.roundtrip",
    clause="After an optimiser step and a perturbation of every floating buffer, saving and "
    "loading (save_pretrained / from_pretrained, or state_dict into a fresh build) gives "
    "identical outputs for the same inputs and seed.",
    levels=("n/a", "should", "must"),
    code="WFC701",
    cost=Cost.MEDIUM,
    example="""
train_one_step(model); model.save_pretrained("ckpt"); again = type(model).from_pretrained("ckpt")
torch.manual_seed(0); a = model.loss(batch).loss; torch.manual_seed(0); b = again.loss(batch).loss
assert torch.equal(a, b)
""",
)
def serde_roundtrip(ctx: CheckContext) -> None:
    model = ctx.model()
    _train_and_perturb(ctx, model)
    loaded = _reload(ctx, model)
    for m in (model, loaded):
        set_mode(m, False)

    def run(m: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        seeded(inputs["seed"])
        with torch.no_grad():
            state = encode_state(ctx, m, inputs["obs"])
            traj = as_trajectory(ctx.call("rollout", m.rollout, state, inputs["actions"]), "r")
            out = as_loss(ctx.call("loss", m.loss, as_batch(inputs["batch"])), "loss")
        return {
            "encode": dict(state),
            "rollout": {**dict(traj.states), "rewards": traj.rewards},
            "loss": out.loss,
        }

    def prop(inputs: dict[str, Any]) -> None:
        same(
            tensors_equal(run(model, inputs), run(loaded, inputs), path="outputs"),
            "outputs differ after training, a save/load round trip",
        )

    ctx.property(prop)
