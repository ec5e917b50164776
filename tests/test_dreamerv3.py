"""DreamerV3 (REFERENCE): published invariants, slots, objective, optimiser, presets.

Everything runs on the tiny ``ci`` preset (= the parity goldens' tiny config) unless a test needs
a specific size; parameter counts of the large presets are taken on the meta device.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import worldflux
from worldflux.core.exceptions import ConfigurationError, ContractViolation
from worldflux.core.types import Batch, State
from worldflux.families.dreamerv3.objective import LOSS_TERMS, observe_sequence
from worldflux.families.dreamerv3.optim import DreamerOptimizer
from worldflux.nn.dists import TwoHot, twohot_bins, unimix_logprobs
from worldflux.nn.nets import symexp, symlog
from worldflux.nn.returns import PercentileNorm, lambda_return

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "models" / "dreamerv3.yaml"


def build(model_id: str = "dreamerv3:ci", **kwargs: Any) -> Any:
    kwargs.setdefault("obs_shape", (24,))
    kwargs.setdefault("action_dim", 6)
    return worldflux.create_world_model(model_id, **kwargs)


def make_batch(
    b: int = 2, t: int = 5, obs_shape: tuple[int, ...] = (24,), discrete: int = 0, seed: int = 0
) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    if discrete:
        actions = torch.randint(0, discrete, (b, t), generator=gen)
    else:
        actions = torch.rand(b, t, 6, generator=gen) * 2 - 1
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    terminated = torch.zeros(b, t, dtype=torch.bool)
    terminated[0, -2] = True
    return Batch(
        obs=torch.randn(b, t, *obs_shape, generator=gen),
        actions=actions,
        rewards=torch.randn(b, t, generator=gen),
        terminated=terminated,
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )


# -- numerics ------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=16))
def test_symlog_symexp_are_inverse(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-9, atol=1e-9)
    assert torch.allclose(symlog(symexp(symlog(x))), symlog(x), rtol=1e-9, atol=1e-12)


def test_twohot_bins_are_antisymmetric_with_a_zero_centre() -> None:
    bins = twohot_bins(255)
    assert bins.shape == (255,)
    assert float(bins[127]) == 0.0
    assert torch.equal(bins.flip(0), -bins)
    assert math.isclose(float(bins[-1]), math.expm1(20.0), rel_tol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.floats(-1e5, 1e5, allow_nan=False))
def test_twohot_encode_decode_round_trip(value: float) -> None:
    bins = twohot_bins(255).double()
    target = torch.tensor([value], dtype=torch.float64)
    dist = TwoHot(torch.zeros(1, 255, dtype=torch.float64), bins).target(target)
    assert torch.allclose(dist.sum(-1), torch.ones(1, dtype=torch.float64))
    assert int((dist > 0).sum()) <= 2
    decoded = TwoHot(torch.log(dist.clamp_min(1e-300)), bins).pred()
    assert torch.allclose(decoded, target, rtol=1e-9, atol=1e-9)


def test_twohot_target_on_a_bin_is_one_hot_and_outside_range_clips() -> None:
    bins = twohot_bins(255)
    dist = TwoHot(torch.zeros(3, 255), bins).target(torch.tensor([0.0, 1e10, -1e10]))
    assert float(dist[0, 127]) == 1.0
    assert float(dist[1, 254]) == 1.0
    assert float(dist[2, 0]) == 1.0


def test_uniform_twohot_decodes_to_exactly_zero() -> None:
    assert float(TwoHot(torch.zeros(5, 255), twohot_bins(255)).pred().abs().max()) == 0.0


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 64), st.floats(1.0, 80.0))
def test_unimix_floor_on_probabilities(classes: int, spread: float) -> None:
    logits = torch.linspace(-spread, spread, classes)[None].repeat(3, 1)
    probs = unimix_logprobs(logits, 0.01).exp()
    assert float(probs.min()) >= 0.01 / classes * (1 - 1e-5)
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)


def test_lambda_return_with_lambda_one_is_the_discounted_sum() -> None:
    rew = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    boot = torch.tensor([[0.0, 0.0, 0.0, 10.0]])
    zeros = torch.zeros_like(rew)
    ret = lambda_return(zeros, zeros, rew, boot, 0.5, 1.0)
    expected0 = 1.0 + 0.5 * 2.0 + 0.25 * 3.0 + 0.25 * 0.5 * 10.0
    assert ret.shape == (1, 3)
    assert math.isclose(float(ret[0, 0]), expected0, rel_tol=1e-6)
    # a terminal at t+1 stops bootstrapping
    term = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert math.isclose(float(lambda_return(zeros, term, rew, boot, 0.5, 1.0)[0, 0]), 1.0)


def test_percentile_norm_keeps_scale_at_least_one() -> None:
    norm = PercentileNorm()
    norm.update(torch.linspace(0, 0.5, 100))
    assert float(norm.stats()[1]) == 1.0
    for _ in range(2000):
        norm.update(torch.linspace(-50, 50, 101))
    lo, scale = norm.stats()
    assert math.isclose(float(lo), -45.0, rel_tol=1e-3)
    assert math.isclose(float(scale), 90.0, rel_tol=1e-3)


# -- presets and parameter counts ---------------------------------------------------------------
def test_size1m_walker_has_exactly_640867_trainable_parameters() -> None:
    with torch.device("meta"):
        model = build("dreamerv3:size1m", device="meta")
    assert model.num_parameters() == 640_867
    slow = sum(p.numel() for p in model.objective.slowval.parameters())
    assert slow == 66_111
    assert not any(p.requires_grad for p in model.objective.slowval.parameters())


def test_spec_preset_params_are_the_measured_counts() -> None:
    from ruamel.yaml import YAML

    spec = YAML(typ="safe").load(SPEC.read_text())
    for preset, entry in spec["presets"].items():
        with torch.device("meta"):
            model = build(f"dreamerv3:{preset}", device="meta")
        assert model.num_parameters() == entry["params"], preset
    counts = spec["parity"]["param_counts"]["counts"]
    assert counts["size1m"] == 640_867


def test_aliases_resolve_to_official_presets() -> None:
    assert worldflux.get_model_info("dreamer")["preset"] == "size12m"
    assert worldflux.get_model_info("dreamerv3")["preset"] == "size12m"
    assert worldflux.get_model_info("dreamer-ci")["preset"] == "ci"
    model = build("dreamer-ci")
    assert (model.config.deter, model.config.hidden, model.config.classes) == (64, 16, 4)
    assert (model.config.units, model.config.depth, model.config.blocks) == (16, 4, 8)


# -- published invariants at init -----------------------------------------------------------------
def test_reward_and_value_are_exactly_zero_at_init() -> None:
    torch.manual_seed(0)
    model = build()
    state = model.encode(torch.randn(7, 24) * 5)
    out = model.decode(state)
    assert torch.equal(out.predictions["reward"], torch.zeros(7))
    feat = torch.cat([state["deter"], state["stoch"].flatten(1)], -1)
    assert torch.equal(model.objective.val.dist(feat).pred(), torch.zeros(7))
    assert torch.equal(model.objective.slowval.dist(feat).pred(), torch.zeros(7))


def test_policy_std_is_bounded_and_mean_near_zero_at_init() -> None:
    model = build()
    feat = torch.randn(5, 64 + 128) * 3
    with torch.no_grad():
        policy = model.objective.pol(feat)
    assert float(policy.std.min()) >= 0.1 and float(policy.std.max()) <= 1.0
    assert float(policy.mean.abs().max()) < 0.2  # outscale 0.01


def test_kl_under_free_nats_reads_one_and_has_no_gradient() -> None:
    torch.manual_seed(0)
    model = build()
    dyn = model.dynamics_model
    with torch.no_grad():  # identical uniform prior and posterior: KL = 0 < free nats
        for layer in (dyn.priorlogit, dyn.obslogit):
            layer.weight.zero_()
            layer.bias.zero_()
    out = model.loss(make_batch())
    assert float(out.components["dyn"].detach()) == 1.0
    assert float(out.components["rep"].detach()) == 1.0
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(
        out.components["dyn"] + out.components["rep"], params, allow_unused=True
    )
    assert all(g is None or float(g.abs().max()) == 0.0 for g in grads)


# -- slots ---------------------------------------------------------------------------------------
def test_state_layout_and_zero_initial_carry() -> None:
    model = build()
    state = model.initial_state(3)
    assert set(state) == {"deter", "stoch"}
    assert state["deter"].shape == (3, 64) and state["stoch"].shape == (3, 32, 4)
    assert float(state["deter"].abs().sum() + state["stoch"].abs().sum()) == 0.0
    nxt = model.transition(state, torch.zeros(3, 6))
    assert torch.equal(nxt["stoch"].sum(-1), torch.ones(3, 32))  # one-hot samples


def test_action_is_scaled_by_max_one_abs() -> None:
    model = build()
    action = torch.tensor([[3.0, -0.5, -4.0, 1.0, 0.0, 2.0]])
    scaled = model.action_conditioner(State(), action)
    assert torch.equal(scaled, torch.tensor([[1.0, -0.5, -1.0, 1.0, 0.0, 1.0]]))


def test_reset_on_is_first_restarts_from_the_zero_carry() -> None:
    torch.manual_seed(0)
    model = build()
    batch = make_batch(b=2, t=4)
    is_first = batch["is_first"].clone()
    is_first[1, 2] = True
    deter, _, post = observe_sequence(model, batch["obs"], batch["actions"], is_first)
    dyn = model.dynamics_model
    zero = dyn.initial_state(1)
    fresh = dyn.core(zero["deter"], zero["stoch"], torch.zeros(1, 6))
    assert torch.allclose(deter[1, 2], fresh[0], atol=1e-6)
    assert torch.allclose(deter[0, 0], fresh[0], atol=1e-6)
    assert not torch.allclose(deter[0, 2], fresh[0], atol=1e-3)
    embed = model.observation_encoder(batch["obs"][1, 2][None])["embed"]
    assert torch.allclose(post[1, 2], dyn.post_logits(fresh, embed)[0], atol=1e-5)


def test_rollout_equals_repeated_transition_and_decode() -> None:
    model = build()
    start = model.encode(torch.randn(3, 24))
    actions = torch.rand(3, 4, 6) * 2 - 1
    torch.manual_seed(7)
    traj = model.rollout(start, actions)
    torch.manual_seed(7)
    state = start
    for t in range(4):
        state = model.transition(state, actions[:, t])
        decoded = model.decode(state).predictions
        assert torch.allclose(traj.states["deter"][:, t + 1], state["deter"], atol=1e-6)
        assert torch.equal(traj.states["stoch"][:, t + 1], state["stoch"])
        for key, value in decoded.items():
            assert torch.allclose(traj.predictions[key][:, t], value, atol=1e-5), key
    assert traj.states["deter"].shape == (3, 5, 64)
    assert traj.rewards.shape == (3, 4) and traj.continues.shape == (3, 4)


def test_image_observations_encode_decode_and_train() -> None:
    torch.manual_seed(0)
    model = build(obs_shape=(3, 64, 64))
    state = model.encode(torch.rand(2, 3, 64, 64))
    assert state["deter"].shape == (2, 64)
    assert model.observation_encoder.embed_dim == 4 * 4 * 16
    assert model.decode(state).predictions["obs"].shape == (2, 3, 64, 64)
    batch = make_batch(b=1, t=3, obs_shape=(3, 64, 64))
    batch = batch.replace(obs=batch["obs"].sigmoid())
    out = model.loss(batch)
    assert set(out.components) == set(LOSS_TERMS) and torch.isfinite(out.loss)


def test_dict_observations_follow_sorted_keys() -> None:
    model = build(obs_keys=["velocity:9", "height:", "orientations:14"])
    obs = {
        "orientations": torch.randn(2, 14),
        "height": torch.rand(2),
        "velocity": torch.randn(2, 9),
    }
    enc = model.observation_encoder
    flat = enc.vector_input(obs, 1)
    expected = torch.cat([obs["height"][:, None], obs["orientations"], obs["velocity"]], -1)
    assert torch.allclose(flat, symlog(expected))
    with pytest.raises(ContractViolation, match="missing keys"):
        enc({"height": torch.rand(2)})
    state = model.encode(obs)
    preds = model.decode(state).predictions
    assert preds["obs_height"].shape == (2,) and preds["obs_velocity"].shape == (2, 9)
    seq = {k: v[:, None].repeat(1, 4, *([1] * (v.dim() - 1))) for k, v in obs.items()}
    out = model.loss(make_batch(b=2, t=4).replace(obs=seq))
    assert torch.isfinite(out.loss.detach())


def test_dict_observations_are_in_the_bound_contract() -> None:
    model = build(obs_keys=["velocity:9", "height:", "orientations:14"])
    contract = model.bound_contract()
    assert {k: v.shape for k, v in contract.observation.items()} == {
        "height": (),
        "orientations": (14,),
        "velocity": (9,),
    }
    assert {"obs_height", "obs_orientations", "obs_velocity"} <= set(contract.predictions)
    assert "obs" not in contract.predictions
    good = {
        "height": torch.rand(2),
        "orientations": torch.randn(2, 14),
        "velocity": torch.randn(2, 9),
    }
    with pytest.raises(ContractViolation, match=r"obs\['velocity'\]: expected shape"):
        model.encode({**good, "velocity": torch.randn(2, 8)})
    with pytest.raises(ContractViolation, match="missing \\['height'\\]"):
        model.encode({k: v for k, v in good.items() if k != "height"})
    trajectory = model.rollout(model.encode(good), torch.zeros(2, 3, 6))
    contract.validate_predictions(trajectory.predictions, (2, 3), "trajectory.predictions")


def test_dict_observation_model_passes_conformance() -> None:
    from worldflux.conformance import check_model

    model = build(obs_keys=["velocity:9", "height:", "orientations:14"])
    report = check_model(model, level="reference", profile="ci", exclude_checks=["parity"])
    (result,) = report.results
    failed = [(c.id, c.message) for c in result.checks if c.status == "fail"]
    assert not failed, failed
    assert result.achieved_maturity == "reference" and result.passed


def test_malformed_obs_keys_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="obs_keys"):
        build(obs_keys=["velocity"])


def test_wrong_observation_shape_names_the_tensor() -> None:
    model = build()
    with pytest.raises(ContractViolation, match="obs"):
        model.encode(torch.randn(2, 23))


# -- objective and optimiser ---------------------------------------------------------------------
def test_loss_components_gradients_and_training_step() -> None:
    torch.manual_seed(0)
    model = build()
    batch = make_batch()
    out = model.loss(batch)
    assert set(out.components) == set(LOSS_TERMS)
    assert all(torch.isfinite(v) for v in out.components.values())
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    # every world-model parameter learns at once; zero-init output layers block their trunks
    assert float(grads["dynamics_model.dyngru.kernel"].abs().sum()) > 0
    assert float(grads["decoder_module.rew.out.weight"].abs().sum()) > 0
    assert float(grads["objective.val.out.weight"].abs().sum()) > 0
    opt = model.objective.make_optimizers(model)["model"]
    assert isinstance(opt, DreamerOptimizer)
    slow_before = [p.clone() for p in model.objective.slowval.parameters()]
    for _ in range(2):
        opt.zero_grad()
        model.loss(batch).loss.backward()
        opt.step()
        model.objective.after_step(model)
    val = [p.detach() for p in model.objective.val.parameters()]
    slow = list(model.objective.slowval.parameters())
    moved = [not torch.equal(a, b) for a, b in zip(slow_before, slow, strict=True)]
    assert any(moved)
    # EMA: the slow copy lags behind the critic
    diff_val = sum(float((v - s0).abs().sum()) for v, s0 in zip(val, slow_before, strict=True))
    diff_slow = sum(float((s - s0).abs().sum()) for s, s0 in zip(slow, slow_before, strict=True))
    assert 0 < diff_slow < diff_val


def test_discrete_actions_train() -> None:
    torch.manual_seed(0)
    model = build(action_type="discrete", action_dim=5)
    out = model.loss(make_batch(discrete=5))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    state = model.encode(torch.randn(2, 24))
    assert model.transition(state, torch.tensor([0, 4]))["deter"].shape == (2, 64)


def test_optimizer_warmup_agc_and_rms_scaling() -> None:
    p = torch.nn.Parameter(torch.ones(4))
    opt = DreamerOptimizer([p], lr=1e-2, warmup=2)
    p.grad = torch.full((4,), 100.0)
    opt.step()  # first update: warmup learning rate 0
    assert torch.equal(p.data, torch.ones(4))
    p.grad = torch.full((4,), 100.0)
    opt.step()  # lr 0.5 * 1e-2; a constant gradient normalises to an update of 1 per element
    assert torch.allclose(p.data, torch.full((4,), 1 - 0.5e-2), atol=1e-6)
    q = torch.nn.Parameter(torch.full((4,), 2.0))
    agc = DreamerOptimizer([q], lr=1.0, warmup=0, beta1=0.0, beta2=0.0)
    q.grad = torch.tensor([1e3, 0.0, 0.0, 0.0])
    agc.step()  # AGC only rescales; the RMS step then normalises the direction
    assert torch.allclose(q.data, torch.tensor([1.0, 2.0, 2.0, 2.0]))
    with pytest.raises(ValueError, match="invalid"):
        DreamerOptimizer([q], lr=-1.0)


def _per_tensor_reference(
    params: list[torch.Tensor], grads: list[list[torch.Tensor]], lr: float, warmup: int
) -> list[torch.Tensor]:
    """The optimiser's recipe written tensor by tensor (module docstring), as an oracle."""
    out = [p.detach().clone() for p in params]
    nus = [torch.zeros_like(p) for p in out]
    mus = [torch.zeros_like(p) for p in out]
    for t, step_grads in enumerate(grads, start=1):
        for p, g, nu, mu in zip(out, step_grads, nus, mus, strict=True):
            upper = 0.3 * torch.clamp(torch.linalg.vector_norm(p), min=1e-3)
            g = g * (1.0 / torch.clamp(torch.linalg.vector_norm(g) / upper, min=1.0))
            nu.mul_(0.999).addcmul_(g, g, value=1 - 0.999)
            mu.mul_(0.9).add_(g / ((nu / (1 - 0.999**t)).sqrt() + 1e-20), alpha=1 - 0.9)
            step_lr = lr * min(1.0, (t - 1) / warmup) if warmup else lr
            if step_lr:
                p.add_(mu / (1 - 0.9**t), alpha=-step_lr)
    return out


