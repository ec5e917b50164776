"""DreamerV3's policy and value losses on an imagined trajectory (official ``imag_loss``),
shared by ``dreamerv3.objective`` and the ``actor_critic`` behaviour (:mod:`.actor_critic`).

:func:`imagination_terms` returns tensors only (its metrics as one ``[4]`` tensor), so it can run
inside a compiled region (docs/compile.md); :func:`imagination_losses` adds the metrics by name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from worldflux.nn.heads import PolicyHead, TwoHotHead
from worldflux.nn.returns import PercentileNorm, lambda_return

__all__ = [
    "IMAGINATION_METRICS",
    "critic_loss",
    "imagination_losses",
    "imagination_metrics",
    "imagination_terms",
]

#: The metrics :func:`imagination_losses` reports, in :func:`imagination_terms`' order.
IMAGINATION_METRICS = ("imag/ret", "imag/adv", "imag/entropy", "imag/retscale")


def imagination_terms(
    pol: PolicyHead,
    val: TwoHotHead,
    slowval: TwoHotHead,
    retnorm: PercentileNorm,
    feat: Tensor,
    act: Tensor,
    rew: Tensor,
    con: Tensor,
    *,
    disc: float,
    lam: float,
    actent: float,
    slowreg: float,
    update_norm: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`imagination_losses` with its metrics as one detached tensor ``[4]`` (in
    :data:`IMAGINATION_METRICS` order): tensors only, so it can run inside a compiled region.

    Args:
        feat: features ``[N, H+1, F]`` of the imagined states (no gradient needed).
        act: actions ``[N, H+1, A]`` taken from them (one-hot for discrete actions).
        rew: predicted reward of arriving in each state ``[N, H+1]`` (position 0 unused).
        con: predicted continue probability of each state ``[N, H+1]``.
        disc: discount per step; lam: lambda of the returns; actent: entropy bonus;
        slowreg: weight of the slow-critic regulariser; update_norm: update the return percentiles.

    Returns:
        (policy loss, value loss, lambda-return at the start ``[N]``, metrics ``[4]``).
    """
    with torch.no_grad():
        slowpred = slowval.dist(feat).pred()
    val_dist = val.dist(feat)
    tarval = val_dist.pred().detach()
    weight = torch.cumprod(disc * con, 1) / disc
    ret = lambda_return(torch.zeros_like(con), 1 - con, rew, tarval, disc, lam)
    if update_norm:
        retnorm.update(ret)
    _, rscale = retnorm.stats()
    adv = (ret - tarval[:, :-1]) / rscale
    policy = pol(feat)
    logpi = policy.logp(act.detach())[:, :-1]
    ent = policy.entropy()[:, :-1]
    w = weight[:, :-1].detach()
    policy_loss = (w * -(logpi * adv.detach() + actent * ent)).mean()
    value_loss = critic_loss(val_dist, slowpred, ret, w, slowreg)
    stats = torch.stack([ret.mean(), adv.mean(), ent.mean(), rscale.reshape(())]).detach()
    return policy_loss, value_loss, ret[:, 0], stats


def imagination_losses(
    pol: PolicyHead,
    val: TwoHotHead,
    slowval: TwoHotHead,
    retnorm: PercentileNorm,
    feat: Tensor,
    act: Tensor,
    rew: Tensor,
    con: Tensor,
    *,
    disc: float,
    lam: float,
    actent: float,
    slowreg: float,
    update_norm: bool,
) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
    """DreamerV3's policy and value losses on an imagined trajectory (official ``imag_loss``).

    Args:
        feat: features ``[N, H+1, F]`` of the imagined states (no gradient needed).
        act: actions ``[N, H+1, A]`` taken from them (one-hot for discrete actions).
        rew: predicted reward of arriving in each state ``[N, H+1]`` (position 0 unused).
        con: predicted continue probability of each state ``[N, H+1]``.
        disc: discount per step; lam: lambda of the returns; actent: entropy bonus;
        slowreg: weight of the slow-critic regulariser; update_norm: update the return percentiles.

    Returns:
        (policy loss, value loss, lambda-return at the start ``[N]``, metrics).
    """
    policy_loss, value_loss, ret0, stats = imagination_terms(
        pol,
        val,
        slowval,
        retnorm,
        feat,
        act,
        rew,
        con,
        disc=disc,
        lam=lam,
        actent=actent,
        slowreg=slowreg,
        update_norm=update_norm,
    )
    return policy_loss, value_loss, ret0, imagination_metrics(stats)


def imagination_metrics(stats: Tensor) -> dict[str, float]:
    """The metrics of :func:`imagination_terms`' ``[4]`` tensor, by name."""
    return dict(zip(IMAGINATION_METRICS, (float(v) for v in stats.tolist()), strict=True))


def critic_loss(val_dist: Any, slowpred: Tensor, ret: Tensor, w: Tensor, slowreg: float) -> Tensor:
    """Two-hot critic loss toward the lambda-returns ``ret [N, H]`` (and the slow critic's
    prediction ``slowpred [N, H+1]``), weighted by ``w [N, H]``."""
    tar = torch.cat([ret, torch.zeros_like(ret[:, -1:])], 1)
    per_step = val_dist.loss(tar) + slowreg * val_dist.loss(slowpred)
    loss: Tensor = (w * per_step[:, :-1]).mean()
    return loss
