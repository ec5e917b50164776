"""Behavioural checks: batch polymorphism and independence, seeded determinism (rollouts live in
:mod:`.rollout`, training-related checks in :mod:`.training`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from worldflux.conformance.checks.common import (
    ATOL,
    NA_MUST,
    RTOL,
    SHOULD_MUST,
    as_batch,
    batch_size,
    check_scalar,
    encode_state,
    same,
    sample,
    take,
    validated,
)
from worldflux.conformance.context import (
    CheckContext,
    as_loss,
    as_state,
    as_trajectory,
    predictions_of,
    seeded,
    set_mode,
    tensors_equal,
)
from worldflux.conformance.registry import Cost, check


# -- batch -------------------------------------------------------------------------------------
@check(
    "batch.polymorphism",
    clause="encode, transition, decode, rollout and loss accept any batch size B >= 1 "
    "(B = 1 included) and return outputs with that leading B.",
    levels=SHOULD_MUST,
    code="WFC401",
    cost=Cost.MEDIUM,
    example="""
for b in (1, 3):
    assert model.decode(model.encode(obs[:b])).predictions["reward"].shape == (b,)
""",
)
def batch_polymorphism(ctx: CheckContext) -> None:
    model, contract = ctx.model(), ctx.decode_contract()

    def prop(inputs: dict[str, Any]) -> None:
        for b in sorted({1, batch_size(inputs)}):
            seeded(inputs["seed"])
            part = {k: take(inputs[k], b) for k in ("obs", "action", "actions", "batch")}
            with torch.no_grad():
                state = encode_state(ctx, model, part["obs"])
                validated(lambda: contract.validate_state(state, (b,), f"encode(obs[B={b}])"))  # noqa: B023
                nxt = as_state(
                    ctx.call("transition", model.transition, state, part["action"]), "transition"
                )
                validated(lambda: contract.validate_state(nxt, (b,), f"transition[B={b}]"))  # noqa: B023
                preds = predictions_of(ctx.call("decode", model.decode, nxt), "decode")
                validated(lambda: contract.validate_predictions(preds, (b,), f"decode[B={b}]"))  # noqa: B023
                h = int(part["actions"].shape[1])
                traj = as_trajectory(
                    ctx.call("rollout", model.rollout, state, part["actions"]), "rollout"
                )
                validated(
                    lambda: contract.validate_state(traj.states, (b, h + 1), f"rollout[B={b}]")  # noqa: B023
                )
            out = as_loss(ctx.call("loss", model.loss, as_batch(part["batch"])), "loss")
            check_scalar(out.loss, f"loss(batch[B={b}]).loss")

    ctx.property(prop)


@check(
    "batch.independence",
    clause="In eval mode with the same seed, sample i of encode / transition / decode / rollout "
    "outputs does not change when another sample j of the batch changes.",
    levels=NA_MUST,
    code="WFC402",
    cost=Cost.MEDIUM,
    example="""
obs2 = obs.clone(); obs2[1] = torch.randn_like(obs2[1])
torch.manual_seed(0); a = model.encode(obs)["latent"][0]
torch.manual_seed(0); b = model.encode(obs2)["latent"][0]
assert torch.allclose(a, b)
""",
)
def batch_independence(ctx: CheckContext) -> None:
    model = ctx.model()
    set_mode(model, False)

    def outputs(obs: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        seeded(inputs["seed"])
        with torch.no_grad():
            state = encode_state(ctx, model, obs)
            nxt = as_state(ctx.call("transition", model.transition, state, inputs["action"]), "t")
            preds = predictions_of(ctx.call("decode", model.decode, nxt), "decode")
            traj = as_trajectory(ctx.call("rollout", model.rollout, state, inputs["actions"]), "r")
        return {
            "encode": dict(state),
            "transition": dict(nxt),
            "decode": preds,
            "rollout": {**dict(traj.states), "rewards": traj.rewards},
        }

    def prop(inputs: dict[str, Any]) -> None:
        i, j = inputs["i"], inputs["j"]
        obs, alt = inputs["obs"], inputs["obs_alt"]
        changed = _with_sample(obs, alt, j)
        first, second = outputs(obs, inputs), outputs(changed, inputs)
        same(
            tensors_equal(sample(first, i), sample(second, i), atol=ATOL, rtol=RTOL, path="output"),
            f"sample {i} changed when only sample {j} of the batch changed",
        )

    ctx.property(prop, min_batch=2)


def _with_sample(obs: Any, alt: Any, j: int) -> Any:
    if isinstance(obs, Tensor):
        out = obs.clone()
        out[j] = alt[j]
        return out
    return {k: _with_sample(v, alt[k], j) for k, v in obs.items()}


# -- determinism -------------------------------------------------------------------------------
@check(
    "determinism.seeded",
    clause="Two models built under the same seed have identical weights, and with the same seed "
    "give identical encode / rollout / loss outputs (train mode, stochastic parts included).",
    levels=NA_MUST,
    code="WFC501",
    cost=Cost.MEDIUM,
    example="""
torch.manual_seed(7); a = build(); torch.manual_seed(7); b = build()
torch.manual_seed(1); la = a.loss(batch).loss; torch.manual_seed(1); lb = b.loss(batch).loss
assert torch.equal(la, lb)
""",
)
def determinism_seeded(ctx: CheckContext) -> None:
    seed = ctx.options.seed
    first = ctx.call("building the model", ctx.build, seed)
    second = ctx.call("building the model", ctx.build, seed)
    same(
        tensors_equal(dict(first.state_dict()), dict(second.state_dict()), path="state_dict"),
        f"two builds under seed {seed} differ",
    )

    def run(model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        seeded(inputs["seed"])
        with torch.no_grad():
            state = encode_state(ctx, model, inputs["obs"])
            traj = as_trajectory(ctx.call("rollout", model.rollout, state, inputs["actions"]), "r")
        out = as_loss(ctx.call("loss", model.loss, as_batch(inputs["batch"])), "loss")
        return {
            "encode": dict(state),
            "rollout": dict(traj.states),
            "loss": out.loss.detach(),
        }

    def prop(inputs: dict[str, Any]) -> None:
        a, b, again = run(first, inputs), run(second, inputs), run(first, inputs)
        same(tensors_equal(a, b, path="outputs"), "same seed, same weights, different outputs")
        same(tensors_equal(a, again, path="outputs"), "same seed on the same model differs")

    ctx.property(prop)