def test_optimizer_matches_the_per_tensor_recipe_bitwise() -> None:
    """The foreach implementation gives exactly the per-tensor recipe's parameters, including
    steps where AGC clips (large gradients) and the warmup's zero first learning rate."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(16, 5), (7,), (3, 4, 2), (1,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    grads = [
        [torch.randn(s, generator=gen) * (100.0 if t == 2 else 0.1) for s in shapes]
        for t in range(5)
    ]
    expected = _per_tensor_reference(list(params), grads, lr=1e-2, warmup=3)
    opt = DreamerOptimizer(params, lr=1e-2, warmup=3)
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.clone()
        opt.step()
    for p, e in zip(params, expected, strict=True):
        assert torch.equal(p.detach(), e)


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build()
    model.loss(make_batch()).loss.backward()
    path = model.save_pretrained(tmp_path / "ckpt")
    loaded = type(model).from_pretrained(path)
    state = model.encode(torch.randn(2, 24))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(
        model.decode(state).predictions["obs"], loaded.decode(state).predictions["obs"]
    )


def test_loss_and_rollout_run_in_bfloat16() -> None:
    torch.manual_seed(0)
    model = build().to(torch.bfloat16)
    out = model.loss(make_batch())
    assert torch.isfinite(out.loss.detach()) and set(out.components) == set(LOSS_TERMS)
    out.loss.backward()
    state = model.encode(torch.randn(2, 24))
    traj = model.rollout(state, torch.zeros(2, 3, 6))
    assert traj.states["deter"].dtype == torch.bfloat16
    assert torch.equal(traj.rewards.float(), torch.zeros(2, 3))


# -- acting (official Agent.policy) -----------------------------------------------------------


def test_act_is_a_posterior_step_then_the_actor() -> None:
    torch.manual_seed(0)
    model = build().eval()
    obs = torch.randn(3, 2, 24)
    action, carry = model.act(obs[0], None, is_first=True)
    assert action.shape == (2, 6) and action.dtype == torch.float32
    assert bool((action.abs() <= 1.0).all())
    state, prev = carry
    assert torch.equal(prev, action)
    # the carry is the posterior state: the same as encoding obs from the zero carry
    torch.manual_seed(1)
    _, (again, _) = model.act(obs[0], None, is_first=True)
    torch.manual_seed(1)
    expected = model.encode(obs[0])
    assert torch.equal(again["deter"], expected["deter"])
    # the next step continues from the carry and the previous action
    torch.manual_seed(2)
    _, (nxt, _) = model.act(obs[1], carry, is_first=False)
    torch.manual_seed(2)
    manual = model.encode(obs[1], state, action)
    assert torch.equal(nxt["deter"], manual["deter"])


def test_act_eval_mode_is_deterministic_and_is_first_resets_the_carry() -> None:
    torch.manual_seed(0)
    model = build().eval()
    obs = torch.randn(2, 24)
    _, carry = model.act(obs, None, is_first=True)

    def seeded(seed: int, *args: Any, **kwargs: Any) -> torch.Tensor:
        torch.manual_seed(seed)  # the posterior latent is sampled in every mode, as official
        return model.act(*args, **kwargs)[0]

    first = seeded(3, obs, None, is_first=True, eval_mode=True)
    reset = seeded(3, obs, carry, is_first=True, eval_mode=True)
    assert torch.equal(first, reset)  # is_first ignores the carry (official reset)
    continued = seeded(3, obs, carry, is_first=False, eval_mode=True)
    assert not torch.equal(first, continued)
    # eval mode takes the actor's mean: no action noise on top of the latent sample
    assert torch.equal(continued, seeded(3, obs, carry, is_first=False, eval_mode=True))
    assert not torch.equal(continued, seeded(3, obs, carry, is_first=False))


def test_act_discrete_returns_indices() -> None:
    torch.manual_seed(0)
    model = build(action_dim=3, action_type="discrete").eval()
    obs = torch.randn(4, 24)
    action, carry = model.act(obs, None, is_first=True)
    assert action.shape == (4,) and action.dtype == torch.int64
    assert bool(((action >= 0) & (action < 3)).all())
    action2, _ = model.act(obs, carry, is_first=False, eval_mode=True)
    assert action2.shape == (4,) and action2.dtype == torch.int64


def test_act_rejects_a_bad_observation() -> None:
    model = build()
    with pytest.raises(ContractViolation, match="obs"):
        model.act(torch.randn(2, 23), None, is_first=True)
