"""DIAMOND's defining mechanisms in the ``diffusion`` family, each shown to work.

The U-Net denoiser for images (shapes, conditioning through AdaGroupNorm, learns to denoise a
toy image set), stochastic sampling in training mode vs. deterministic in eval mode, and the
separate reward/termination model (learns; sends no gradient into the denoiser). The maturity
obligations are judged by tests/test_families_maturity.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from test_families_harness import build, random_batch, registered, single_thread
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.types import Batch, State
from worldflux.families.diffusion.rewend import RewEndHeads
from worldflux.families.diffusion.unet import AdaGroupNorm, DiffusionUNet
from worldflux.families.shared.edm import EDM

IMAGE = {"obs_shape": (3, 8, 8), "action_dim": 2}


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    with single_thread():
        yield


def _model(**overrides: Any) -> Any:
    with registered("diffusion") as classes:
        return build(*classes, **{**IMAGE, **overrides})


def _unzero(module: nn.Module, seed: int = 0) -> None:
    """Give the zero-initialised output convs (DIAMOND's init) random weights."""
    gen = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        if not bool(p.abs().sum() > 0):
            p.data.copy_(torch.randn(p.shape, generator=gen) * 0.1)


# -- 1. the U-Net denoiser ----------------------------------------------------------------------
def test_images_get_a_unet_and_vectors_the_film_mlp() -> None:
    image, vector = _model(), _model(obs_shape=(24,), action_dim=6)
    unet = image.dynamics_model.denoiser
    assert isinstance(unet, DiffusionUNet)
    assert not isinstance(vector.dynamics_model.denoiser, DiffusionUNet)
    # 2 resolutions: one stride-2 down sampling and one up sampling; AdaGroupNorms everywhere
    assert len(unet.downsample) == 1 and len(unet.upsample) == 1
    assert sum(isinstance(m, AdaGroupNorm) for m in unet.modules()) >= 6
    k = image.dynamics_model.context
    assert unet.conv_in.in_channels == (k + 1) * 3  # K past frames stacked with the noisy one


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 10, 6), (1, 7, 9)])
def test_unet_shapes(shape: tuple[int, ...]) -> None:
    model = _model(obs_shape=shape)
    dyn = model.dynamics_model
    k, e = dyn.context, dyn.embed_dim
    x = torch.randn(3, *shape)
    out = dyn.denoiser(
        x, torch.randn(3), torch.randn(3, k, *shape), torch.randn(3, k, e), torch.ones(3, k)
    )
    assert out.shape == x.shape
    state = model.encode(torch.rand(3, *shape))
    nxt = model.transition(state, torch.rand(3, 2) * 2 - 1)
    assert nxt["frames"].shape == (3, k, *shape)
    assert model.decode(nxt).predictions["obs"].shape == (3, *shape)


def test_ada_group_norm_takes_scale_and_shift_from_the_conditioning() -> None:
    torch.manual_seed(0)
    norm = AdaGroupNorm(4, cond_dim=3)
    x, cond = torch.randn(2, 4, 5, 5), torch.randn(2, 3)
    scale, shift = norm.linear(cond).chunk(2, dim=-1)
    expected = (
        F.group_norm(x, norm.groups) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    )
    torch.testing.assert_close(norm(x, cond), expected)
    assert not torch.allclose(norm(x, cond), norm(x, torch.zeros_like(cond)))


def test_the_unet_output_depends_on_action_noise_level_and_past_frames() -> None:
    model = _model()
    dyn = model.dynamics_model
    _unzero(dyn.denoiser)
    state = model.encode(torch.rand(2, 3, 8, 8))
    state = model.encode(torch.rand(2, 3, 8, 8), state, torch.zeros(2, 2))
    x, c_noise = torch.randn(2, 3, 8, 8), torch.zeros(2)

    def out(action: Tensor, c: Tensor = c_noise, frames: Tensor | None = None) -> Tensor:
        embed = model.action_conditioner(state, action)
        net = dyn._net(state if frames is None else state.replace(frames=frames), embed)
        result: Tensor = net(x, c)
        return result

    zero = out(torch.zeros(2, 2))
    assert (zero - out(torch.full((2, 2), 0.9))).abs().max() > 1e-3  # the action
    assert (zero - out(torch.zeros(2, 2), c_noise + 1.0)).abs().max() > 1e-3  # the noise level
    assert (zero - out(torch.zeros(2, 2), frames=state["frames"].flip(0))).abs().max() > 1e-3
    torch.testing.assert_close(zero, out(torch.zeros(2, 2)))


