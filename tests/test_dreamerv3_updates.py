"""Update-level proofs for DreamerV3 (paper arXiv:2301.04104 / official e3f0224 definitions),
checked by autograd on the tiny ``ci`` model:

* the dynamics KL ``KL(sg(post) || prior)`` trains only the prior side, the representation KL
  ``KL(post || sg(prior))`` only the encoder / posterior side;
* free bits clip each term per (batch, time) element after summing over the latents;
* the latent categoricals mix in 1% uniform;
* return normalisation uses an EMA of the 5th / 95th percentiles with scale ``max(1, hi - lo)``;
* the slow critic follows ``slow <- 0.02 * val + 0.98 * slow`` after each optimiser step and is
  never trained by gradient.

Each test fails under the corresponding mutation of worldflux/families/dreamerv3 (see
docs/parity.md, "Mutations the tests catch").
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
from worldflux.nn.returns import PercentileNorm
from worldflux.training import Trainer, TrainerConfig

OBS, ACT = 5, 2


def build(**kw: Any) -> Any:
    return worldflux.create_world_model("dreamerv3:ci", obs_shape=(OBS,), action_dim=ACT, **kw)


def make_batch(b: int, t: int, seed: int = 0, all_first: bool = False) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    is_first = torch.full((b, t), all_first, dtype=torch.bool)
    is_first[:, 0] = True
    return Batch(
        obs=torch.randn(b, t, OBS, generator=gen) * 2,
        actions=torch.rand(b, t, ACT, generator=gen) * 2 - 1,
        rewards=torch.randn(b, t, generator=gen),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )


def objective_of(model: Any, **params: Any) -> DreamerObjective:
    obj = model.objective
    assert isinstance(obj, DreamerObjective)
    if params:
        obj.p = obj.p.model_copy(update=params)
    return obj


def shrink_posterior(model: Any, factor: float = 0.3) -> None:
    """Scale the posterior logit layer so per-element KLs straddle the 1-nat free bits (about
    1 in 6 elements below 1 nat for the seed-0 batch, mean about 4 nats)."""
    with torch.no_grad():
        model.dynamics_model.obslogit.weight.mul_(factor)


def touched(loss: Tensor, params: dict[str, Tensor]) -> dict[str, bool]:
    grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True, allow_unused=True)
    return {
        n: g is not None and bool(g.abs().sum() > 0) for n, g in zip(params, grads, strict=True)
    }


# -- KL gradient routing ---------------------------------------------------------------------------
def test_dyn_kl_trains_only_the_prior_and_rep_kl_only_the_posterior() -> None:
    """When every step starts an episode (carry reset), deter does not depend on any observation,
    so the prior head sees no encoder input: the dyn term must reach the prior head and nothing on
    the posterior side (encoder, posterior layers), the rep term exactly the other way round."""
    torch.manual_seed(0)
    model = build()
    with torch.no_grad():  # zero biases would make the reset carry's deter (and prior input) 0
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.3)
    obj = objective_of(model, free_nats=0.0)  # free bits could zero the gradients of small KLs
    out = obj(model, make_batch(4, 3, all_first=True))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    prior_side = [
        n for n in params if n.startswith(("dynamics_model.prior", "dynamics_model.prio"))
    ]
    post_side = [
        n
        for n in params
        if n.startswith(("observation_encoder.", "dynamics_model.obs.", "dynamics_model.obslogit"))
    ]
    assert len(prior_side) == 8 and len(post_side) == 14
    dyn = touched(out.components["dyn"], params)
    rep = touched(out.components["rep"], params)
    assert all(dyn[n] for n in prior_side), [n for n in prior_side if not dyn[n]]
    assert not any(dyn[n] for n in post_side), [n for n in post_side if dyn[n]]
    assert all(rep[n] for n in post_side), [n for n in post_side if not rep[n]]
    assert not any(rep[n] for n in prior_side), [n for n in prior_side if rep[n]]


def _independent_kl(model: Any, batch: Batch, seed: int) -> Tensor:
    """KL(post || prior) ``[B, T]`` in float64 from the raw logits, summed over the latents,
    with the 1% uniform mixture applied to both (paper eq. 5 with unimix)."""
    torch.manual_seed(seed)  # the same straight-through samples as the objective's first call
    deter, _, post = observe_sequence(model, batch["obs"], batch["actions"], batch["is_first"])
    prior = model.dynamics_model.prior_logits(deter)

    def mix(logits: Tensor) -> Tensor:
        probs = torch.softmax(logits.double(), -1)
        return 0.99 * probs + 0.01 / probs.shape[-1]

    p, q = mix(post), mix(prior)
    return (p * (p.log() - q.log())).sum(-1).sum(-1).detach()


def test_free_bits_clip_each_term_per_element_after_summing_latents_with_unimix() -> None:
    torch.manual_seed(0)
    model = build()
    shrink_posterior(model)
    batch = make_batch(4, 6)
    obj = objective_of(model)
    torch.manual_seed(7)
    out = obj(model, batch)
    kl = _independent_kl(model, batch, 7)
    assert float(kl.min()) < 1.0 < float(kl.max())  # the clip matters element by element
    expected = kl.clamp(min=1.0).mean()
    for term in ("dyn", "rep"):
        assert float(out.components[term].detach()) == pytest.approx(float(expected), rel=2e-5)
    # the value tells the mutations apart: clip after averaging, clip the sum of both terms,
    # free bits per latent, no unimix
    assert abs(float(expected) - max(float(kl.mean()), 1.0)) > 1e-3
    assert abs(float(expected) - float((2 * kl).clamp(min=1.0).mean() / 2)) > 1e-3
    assert float(out.components["dyn"]) > 1.0


def test_kl_without_unimix_differs() -> None:
    """The mixture is part of the KL: without it the loss changes (guards the 1% floor)."""
    torch.manual_seed(0)
    model = build()
    shrink_posterior(model, 20.0)  # sharp posteriors: some raw probabilities below the floor
    batch = make_batch(2, 3)
    torch.manual_seed(3)
    post = observe_sequence(model, batch["obs"], batch["actions"], batch["is_first"])[2]
    lp = model.dynamics_model.logprobs(post).detach().double().exp()
    assert float(lp.min()) >= 0.01 / lp.shape[-1] * (1 - 1e-6)
    raw = torch.softmax(post.detach().double(), -1)
    assert float(raw.min()) < 0.01 / lp.shape[-1]  # the floor is active somewhere


# -- return normalisation --------------------------------------------------------------------------
def test_percentile_return_normalisation_matches_numpy_percentiles() -> None:
    norm = PercentileNorm()  # official: rate 0.01, limit 1, 5th / 95th percentiles, no debias
    gen = np.random.default_rng(0)
    lo = hi = 0.0
    for step in range(5):
        x = gen.standard_normal(997) * 40.0 + 10.0 * step
        x[:7] = 1e4  # outliers beyond the 95th percentile must not move it much
        norm.update(torch.tensor(x, dtype=torch.float32))
        lo = 0.99 * lo + 0.01 * float(np.percentile(x, 5))
        hi = 0.99 * hi + 0.01 * float(np.percentile(x, 95))
    offset, scale = norm.stats()
    assert float(offset) == pytest.approx(lo, rel=1e-4)
    assert float(scale) == pytest.approx(max(1.0, hi - lo), rel=1e-4)
    assert float(scale) > 1.0  # not the floor: the percentile range decides


def test_imagination_advantages_use_the_updated_return_scale() -> None:
    torch.manual_seed(0)
    model = build()
    obj = objective_of(model)
    with torch.no_grad():
        obj.retnorm.lo.fill_(-40.0)
        obj.retnorm.hi.fill_(60.0)
    out = obj(model, make_batch(2, 4))
    lo, hi = float(obj.retnorm.lo), float(obj.retnorm.hi)
    assert -40.0 < lo < hi < 60.0  # updated (EMA towards small returns) before use
    assert out.metrics["imag/retscale"] == pytest.approx(hi - lo, rel=1e-6)


# -- slow critic -----------------------------------------------------------------------------------
def test_slow_critic_is_an_ema_applied_after_each_optimiser_step() -> None:
    torch.manual_seed(0)
    model = build()
    obj = objective_of(model)
    with torch.no_grad():
        for p in obj.slowval.parameters():
            p.normal_()
    assert not any(p.requires_grad for p in obj.slowval.parameters())
    trainer = Trainer(model, TrainerConfig())
    owned = {
        id(p) for o in trainer.optimizers.values() for g in o.param_groups for p in g["params"]
    }
    assert not any(id(p) in owned for p in obj.slowval.parameters())
    slow_before = [p.detach().clone() for p in obj.slowval.parameters()]
    for step in range(3):
        slow_before = [p.detach().clone() for p in obj.slowval.parameters()]
        trainer.train_step(make_batch(2, 4, seed=step))
    val_after = [p.detach() for p in obj.val.parameters()]
    for slow, s0, v in zip(obj.slowval.parameters(), slow_before, val_after, strict=True):
        assert torch.allclose(slow, 0.02 * v + 0.98 * s0, atol=1e-6)


def test_value_loss_regularises_towards_the_slow_critic() -> None:
    """``value`` = two-hot CE to the lambda-return + slowreg * CE to the slow critic's mean:
    changing only the slow critic changes the value loss, and its gradient reaches only ``val``."""
    torch.manual_seed(0)
    model = build()
    obj = objective_of(model)
    batch = make_batch(2, 4)
    with torch.no_grad():  # zero-init output layers give the same CE for every target
        obj.val.out.weight.normal_(0.0, 0.1)
        obj.slowval.load_state_dict(obj.val.state_dict())
    torch.manual_seed(1)
    base = float(obj(model, batch).components["value"])
    with torch.no_grad():
        obj.slowval.out.bias.normal_(0.0, 0.5)
    slow_state = {k: v.clone() for k, v in obj.slowval.state_dict().items()}
    torch.manual_seed(1)
    assert abs(float(obj(model, batch).components["value"]) - base) > 1e-3
    obj.p = obj.p.model_copy(update={"slowreg": 0.0})  # without the regulariser: no effect
    torch.manual_seed(1)
    perturbed = float(obj(model, batch).components["value"])
    obj.slowval.load_state_dict(obj.val.state_dict())
    torch.manual_seed(1)
    assert perturbed == pytest.approx(float(obj(model, batch).components["value"]), rel=1e-6)
    obj.slowval.load_state_dict(slow_state)
    obj.p = obj.p.model_copy(update={"slowreg": 1.0})
    torch.manual_seed(1)
    loss = obj(model, batch).components["value"]
    grads = torch.autograd.grad(loss, list(obj.val.parameters()), allow_unused=True)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)


# -- replay windows across episode boundaries ------------------------------------------------------
def test_dreamerv3_trains_on_episodes_shorter_than_its_windows(tmp_path: Any) -> None:
    """The official replay samples chunks across episode boundaries. Confined to one episode,
    windows of 16 rows never contain an episode shorter than 15 steps, so a world model never sees
    the quick failures of a bad policy (on CartPole most episodes of a collapsing policy). Episodes
    here are cut at 8 steps: without windows across episodes not a single update could run."""
    from worldflux.training import ReplayBuffer, RunConfig, train

    replay = ReplayBuffer(100, obs_shape=(2,), action_dim=2, action_type="discrete")
    for length in (3, 4, 2):
        replay.begin_episode(torch.zeros(2))
        for step in range(length):
            replay.add(1, 1.0, step == length - 1, False, torch.ones(2))
    assert replay.num_windows(6) == 0 and replay.num_windows(6, cross_episodes=True) == 7
    batch = replay.sample(32, 6, cross_episodes=True)
    assert bool(batch["is_first"][:, 1:].any())  # windows hold episode starts inside them
    assert objective_of(build()).crosses_episodes
    summary = train(
        RunConfig(
            model="dreamerv3:ci",
            env_id="CartPole-v1",
            steps=24,
            out=str(tmp_path / "run"),
            seed_steps=20,
            pretrain_updates=2,
            max_episode_steps=8,
            batch_size=2,
            progress=False,
            threads=1,
        )
    )
    assert summary.updates == 6
