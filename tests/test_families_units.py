"""Correctness anchors of the non-REFERENCE families' building blocks (math, masks, renderers).

These pin what each piece computes, independently of any model: EDM preconditioning and sampling,
the VQ straight-through estimator, the causal masks, V-JEPA 2 block causality (no leak from later
frames), the diagonal SSM step, semi-implicit Euler and the Gaussian renderer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from test_families_harness import (
    build,
    load_spec,
    random_actions,
    random_batch,
    random_obs,
    registered,
    single_thread,
)

from worldflux.families.renderer3d.camera import default_intrinsics
from worldflux.families.renderer3d.slots import render_gaussians
from worldflux.families.shared.edm import EDM, sinusoidal_embedding
from worldflux.families.shared.transformer import causal_mask
from worldflux.families.vjepa2.slots import block_causal_mask


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


# -- EDM --------------------------------------------------------------------------------------
def test_edm_scalings_match_the_formulas() -> None:
    edm = EDM(sigma_data=0.5)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    c_in, c_skip, c_out, c_noise = edm.scalings(sigma)
    var = sigma**2 + 0.25
    torch.testing.assert_close(c_in, 1 / var.sqrt())
    torch.testing.assert_close(c_skip, 0.25 / var)
    torch.testing.assert_close(c_out, sigma * 0.5 / var.sqrt())
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    # EDM identity: c_skip² (σ² + σ_d²) + c_out² = σ_d²
    torch.testing.assert_close(c_skip**2 * var + c_out**2, torch.full_like(sigma, 0.25))


def test_edm_schedule_is_karras_and_ends_at_zero() -> None:
    edm = EDM(sigma_min=2e-3, sigma_max=5.0, rho=7.0)
    sigmas = edm.schedule(3, torch.zeros(1))
    assert sigmas.shape == (4,)
    torch.testing.assert_close(sigmas[0], torch.tensor(5.0))
    torch.testing.assert_close(sigmas[2], torch.tensor(2e-3))
    assert float(sigmas[3]) == 0.0
    mid = ((5.0 ** (1 / 7) + 2e-3 ** (1 / 7)) / 2) ** 7
    assert math.isclose(float(sigmas[1]), mid, rel_tol=1e-5)


def test_edm_sampler_with_an_oracle_denoiser_returns_the_data_point() -> None:
    """With D(x, σ) = x0 for every σ, Euler sampling lands exactly on x0."""
    edm = EDM(sigma_data=0.5)
    x0 = torch.tensor([[0.3, -0.7, 1.2]])

    def oracle_net(x_scaled: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        sigma = (4 * c_noise).exp()
        c_in, c_skip, c_out, _ = edm.scalings(sigma)
        x = x_scaled / c_in[:, None]
        return (x0 - c_skip[:, None] * x) / c_out[:, None]

    for noise in (torch.zeros_like(x0), torch.randn_like(x0)):
        torch.testing.assert_close(edm.sample(oracle_net, noise, steps=3), x0)
    # and the training loss of the oracle is zero
    sigma = torch.tensor([0.7])
    loss = edm.loss(oracle_net, x0, sigma, torch.randn_like(x0))
    torch.testing.assert_close(loss, torch.zeros(1), atol=1e-10, rtol=0)


def test_sinusoidal_embedding_shape_and_range() -> None:
    out = sinusoidal_embedding(torch.tensor([0.0, 1.5]), 8)
    assert out.shape == (2, 8)
    assert bool((out.abs() <= 1).all())


# -- masks ------------------------------------------------------------------------------------
def test_causal_mask_hides_the_future_and_invalid_keys() -> None:
    valid = torch.tensor([[0.0, 1.0, 1.0]])
    mask = causal_mask(valid)[0]
    expected = torch.tensor([[True, False, False], [False, True, False], [False, True, True]])
    assert torch.equal(mask, expected)


def test_block_causal_mask_sees_whole_earlier_frames() -> None:
    valid = torch.tensor([[1.0, 1.0]])
    mask = block_causal_mask(valid, 2)[0]
    expected = torch.tensor(
        [
            [True, True, False, False],
            [True, True, False, False],
            [True, True, True, True],
            [True, True, True, True],
        ]
    )
    assert torch.equal(mask, expected)
    padded = block_causal_mask(torch.tensor([[0.0, 1.0]]), 2)[0]
    assert not bool(padded[2:, :2].any())  # padding frames are invisible to real ones


# -- families ---------------------------------------------------------------------------------
def test_vjepa2_prediction_ignores_padding_content() -> None:
    """Frames marked invalid cannot influence the prediction (they are masked keys)."""
    with registered("vjepa2") as pair:
        model = build(*pair)
        obs, action = random_obs(model, (1,)), random_actions(model, (1,))
        with torch.no_grad():
            state = model.encode(obs)
            polluted = state.replace(
                frames=torch.cat(
                    [torch.randn_like(state["frames"][:, :1]) * 5, state["frames"][:, 1:]], 1
                )
            )
            a = model.transition(state, action)["frames"][:, -1]
            b = model.transition(polluted, action)["frames"][:, -1]
        torch.testing.assert_close(a, b)


def test_token_quantizer_picks_the_nearest_code_with_straight_through() -> None:
    with registered("token") as pair:
        model = build(*pair)
        encoder: Any = model.observation_encoder
        obs = random_obs(model, (3,)).requires_grad_(True)
        z_e, z_q, tokens = encoder.quantize(obs)
        dist = torch.cdist(z_e.flatten(0, 1), encoder.codebook.weight)
        assert torch.equal(tokens.flatten(), dist.argmin(-1))
        torch.testing.assert_close(z_q, encoder.codebook.weight[tokens])
        codes = encoder(obs)["codes"]
        torch.testing.assert_close(codes, z_q)  # forward value is the quantised code ...
        codes.sum().backward()
        assert obs.grad is not None and bool(obs.grad.abs().sum() > 0)  # ... gradient passes


def test_token_rollout_generates_valid_tokens() -> None:
    with registered("token") as pair:
        model = build(*pair)
        vocab = int(model.config.vocab_size)  # type: ignore[attr-defined]
        with torch.no_grad():
            traj = model.rollout(
                model.encode(random_obs(model, (2,))), random_actions(model, (2, 3))
            )
        tokens = traj.states["tokens"]
        assert tokens.dtype == torch.int64
        assert int(tokens.min()) >= 0 and int(tokens.max()) < vocab
        assert bool((traj.states["valid"][:, -1] == 1).all())


def test_physics_integrates_semi_implicit_euler() -> None:
    with registered("physics") as pair:
        model = build(*pair)
        dynamics: Any = model.dynamics_model
        conditioner: Any = model.action_conditioner
        state = model.encode(random_obs(model, (2,)))
        action = random_actions(model, (2,))
        with torch.no_grad():
            nxt = model.transition(state, action)
            action_input = conditioner(state, action)
            acc = dynamics.force(action_input).view_as(state["vel"])
        dt = float(model.config.dt)  # type: ignore[attr-defined]
        vel = state["vel"] + dt * acc
        torch.testing.assert_close(nxt["vel"], vel)
        torch.testing.assert_close(nxt["pos"], state["pos"] + dt * vel)  # uses the NEW velocity


def test_renderer_draws_a_centred_gaussian_and_respects_depth() -> None:
    pos = torch.tensor([[[0.0, 0.0, 2.0]]])
    eye, zero = torch.eye(3), torch.zeros(3)  # camera at the world origin looking along +z
    image = render_gaussians(
        pos,
        torch.tensor([[0.3]]),
        torch.tensor([[0.9]]),
        torch.ones(1, 1, 1),
        torch.zeros(1),
        (9, 9),
        eye,
        zero,
        default_intrinsics((9, 9), 1.0),
    )
    assert image.shape == (1, 1, 9, 9)
    assert int(image[0, 0].argmax()) == 4 * 9 + 4  # peak at the centre pixel
    torch.testing.assert_close(image[0, 0, 4, 4], torch.tensor(0.9))
    # two overlapping opaque primitives: the nearer one's colour wins, whatever the order
    pos2 = torch.tensor([[[0.0, 0.0, 3.0], [0.0, 0.0, 1.5]]])
    colors = torch.tensor([[[1.0], [-1.0]]])
    args = (torch.tensor([[1.0, 1.0]]), torch.tensor([[0.999, 0.999]]))
    camera = (eye, zero, default_intrinsics((5, 5), 1.0))
    front = render_gaussians(pos2, *args, colors, torch.zeros(1), (5, 5), *camera)
    swapped = render_gaussians(pos2.flip(1), *args, colors.flip(1), torch.zeros(1), (5, 5), *camera)
    assert float(front[0, 0, 2, 2]) < -0.9
    torch.testing.assert_close(front, swapped)


def test_gan_generator_loss_does_not_train_the_discriminator() -> None:
    with registered("gan") as pair:
        model = build(*pair)
        model.train()
        out = model.loss(random_batch(model))
        objective: Any = model.objective
        disc = list(objective.discriminator.parameters())
        grads = torch.autograd.grad(out.components["generator"], disc, allow_unused=True)
        assert all(g is None or not bool(g.abs().sum() > 0) for g in grads)
        grads = torch.autograd.grad(out.components["discriminator"], disc, allow_unused=True)
        assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)


def _gan_latent_error(latent_coef: float, updates: int = 200) -> float:
    """gan:ci trained on a point moved by its actions (``x' = clip(x + 0.2 a)``), then its one-step
    latent prediction error over the next latent's variance (eval mode, fresh data)."""
    from worldflux.core.types import Batch, State
    from worldflux.factory import create_world_model

    def toy(n: int, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        obs, acts = torch.zeros(n, steps, 4), torch.rand(n, steps, 2, generator=gen) * 2 - 1
        obs[:, 0] = torch.rand(n, 4, generator=gen) * 2 - 1
        for t in range(1, steps):
            obs[:, t] = obs[:, t - 1]
            obs[:, t, :2] = (obs[:, t - 1, :2] + 0.2 * acts[:, t - 1]).clamp(-1, 1)
        return obs, acts

    torch.manual_seed(0)
    model = create_world_model(
        "gan:ci", obs_shape=(4,), action_dim=2, objective={"latent_coef": latent_coef}
    )
    objective: Any = model.objective
    opt = objective.make_optimizers(model)["model"]
    flags = torch.zeros(32, 8, dtype=torch.bool)
    for update in range(updates):
        obs, acts = toy(32, 8, update)
        batch = Batch(obs=obs, actions=acts, rewards=torch.zeros(32, 8), terminated=flags,
                      truncated=flags, is_first=flags)  # fmt: skip
        opt.zero_grad()
        model.loss(batch).loss.backward()
        opt.step()
    model.eval()
    obs, acts = toy(256, 2, 10_000)
    with torch.no_grad():
        z0, z1 = model.encode(obs[:, 0])["latent"], model.encode(obs[:, 1])["latent"]
        pred = model.transition(State(latent=z0), acts[:, 0])["latent"]
    return float((pred - z1).pow(2).mean() / z1.var(0).mean())


def test_gan_latent_regression_keeps_the_generator_on_the_data() -> None:
    """Conditional GANs' regression term: with it the generated next latent lands near the real
    one (0.06 of its variance here), the adversarial term alone leaves it far (0.24)."""
    with_term, without = _gan_latent_error(1.0), _gan_latent_error(0.0)
    assert with_term < 0.5 * without, (with_term, without)


@pytest.mark.parametrize(
    "family", ["jepa", "vjepa2", "token", "diffusion", "dit", "ssm", "renderer3d", "physics", "gan"]
)
def test_a_config_lacking_a_field_gets_the_specs_default(family: str) -> None:
    """Defaults have one source, the spec: a slot swapped into a model whose config lacks one of
    its hyperparameters reads the default from its own family's spec."""
    from types import SimpleNamespace

    from worldflux.core.components import BuildContext
    from worldflux.core.exceptions import ConfigurationError
    from worldflux.families.shared.hparams import family_hparam

    ctx = BuildContext(config=SimpleNamespace())  # type: ignore[arg-type]
    for name, prop in load_spec(family)["config"]["properties"].items():
        value = family_hparam(ctx, family, name)
        default = prop["default"]
        assert value == (tuple(default) if isinstance(default, list) else default), name
    override = BuildContext(config=SimpleNamespace(noise_dim=3))  # type: ignore[arg-type]
    assert family_hparam(override, "gan", "noise_dim") == 3
    with pytest.raises(ConfigurationError, match=r"no hyperparameter 'latnet_dim'.*latent_dim"):
        family_hparam(ctx, "jepa", "latnet_dim")


@pytest.mark.parametrize(
    ("model_id", "overrides", "match"),
    [
        ("vjepa2-ci", {"obs_shape": (3, 30, 30)}, "patch_size"),
        ("vjepa2-ci", {"enc_heads": 3}, "enc_heads"),
        ("vjepa2-ci", {"pred_heads": 3}, "pred_heads"),
        ("token-ci", {"embed_dim": 15}, "num_heads"),
        ("dit-ci", {"latent_dim": 9}, "dit_tokens"),
        ("dit-ci", {"dit_heads": 3}, "dit_heads"),
        ("diffusion-ci", {"context_frames": 1}, "context_frames"),
        ("renderer3d-ci", {"obs_shape": (24,)}, "obs_shape"),
    ],
)
def test_bad_configs_raise_configuration_errors(
    model_id: str, overrides: dict[str, Any], match: str
) -> None:
    from worldflux.core.exceptions import ConfigurationError
    from worldflux.factory import create_world_model

    with pytest.raises(ConfigurationError, match=match):
        create_world_model(model_id, **overrides)


def test_token_teacher_forcing_matches_generation() -> None:
    """The loss path (one teacher-forced pass) and the rollout path (token by token) agree."""
    with registered("token") as pair:
        model = build(*pair)
        dynamics: Any = model.dynamics_model
        conditioner: Any = model.action_conditioner
        with torch.no_grad():
            state = model.encode(random_obs(model, (2,)))
            action_input = conditioner(state, random_actions(model, (2,)))
            nxt = dynamics(state, action_input)
            generated = nxt["tokens"][:, -1]
            logits, hidden = dynamics.teacher_forced(state, action_input, generated)
        assert torch.equal(logits.argmax(-1), generated)  # greedy decoding reproduces itself
        torch.testing.assert_close(hidden, nxt["hidden"])