def _toy_frames(n: int, seed: int) -> Tensor:
    """``[n, 3, 8, 8]`` black frames with one red 2x2 square at a random place."""
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randint(0, 6, (n, 2), generator=gen)
    frames = torch.zeros(n, 3, 8, 8)
    for i in range(n):
        frames[i, 0, pos[i, 0] : pos[i, 0] + 2, pos[i, 1] : pos[i, 1] + 2] = 1.0
    return frames


def test_the_unet_learns_to_denoise_a_toy_image_set() -> None:
    """Next frame = the last frame shifted right by one pixel: the EDM loss falls far below its
    start, and the deterministic sample beats copying the last frame and the mean frame."""
    model = _model()
    dyn = model.dynamics_model
    torch.manual_seed(0)
    frames = _toy_frames(64, seed=1)
    target = torch.roll(frames, 1, dims=-1)
    state = dyn.observe(dyn.initial_state(64), None, State(frame=frames))
    action = model.action_conditioner(state, torch.zeros(64, 2)).detach()
    opt = torch.optim.Adam(dyn.denoiser.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = dyn.denoising_loss(state, action, target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.25 * first, (first, last)
    with torch.no_grad():
        sample = dyn.sample_next(state, action)
    error = float((sample - target).pow(2).mean())
    assert error < 0.5 * float((frames - target).pow(2).mean())  # copy-last
    assert error < 0.5 * float((target.mean(0) - target).pow(2).mean())  # the mean frame


# -- 2. stochastic sampling ---------------------------------------------------------------------
def _draw(model: Any, seed: int) -> Tensor:
    torch.manual_seed(100)
    obs = torch.rand(2, *model.config.obs_shape)
    state = model.encode(obs)
    torch.manual_seed(seed)
    frame: Tensor = model.transition(state, torch.zeros(2, 2))["frames"][:, -1]
    return frame


@pytest.mark.parametrize("churn", [0.0, 2.0])
def test_train_mode_draws_differ_eval_mode_draws_are_equal(churn: float) -> None:
    model = _model(sampling_churn=churn)
    _unzero(model.dynamics_model.denoiser)
    model.eval()
    assert torch.equal(_draw(model, 0), _draw(model, 1))  # eval: deterministic
    model.train()
    assert not torch.allclose(_draw(model, 0), _draw(model, 1))  # train: from noise
    assert torch.equal(_draw(model, 3), _draw(model, 3))  # same seed, same draw
    model.eval()
    with model.dynamics_model.stochastic():  # asked for in eval mode
        assert not torch.allclose(_draw(model, 0), _draw(model, 1))
    assert torch.equal(_draw(model, 0), _draw(model, 1))  # and back to deterministic


def test_stochastic_sampling_starts_from_noise_at_sigma_max() -> None:
    model = _model()
    dyn = model.dynamics_model
    seen: list[tuple[Tensor, Tensor]] = []

    def spy(x: Tensor, c_noise: Tensor) -> Tensor:
        seen.append((x, c_noise))
        return torch.zeros_like(x)

    edm, noise = dyn.edm, torch.randn(512, 3, 8, 8)
    edm.sample(spy, noise, 3)
    x_in, c_noise = seen[0]
    c_in = 1 / math.sqrt(edm.sigma_max**2 + edm.sigma_data**2)
    torch.testing.assert_close(x_in, noise * edm.sigma_max * c_in)  # x = sigma_max * noise
    torch.testing.assert_close(c_noise, torch.full((512,), math.log(edm.sigma_max) / 4))
    seen.clear()
    edm.sample(spy, torch.zeros_like(noise), 3)
    assert not bool(seen[0][0].abs().sum() > 0)  # deterministic: from the prior mean


def test_churn_adds_fresh_noise_inside_its_window_only() -> None:
    edm = EDM(sigma_data=0.5)
    torch.manual_seed(0)
    w = torch.randn(6, 6) * 0.3

    def net(x: Tensor, c_noise: Tensor) -> Tensor:
        return torch.tanh(x @ w) + c_noise[:, None]

    noise = torch.randn(4, 6)
    torch.manual_seed(1)
    a = edm.sample(net, noise, 3, churn=3.0)
    torch.manual_seed(2)
    b = edm.sample(net, noise, 3, churn=3.0)
    assert not torch.allclose(a, b)  # fresh noise at every step
    # outside the churn window (sigma in [tmin, tmax]) nothing is added
    out = edm.sample(net, noise, 3, churn=3.0, churn_tmin=100.0)
    torch.testing.assert_close(out, edm.sample(net, noise, 3))


# -- 3. the separate reward/termination model ---------------------------------------------------
def _reward_batch(model: Any, seed: int = 0) -> Batch:
    """Reward = sign of the first action component; termination where the second one is > 0."""
    batch = random_batch(model, b=8, t=6, seed=seed)
    actions = batch["actions"]
    return Batch(
        obs=batch["obs"],
        actions=actions,
        rewards=torch.sign(actions[..., 0]),
        terminated=actions[..., 1] > 0,
        truncated=batch["truncated"],
        is_first=batch["is_first"],
    )


def test_the_reward_model_sends_no_gradient_into_the_denoiser() -> None:
    model = _model()
    _unzero(model.dynamics_model)  # DIAMOND's zero-initialised convs would hide a gradient path
    model.train()
    out = model.objective(model, _reward_batch(model))  # the world-model loss (no behaviour)
    denoiser = list(model.dynamics_model.denoiser.parameters())
    denoiser += list(model.action_conditioner.parameters())
    rew_end = list(model.dynamics_model.rew_end.parameters())
    rew_end += list(model.decoder_module.parameters())
    for term in ("reward", "continue"):
        grads = torch.autograd.grad(
            out.components[term], denoiser + rew_end, allow_unused=True, retain_graph=True
        )
        assert all(g is None or not bool(g.abs().sum() > 0) for g in grads[: len(denoiser)]), term
        assert all(g is not None for g in grads[len(denoiser) :]), term
    grads = torch.autograd.grad(out.components["denoising"], rew_end, allow_unused=True)
    assert all(g is None or not bool(g.abs().sum() > 0) for g in grads)


@pytest.mark.parametrize("obs", [IMAGE, {"obs_shape": (5,), "action_dim": 2}])
def test_the_reward_model_learns(obs: dict[str, Any]) -> None:
    """Only the reward/termination model's parameters are trained, on its own loss terms."""
    model = _model(**obs)
    model.train()
    batch = _reward_batch(model, seed=2)
    params = list(model.dynamics_model.rew_end.parameters())
    params += list(model.decoder_module.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    history = []
    for _ in range(120):
        out = model.objective(model, batch)
        loss = out.components["reward"] + out.components["continue"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((float(out.components["reward"]), float(out.components["continue"])))
    for i, name in enumerate(("reward", "continue")):
        first = sum(h[i] for h in history[:5]) / 5
        last = sum(h[i] for h in history[-5:]) / 5
        assert last < 0.5 * first, (name, first, last)


def test_the_reward_model_is_recurrent_and_classifies_the_sign() -> None:
    """Its LSTM carries the episode: the same last transition after another history gives
    another state and prediction; the reward is the expected sign of 3 classes."""
    model = _model()
    _unzero(model.decoder_module)
    _unzero(model.dynamics_model.rew_end)
    frame = torch.rand(1, 3, 8, 8)
    hidden, reward = [], []
    with torch.no_grad():
        for first_action in (0.9, -0.9):
            state = model.encode(frame)
            state = model.encode(frame, state, torch.full((1, 2), first_action))
            state = model.encode(frame, state, torch.zeros(1, 2))
            hidden.append(state["rew_h"])
            reward.append(model.decode(state).predictions["reward"])
    assert not torch.allclose(hidden[0], hidden[1])
    assert not torch.allclose(reward[0], reward[1])
    heads = RewEndHeads(4, "sign")
    logits = torch.tensor([[0.0, 1.0, 5.0], [5.0, 0.0, 2.0]])
    probs = F.softmax(logits, dim=-1)
    rew_logits, _ = heads.logits(torch.zeros(2, 4))
    assert rew_logits.shape == (2, 3)
    targets = torch.tensor([3.5, -0.2])  # signs +1, -1 -> classes 2, 0
    expected = F.cross_entropy(logits, torch.tensor([2, 0]), reduction="none")
    torch.testing.assert_close(heads.reward_loss(logits, targets), expected)
    with torch.no_grad():
        heads.net[-1].weight.zero_()
        heads.net[-1].bias.copy_(torch.cat([logits[0], torch.zeros(2)]))
    predicted, _ = heads(torch.zeros(1, 4))
    torch.testing.assert_close(predicted, (probs[0, 2] - probs[0, 0]).view(1))


# -- the image model meets the maturity obligations too -----------------------------------------
def test_the_image_model_meets_the_experimental_obligations() -> None:
    """The conformance engine (as tests/test_families_maturity.py) on 8x8 images: the U-Net and
    the conv reward model keep rollout == transitions in eval mode, batch independence, seeded
    determinism, gradients to every parameter, save/load."""
    from worldflux.conformance.engine import check_model

    from worldflux import create_world_model

    def factory() -> Any:
        return create_world_model("diffusion:ci", **IMAGE)

    checks = ["io", "rollout", "batch", "determinism", "numeric", "serde"]
    report = check_model(
        factory, "experimental", profile="ci", seed=1, crash_dir=None, checks=checks
    )
    (result,) = report.results
    failures = [f"{c.id}: {c.message}" for c in result.failures()]
    assert not failures, "\n".join(failures)
