"""TD-MPC2: numerics (two-hot, SimNorm, policy), initialisation of every ensemble member, the
target copy and Polyak update, the objective and optimisers, the weight map, the golden parity
files, the presets' parameter counts and planning through the generated model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import worldflux
from worldflux.core.exceptions import CheckpointError, ContractViolation
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.types import Batch, State
from worldflux.families.tdmpc2.draws import ReplayDraws
from worldflux.families.tdmpc2.hparams import MODEL_SIZES, discount_from_episode_length
from worldflux.families.tdmpc2.math import (
    TwoHot,
    fast_mish,
    mish,
    simnorm,
    squashed_gaussian,
    symexp,
    symlog,
)
from worldflux.families.tdmpc2.objective import RunningScale, TDMPC2Objective
from worldflux.families.tdmpc2.slots import TRANSITION_INPUT, TDMPC2Heads
from worldflux.families.tdmpc2.weights import (
    load_official_state,
    official_to_ours,
    ours_to_official,
    to_official_state,
)
from worldflux.parity import check_golden

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "specs/parity/tdmpc2/tiny.safetensors"
SHARED_5M = Path("/work/shared/parity/tdmpc2/5m.safetensors")
COUNTS = {"1m": 1214651, "5m": 4960618, "19m": 18062442, "48m": 47208298, "317m": 312595417}


def _model(**overrides: object) -> worldflux.WorldModel:
    torch.manual_seed(0)
    return worldflux.create_world_model("tdmpc2:ci", obs_shape=(24,), action_dim=6, **overrides)


def _batch(b: int = 4, t: int = 4, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(b, t, 24, generator=gen),
        actions=torch.rand(b, t, 6, generator=gen) * 2 - 1,
        rewards=torch.randn(b, t, generator=gen),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        truncated=torch.zeros(b, t, dtype=torch.bool),
    )


def _heads(model: worldflux.WorldModel) -> TDMPC2Heads:
    heads = model.decoder_module
    assert isinstance(heads, TDMPC2Heads)
    return heads


# -- numerics ------------------------------------------------------------------------------------
@given(st.lists(st.floats(-5000.0, 5000.0, allow_nan=False), min_size=1, max_size=16))
def test_two_hot_round_trip_in_symlog_space(values: list[float]) -> None:
    two_hot = TwoHot()
    x = torch.tensor(values, dtype=torch.float64)
    target = two_hot.encode(x)
    assert target.shape == (len(values), 101)
    assert torch.allclose(target.sum(-1), torch.ones(len(values), dtype=torch.float64))
    assert int((target > 0).sum(-1).max()) <= 2
    # the expected bin (symlog space) is symlog(x); decoding the target's log gives x back
    assert torch.allclose((target * two_hot.bins(x)).sum(-1), symlog(x), atol=1e-9)
    assert torch.allclose(two_hot.decode(target.log()).squeeze(-1), x, rtol=1e-6, atol=1e-6)


def test_two_hot_clamps_and_wraps_at_the_top_bin() -> None:
    two_hot = TwoHot()
    big = torch.tensor([1e9, -1e9])
    target = two_hot.encode(big)
    assert float(target[0, 100]) == 1.0 and float(target[1, 0]) == 1.0
    assert torch.allclose(
        symexp(symlog(torch.tensor([-3.0, 0.0, 7.5]))), torch.tensor([-3.0, 0.0, 7.5])
    )
    # soft-CE of uniform logits is ln(101) whatever the target
    ce = two_hot.soft_ce(torch.zeros(3, 101), torch.tensor([0.0, 2.0, -40.0]))
    assert torch.allclose(ce, torch.full((3,), float(torch.log(torch.tensor(101.0)))))


@given(st.integers(1, 4), st.integers(1, 6), st.floats(0.1, 50.0))
def test_simnorm_sums_to_one_per_group(batch: int, groups: int, scale: float) -> None:
    x = torch.randn(batch, groups * 8) * scale
    out = simnorm(x, 8).view(batch, groups, 8)
    assert bool((out >= 0).all())
    assert torch.allclose(out.sum(-1), torch.ones(batch, groups), atol=1e-6)


def test_encoder_and_dynamics_latents_are_simnormed() -> None:
    model = _model()
    state = model.encode(torch.randn(5, 24))
    z = state["latent"]
    assert z.shape == (5, 16)
    assert torch.allclose(z.view(5, 2, 8).sum(-1), torch.ones(5, 2), atol=1e-6)
    nxt = model.transition(state, torch.rand(5, 6) * 2 - 1)
    assert torch.allclose(nxt["latent"].view(5, 2, 8).sum(-1), torch.ones(5, 2), atol=1e-6)


def test_squashed_gaussian_matches_its_definition() -> None:
    mean, log_std, eps = torch.randn(3, 4), torch.randn(3, 4) * 0.3, torch.randn(3, 4)
    sample = squashed_gaussian(mean, log_std, eps)
    action = torch.tanh(mean + eps * log_std.exp())
    assert torch.allclose(sample.action, action)
    normal = torch.distributions.Normal(mean, log_std.exp())
    log_prob = normal.log_prob(mean + eps * log_std.exp()).sum(-1, keepdim=True)
    log_prob = log_prob - torch.log(torch.relu(1 - action**2) + 1e-6).sum(-1, keepdim=True)
    assert torch.allclose(sample.entropy, -log_prob, atol=1e-5)
    assert bool((sample.action.abs() <= 1).all())


def test_fast_mish_only_inside_its_context_and_without_autograd() -> None:
    x = torch.linspace(-30, 30, 2001)
    assert torch.equal(mish(x), torch.nn.functional.mish(x))
    with fast_mish():
        fast = mish(x)
        grad_x = x.clone().requires_grad_(True)
        assert torch.equal(mish(grad_x), torch.nn.functional.mish(grad_x))
    assert not torch.equal(fast, torch.nn.functional.mish(x))
    assert torch.allclose(fast, torch.nn.functional.mish(x), rtol=1e-6, atol=1e-6)


def test_discount_heuristic() -> None:
    assert discount_from_episode_length(500) == pytest.approx(0.99)
    assert discount_from_episode_length(1000) == pytest.approx(0.995)
    assert discount_from_episode_length(10) == pytest.approx(0.95)
    assert _heads(_model(episode_length=200)).discount == pytest.approx(0.975)


# -- initialisation and the target copy -----------------------------------------------------------
def test_init_statistics_of_every_ensemble_member() -> None:
    torch.manual_seed(0)
    model = worldflux.create_world_model(
        "tdmpc2:ci", obs_shape=(24,), action_dim=6, mlp_dim=128, num_q=5
    )
    q = _heads(model).q.requires_grad_(False)
    for h in range(5):
        for layer in ("l0", "l1"):
            w = getattr(q, f"{layer}_weight")[h]
            assert abs(float(w.std()) - 0.02) < 0.002, (h, layer, float(w.std()))
            assert abs(float(w.mean())) < 0.002
            assert float(getattr(q, f"{layer}_bias")[h].abs().max()) == 0.0
            assert bool((getattr(q, f"{layer}_ln_weight")[h] == 1).all())
            assert float(getattr(q, f"{layer}_ln_bias")[h].abs().max()) == 0.0
        assert float(q.l2_weight[h].abs().max()) == 0.0
        assert float(q.l2_bias[h].abs().max()) == 0.0
    # members are initialised independently
    assert not torch.equal(q.l0_weight[0], q.l0_weight[1])
    # the reward head's last layer starts at zero too; other Linear weights are trunc-normal 0.02
    heads = _heads(model)
    assert float(heads.reward[2].weight.detach().abs().max()) == 0.0
    assert abs(float(heads.pi[0].weight.detach().std()) - 0.02) < 0.003


def test_target_q_is_a_copy_not_a_parameter_and_polyak_updates() -> None:
    model = _model()
    heads = _heads(model)
    names = {n for n, _ in model.named_parameters()}
    assert not any("target_q" in n for n in names)
    assert any(n.startswith("decoder_module.target_q.") for n in model.state_dict())
    for online, target in zip(heads.q.tensors(), heads.target_q.tensors(), strict=True):
        assert torch.equal(online, target) and not target.requires_grad
    with torch.no_grad():
        for p in heads.q.tensors():
            p.add_(1.0)
    before = [t.clone() for t in heads.target_q.tensors()]
    assert model.objective is not None
    model.objective.after_step(model)
    for online, target, old in zip(
        heads.q.tensors(), heads.target_q.tensors(), before, strict=True
    ):
        assert torch.allclose(target, old + 0.01 * (online - old), atol=1e-7)


def test_running_scale_percentiles() -> None:
    scale = RunningScale(tau=0.5)
    x = torch.arange(101, dtype=torch.float32).unsqueeze(1)  # P5 = 5, P95 = 95
    assert torch.allclose(scale.percentile(x).squeeze(1), torch.tensor([5.0, 95.0]))
    scale.update(x)
    assert float(scale.value) == pytest.approx(0.5 * 1 + 0.5 * 90)
    small = RunningScale(tau=1.0)
    small.update(torch.zeros(8, 1))
    assert float(small.value) == 1.0  # floored at 1


# -- slots and decode -----------------------------------------------------------------------------
def test_decode_reward_is_the_transition_reward() -> None:
    model = _model()
    heads = _heads(model)
    with torch.no_grad():
        for p in heads.reward.parameters():
            p.normal_()
    start = model.encode(torch.randn(3, 24))
    assert float(start[TRANSITION_INPUT].abs().max()) == 0.0
    with torch.no_grad():
        assert float(model.decode(start).predictions["reward"].abs().max()) == 0.0
    action = torch.rand(3, 6) * 2 - 1
    nxt = model.transition(start, action)
    za = torch.cat([start["latent"], action], -1)
    assert torch.equal(nxt[TRANSITION_INPUT], za)
    pred = model.decode(nxt).predictions
    assert torch.allclose(pred["reward"], heads.reward_value(za).squeeze(-1))
    assert torch.equal(pred["continue"], torch.ones(3))
    # encode with a previous state and action records that transition
    again = model.encode(torch.randn(3, 24), start, action)
    assert torch.equal(again[TRANSITION_INPUT], za)


def test_q_value_evaluates_only_the_chosen_heads() -> None:
    model = _model(num_q=4)
    model.eval()  # no Q dropout
    heads = _heads(model)
    with torch.no_grad():
        for p in heads.q.tensors():
            p.normal_(0, 0.3)
    za = torch.randn(5, 22)
    all_logits = heads.q_logits(za)
    idx = torch.tensor([3, 1])
    assert torch.allclose(heads.q_logits(za, idx), all_logits[idx], atol=1e-6)
    values = heads.two_hot.decode(all_logits[idx])
    assert torch.allclose(heads.q_value(za, idx, "avg"), values.mean(0), atol=1e-6)
    assert torch.allclose(heads.q_value(za, idx, "min"), values.min(0).values, atol=1e-6)


def test_bad_observation_is_a_contract_error() -> None:
    model = _model()
    with pytest.raises(ContractViolation, match="obs"):
        model.encode(torch.randn(2, 23))
    assert model.objective is not None
    with pytest.raises(ContractViolation, match="obs"):
        model.objective(model, Batch(obs=torch.randn(2, 24), actions=torch.zeros(2, 6)))


# -- objective and optimisers ---------------------------------------------------------------------
def test_loss_components_and_gradients_reach_disjoint_parameters() -> None:
    model = _model()
    out = model.loss(_batch())
    assert set(out.components) == {"consistency", "reward", "value", "policy"}
    assert torch.isfinite(out.loss)
    objective = model.objective
    assert isinstance(objective, TDMPC2Objective)
    # the world-model total gives the policy no gradient; the policy loss gives Q none
    obs, act, rew, term = objective._time_major(_batch())
    terms = objective.world_model_terms(model, obs, act, rew, term, ReplayDraws(
        [torch.randn(3, 4, 6)], [torch.tensor([0, 1])]))  # fmt: skip
    terms.total.backward()
    heads = _heads(model)
    assert all(p.grad is None for p in heads.pi.parameters())
    assert all(p.grad is not None for p in heads.q.parameters())
    model.zero_grad(set_to_none=True)
    pi_loss, _ = objective.policy_terms(model, terms.zs, ReplayDraws(
        [torch.randn(4, 4, 6)], [torch.tensor([1, 0])]))  # fmt: skip
    pi_loss.backward()
    assert all(p.grad is None for p in heads.q.parameters())
    assert all(p.grad is None for p in model.observation_encoder.parameters())  # type: ignore[union-attr]
    assert all(p.grad is not None for p in heads.pi.parameters())


def test_terminated_cuts_the_bootstrap_and_truncated_does_not() -> None:
    model = _model()
    heads = _heads(model)
    with torch.no_grad():
        for p in heads.target_q.tensors():
            p.normal_(0, 0.5)
    objective = model.objective
    assert isinstance(objective, TDMPC2Objective)

    def targets(batch: Batch) -> torch.Tensor:
        obs, act, rew, term = objective._time_major(batch)
        draws = ReplayDraws([torch.zeros(3, 4, 6)], [torch.tensor([0, 1])])
        return objective.world_model_terms(model, obs, act, rew, term, draws).td_targets

    batch = _batch()
    base = targets(batch)
    rewards = batch["rewards"][:, :3].T.unsqueeze(-1)
    assert not torch.allclose(base, rewards)
    truncated = targets(batch.replace(truncated=torch.ones(4, 4, dtype=torch.bool)))
    assert torch.equal(truncated, base)
    ended = targets(batch.replace(terminated=torch.ones(4, 4, dtype=torch.bool)))
    assert torch.allclose(ended, rewards)


def test_optimizers_follow_the_official_settings() -> None:
    model = _model()
    objective = model.objective
    assert isinstance(objective, TDMPC2Objective)
    opts = objective.make_optimizers(model)
    assert set(opts) == {"model", "policy"}
    enc_group, rest_group = opts["model"].param_groups
    assert enc_group["lr"] == pytest.approx(3e-4 * 0.3) and rest_group["lr"] == pytest.approx(3e-4)
    enc_ids = {id(p) for p in model.observation_encoder.parameters()}  # type: ignore[union-attr]
    assert {id(p) for p in enc_group["params"]} == enc_ids
    pi_ids = {id(p) for p in _heads(model).pi.parameters()}
    assert {id(p) for p in opts["policy"].param_groups[0]["params"]} == pi_ids
    assert opts["policy"].param_groups[0]["eps"] == 1e-5
    every = enc_ids | pi_ids | {id(p) for p in rest_group["params"]}
    assert every == {id(p) for p in model.parameters()}


def test_update_trains_and_moves_the_target() -> None:
    model = _model()
    objective = model.objective
    assert isinstance(objective, TDMPC2Objective)
    opts = objective.make_optimizers(model)
    batch = _batch()
    target_before = [t.clone() for t in _heads(model).target_q.tensors()]
    pi_before = [p.detach().clone() for p in _heads(model).pi.parameters()]
    model.eval()
    first = objective.update(model, batch, opts)
    assert not model.training  # back in the mode it was in
    assert set(first) >= {"total_loss", "grad_norm", "pi_loss", "pi_scale"}
    assert any(not torch.equal(a, b) for a, b in zip(
        target_before, _heads(model).target_q.tensors(), strict=True))  # fmt: skip
    assert any(not torch.equal(a, b) for a, b in zip(
        pi_before, _heads(model).pi.parameters(), strict=True))  # fmt: skip
    for _ in range(30):
        last = objective.update(model, batch, opts)
    assert last["total_loss"] < first["total_loss"]


# -- weight map and parity ------------------------------------------------------------------------
def test_weight_map_round_trip() -> None:
    model = _model()
    official = to_official_state(model)
    assert "_detach_Qs_params.0.weight" in official and "log_std_dif" in official
    for key in official:
        ours = official_to_ours(key)
        if ours is not None:
            assert ours_to_official(ours) == key
    other = _model()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    load_official_state(other, official)
    mine, theirs = model.state_dict(), other.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    # an official agent checkpoint ({"model": state_dict} with tensordict's non-tensor entries)
    extra = {"_Qs.params.__batch_size": torch.Size([2]), "_Qs.params.__device": None}
    checkpoint = {"model": {**official, **extra}}
    third = _model()
    with torch.no_grad():
        for p in third.parameters():
            p.add_(1.0)
    load_official_state(third, checkpoint)
    assert all(torch.equal(mine[k], v) for k, v in third.state_dict().items())


def test_load_official_reports_problems_and_never_loads_half() -> None:
    model = _model()
    good = to_official_state(model)
    victim = _model()
    with torch.no_grad():
        for p in victim.parameters():
            p.add_(1.0)
    snapshot = {k: v.clone() for k, v in victim.state_dict().items()}
    broken = dict(good)
    del broken["_pi.0.weight"]
    broken["_reward.1.weight"] = torch.zeros(3, 3)
    broken["_extra.weight"] = torch.zeros(1)
    broken["_detach_Qs_params.1.bias"] = torch.ones_like(good["_detach_Qs_params.1.bias"])
    with pytest.raises(CheckpointError) as info:
        load_official_state(victim, broken)
    message = str(info.value)
    for needle in ("_pi.0.weight", "_reward.1.weight", "_extra.weight", "_detach_Qs_params.1.bias"):
        assert needle in message
    after = victim.state_dict()
    assert all(torch.equal(snapshot[k], after[k]) for k in snapshot)


def test_tiny_golden_parity() -> None:
    rows = check_golden("tdmpc2:ci", TINY)
    assert len(rows) == 60
    failed = [(r.name, r.max_abs, r.max_rel) for r in rows if not r.passed]
    assert not failed, failed
    names = {r.name for r in rows}
    assert {"outputs_nz.q_logits_all", "outputs_nz.update_nodropout.grad_norm"} <= names


def test_load_official_from_golden_file() -> None:
    model = worldflux.parity.load_official("tdmpc2:ci", TINY, obs_shape=(24,), action_dim=6)
    from worldflux.parity import read_golden

    tensors, _ = read_golden(TINY)
    with torch.no_grad():
        z = model.encode(tensors["inputs.obs"])["latent"]
    assert torch.allclose(z, tensors["outputs.z"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_5M.is_file(), reason="5m golden not available")
def test_5m_golden_parity() -> None:
    rows = check_golden("tdmpc2:5m", SHARED_5M)
    failed = [(r.name, r.max_abs, r.max_rel) for r in rows if not r.passed]
    assert len(rows) == 60 and not failed, failed


# -- presets, aliases, planning ------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(COUNTS))
def test_preset_parameter_counts_equal_the_official(preset: str) -> None:
    cls = WorldModelRegistry.get("tdmpc2")
    config = WorldModelRegistry.get_config_class("tdmpc2")(
        obs_shape=(24,), action_dim=6, **cls.presets[preset]
    )
    with torch.device("meta"):  # no memory, no init cost
        model = cls(config)
    assert model.num_parameters() == COUNTS[preset]
    for field, value in MODEL_SIZES[preset].items():
        assert getattr(model.config, field) == value


def test_ci_preset_is_the_golden_tiny_config_and_aliases_resolve() -> None:
    assert _model().num_parameters() == 21787
    assert MODEL_SIZES["ci"] == {
        "enc_dim": 32, "mlp_dim": 32, "latent_dim": 16, "num_enc_layers": 2, "num_q": 2,
    }  # fmt: skip
    assert WorldModelRegistry.resolve("tdmpc2") == ("tdmpc2", "5m")
    assert WorldModelRegistry.resolve("tdmpc") == ("tdmpc2", "5m")
    assert WorldModelRegistry.resolve("tdmpc2-ci") == ("tdmpc2", "ci")


def test_plan_returns_bounded_actions_and_uses_two_q_heads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import worldflux.families.tdmpc2.slots as slots

    model = _model(num_q=5)
    seen: list[int] = []
    original = slots.q_ensemble_forward

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        seen.append(int(out.shape[0]))
        return out

    monkeypatch.setattr(slots, "q_ensemble_forward", spy)
    torch.manual_seed(0)
    obs = torch.randn(2, 24) * 3
    action = model.plan(obs)  # type: ignore[operator]
    assert action.shape == (2, 6)
    assert bool((action.abs() <= 1).all()) and bool(torch.isfinite(action).all())
    assert seen and set(seen) == {2}  # only the two sampled heads, never the whole ensemble
    eval_action = model.plan(obs, eval_mode=True)  # type: ignore[operator]
    assert bool((eval_action.abs() <= 1).all())


def test_planning_value_has_no_dropout() -> None:
    model = _model()
    heads = _heads(model)
    with torch.no_grad():
        for p in heads.q.tensors():
            p.normal_(0, 0.5)
    model.train()
    z, a = torch.rand(64, 16), torch.rand(64, 6) * 2 - 1
    torch.manual_seed(0)
    first = heads.planning_value(z, a)
    torch.manual_seed(0)  # same heads, and no dropout mask to differ
    assert torch.equal(first, heads.planning_value(z, a))
    model.eval()
    torch.manual_seed(0)
    assert torch.allclose(first, heads.planning_value(z, a))


def test_rollout_matches_transition_and_decode() -> None:
    model = _model()
    model.eval()
    start = model.encode(torch.randn(2, 24))
    actions = torch.rand(2, 3, 6) * 2 - 1
    traj = model.rollout(start, actions)
    state = start
    for t in range(3):
        state = model.transition(state, actions[:, t])
        assert torch.allclose(traj.states["latent"][:, t + 1], state["latent"])
        assert torch.allclose(traj.rewards[:, t], model.decode(state).predictions["reward"])
    assert isinstance(traj.states, State)


def test_observation_encoder_slot_takes_a_compatible_implementation() -> None:
    """The encoder is a real slot: a generic encoder giving ``{"latent": [B, latent_dim]}``
    trains and plans in its place (the spec declares only the rollout executor composable,
    because the suite would also try encoders of other families, whose states do not fit)."""
    model = _model()
    model.composable_support.add("observation_encoder")
    model.swap_component("observation_encoder", "mlp_encoder", {"hidden": 32})
    out = model.loss(_batch())
    out.loss.backward()
    encoder = model.observation_encoder
    assert encoder is not None
    assert all(p.grad is not None for p in encoder.parameters())
    assert model.plan(torch.randn(2, 24)).shape == (2, 6)  # type: ignore[operator]
