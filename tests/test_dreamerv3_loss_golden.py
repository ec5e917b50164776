"""A loss golden for DreamerV3: every loss term of ``dreamerv3.objective`` on a fixed tiny batch,
recomputed independently in float64 NumPy from the formulas of the paper / official agent
(arXiv:2301.04104; danijar/dreamerv3@e3f0224 ``agent.py``), not from worldflux's loss code.

What is shared with the code under test: the network forward passes (encoder, RSSM, heads), whose
outputs the parity goldens already pin to the official JAX code, and the imagined trajectory
(features and sampled actions, captured from the objective). Everything after the logits is
written here from the formulas: unimix KL with per-element free bits, symlog MSE, two-hot
cross-entropy against symexp bins, the contdisc continue target, the official reward alignment,
lambda-returns, 5th/95th percentile return scale, REINFORCE with entropy, slow-critic
regulariser, replay value, and the loss scales.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

import worldflux
from worldflux.core.types import Batch
from worldflux.families.dreamerv3.objective import DreamerObjective, observe_sequence

B, T, OBS = 3, 5, 4
SCALES = {"rec": 1.0, "rew": 1.0, "con": 1.0, "dyn": 1.0, "rep": 0.1}
SCALES |= {"policy": 1.0, "value": 1.0, "repval": 0.3}
FREE, HORIZON, LAM, ACTENT, UNIMIX = 1.0, 333, 0.95, 3e-4, 0.01


def np64(x: Tensor) -> np.ndarray:
    return np.asarray(x.detach().double().cpu().numpy())


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def symlog(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


BINS = np.sign(np.linspace(-20, 20, 255)) * np.expm1(np.abs(np.linspace(-20, 20, 255)))


def twohot_mean(logits: np.ndarray) -> np.ndarray:
    return softmax(logits) @ BINS


def twohot_ce(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """-sum_k y_k log softmax(logits)_k with y the two-hot of ``target`` (linear in raw units
    between the neighbouring bins; clipped to the end bins)."""
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    out = np.empty(target.shape)
    for idx in np.ndindex(target.shape):
        y = float(np.clip(target[idx], BINS[0], BINS[-1]))
        hi = min(int(np.searchsorted(BINS, y, side="right")), len(BINS) - 1)
        lo = max(hi - 1, 0)
        if BINS[hi] == BINS[lo] or y >= BINS[-1]:
            out[idx] = -logp[idx][hi]
            continue
        w_hi = (y - BINS[lo]) / (BINS[hi] - BINS[lo])
        out[idx] = -((1 - w_hi) * logp[idx][lo] + w_hi * logp[idx][hi])
    return out


def lambda_returns(
    rew: np.ndarray, live: np.ndarray, lam: np.ndarray, boot: np.ndarray
) -> np.ndarray:
    """``[N, T] -> [N, T-1]``: R_{T-1} = boot_{T-1};
    R_t = rew_{t+1} + live_{t+1} ((1 - lam_{t+1}) boot_{t+1} + lam_{t+1} R_{t+1})."""
    steps = rew.shape[1]
    rets = np.zeros((rew.shape[0], steps))
    rets[:, -1] = boot[:, -1]
    for t in reversed(range(steps - 1)):
        c = lam[:, t + 1]
        rets[:, t] = rew[:, t + 1] + live[:, t + 1] * (
            (1 - c) * boot[:, t + 1] + c * rets[:, t + 1]
        )
    return rets[:, :-1]


def build(discrete: bool) -> Any:
    kw: dict[str, Any] = {"action_type": "discrete"} if discrete else {}
    torch.manual_seed(0)
    model = worldflux.create_world_model("dreamerv3:ci", obs_shape=(OBS,), action_dim=3, **kw)
    with torch.no_grad():  # every parameter matters (zero-init heads would hide the two-hot maths)
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.05 if name.endswith("weight") else 0.2))
        obj = model.objective
        obj.slowval.load_state_dict(obj.val.state_dict())
        for p in obj.slowval.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def make_batch(discrete: bool) -> Batch:
    g = torch.Generator().manual_seed(1)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[0, 0] = is_first[2, 0] = is_first[2, 3] = True  # row 1 starts mid-episode
    terminated = torch.zeros(B, T, dtype=torch.bool)
    terminated[2, 2] = True  # row 2: an episode ends, the next starts at t=3
    truncated = torch.zeros(B, T, dtype=torch.bool)
    truncated[0, 3] = True
    actions = torch.randint(0, 3, (B, T), generator=g) if discrete else torch.rand(B, T, 3) * 2 - 1
    return Batch(
        obs=torch.randn(B, T, OBS, generator=g) * 3,
        actions=actions,
        rewards=torch.randn(B, T, generator=g) * 4,
        terminated=terminated,
        truncated=truncated,
        is_first=is_first,
    )


def independent_losses(
    model: Any, batch: Batch, seed: int, img: dict[str, Tensor]
) -> dict[str, float]:
    """Every loss term in float64 from the network outputs (see the module docstring)."""
    obj: DreamerObjective = model.objective
    dec = model.decoder_module
    with torch.no_grad():
        torch.manual_seed(seed)  # the objective's first random draws: the posterior samples
        deter, stoch, post = observe_sequence(
            model, batch["obs"], batch["actions"], batch["is_first"]
        )
        prior = model.dynamics_model.prior_logits(deter)
        feat = torch.cat([deter, stoch.flatten(-2)], -1)
        recon = dec.reconstruct(deter.flatten(0, 1), stoch.flatten(0, 1))["obs"]
        rew_logits, con_logit = np64(dec.rew(feat)), np64(dec.con(feat))
        val_logits, slow_logits = np64(obj.val(feat)), np64(obj.slowval(feat))
        f, a = img["feat"], img["act"]
        i_rew, i_con = twohot_mean(np64(dec.rew(f))), 1 / (1 + np.exp(-np64(dec.con(f))))
        i_val, i_slow = np64(obj.val(f)), twohot_mean(np64(obj.slowval(f)))
        hidden = obj.pol.mlp(f)
        pol = (
            (np64(obj.pol.logits(hidden)),)
            if obj.pol.discrete
            else (np64(obj.pol.mean(hidden)), np64(obj.pol.stddev(hidden)))
        )
    out: dict[str, float] = {}
    # world model
    p = (1 - UNIMIX) * softmax(np64(post)) + UNIMIX / post.shape[-1]
    q = (1 - UNIMIX) * softmax(np64(prior)) + UNIMIX / prior.shape[-1]
    kl = (p * (np.log(p) - np.log(q))).sum(-1).sum(-1)  # [B, T]: summed over the latents
    out["dyn"] = out["rep"] = float(np.maximum(kl, FREE).mean())
    err = np64(recon) - symlog(np64(batch["obs"]).reshape(B * T, OBS))
    out["rec"] = float((err**2).sum(-1).mean())
    first = np64(batch["is_first"]).astype(bool)
    shift = lambda x: np.concatenate([np.zeros((B, 1)), x[:, :-1]], 1)  # noqa: E731
    reward = np.where(first, 0.0, shift(np64(batch["rewards"])))
    term = (shift(np64(batch["terminated"])) > 0) & ~first
    last = shift(np64(batch["terminated"]) + np64(batch["truncated"])) > 0
    valid = np.ones((B, T))
    valid[:, 0] = first[:, 0]
    out["rew"] = float((twohot_ce(rew_logits, reward) * valid).sum() / valid.sum())
    target = (1 - term) * (1 - 1 / HORIZON)
    bce = -(target * np.log(1 / (1 + np.exp(-con_logit))))
    bce -= (1 - target) * np.log(1 / (1 + np.exp(con_logit)))
    out["con"] = float((bce * valid).sum() / valid.sum())
    # imagination: contdisc, so the discount lives in the continue prediction (disc = 1)
    tarval = twohot_mean(i_val)
    weight = np.cumprod(i_con, 1)
    ret = lambda_returns(i_rew, i_con, np.full_like(i_con, LAM), tarval)
    lo = 0.01 * np.percentile(ret, 5)  # fresh normaliser: EMA from 0 with rate 0.01
    hi = 0.01 * np.percentile(ret, 95)
    adv = (ret - tarval[:, :-1]) / max(1.0, hi - lo)
    act = np64(a)
    if obj.pol.discrete:
        probs = (1 - UNIMIX) * softmax(pol[0]) + UNIMIX / act.shape[-1]
        logpi = (np.log(probs) * act).sum(-1)
        ent = -(probs * np.log(probs)).sum(-1)
    else:
        mean, std = np.tanh(pol[0]), 0.9 / (1 + np.exp(-(pol[1] + 2.0))) + 0.1
        logpi = (-0.5 * ((act - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)
        ent = (np.log(std) + 0.5 * np.log(2 * np.pi) + 0.5).sum(-1)
    w = weight[:, :-1]
    out["policy"] = float((w * -(logpi[:, :-1] * adv + ACTENT * ent[:, :-1])).mean())
    ce_ret = twohot_ce(i_val[:, :-1], ret)
    ce_slow = twohot_ce(i_val[:, :-1], i_slow[:, :-1])
    out["value"] = float((w * (ce_ret + ce_slow)).mean())
    # replay value, bootstrapped from the imagination return at each replay state
    boot = ret[:, 0].reshape(B, T)
    live = (1 - term) * (1 - 1 / HORIZON)
    rret = lambda_returns(reward, live, (1 - last) * LAM, boot)
    slow = twohot_mean(slow_logits)[:, :-1]
    per = twohot_ce(val_logits[:, :-1], rret) + twohot_ce(val_logits[:, :-1], slow)
    out["repval"] = float(((1 - last[:, :-1]) * per).mean())
    out["total"] = float(sum(SCALES[k] * out[k] for k in SCALES))
    return out


@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "discrete"])
def test_every_loss_term_matches_the_independent_recomputation(discrete: bool) -> None:
    model = build(discrete)
    obj: DreamerObjective = model.objective
    batch = make_batch(discrete)
    captured: dict[str, Tensor] = {}
    original = obj._imag_loss

    def spy(dec: Any, feat: Tensor, act: Tensor) -> Any:
        captured["feat"], captured["act"] = feat.detach().clone(), act.detach().clone()
        return original(dec, feat, act)

    obj._imag_loss = spy  # type: ignore[method-assign]
    torch.manual_seed(11)
    out = obj(model, batch)
    obj._imag_loss = original  # type: ignore[method-assign]
    golden = independent_losses(model, batch, 11, captured)
    ours = {k: float(v) for k, v in out.components.items()} | {"total": float(out.loss)}
    assert set(ours) == set(golden)
    for name, value in golden.items():
        assert ours[name] == pytest.approx(value, rel=2e-5, abs=2e-6), (name, ours[name], value)
    # the batch exercises what it should: KLs above the free bits and a return scale above its
    # floor of 1 (perturbed two-hot heads decode to large values, as in the perturbed goldens)
    assert golden["dyn"] > 1.0 and golden["policy"] != 0.0
    assert out.metrics["imag/retscale"] > 1.0
