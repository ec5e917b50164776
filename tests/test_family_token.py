"""The IRIS mechanisms of the ``token`` family, each shown to work (not only to run).

- the convolutional VQ-VAE tokenizer of images: one token per cell of the downsampled grid,
  codes are the nearest codebook rows, straight-through gradients reach the conv encoder, and
  reconstruction of a small image set improves with training (below the mean frame's error);
- the separate training of the tokenizer and the world model: the world-model terms send no
  gradient into the tokenizer and the tokenizer terms none into the world model; the objective's
  optimisers partition the parameters; the tokenizer-only warm-up steps only the tokenizer;
- the reward classified by its sign (3 classes) and the continue flag by BCE: the classification
  loss falls and the predicted sign matches on a toy batch; the decoded reward is the expected
  value of the sign classes;
- the image model (conv tokenizer) meets the EXPERIMENTAL conformance obligations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from test_families_harness import build, random_actions, registered, single_thread
from worldflux.conformance.engine import check_model

from worldflux import create_world_model
from worldflux.core.types import Batch
from worldflux.training.trainer import Trainer, TrainerConfig

IMAGE = (3, 16, 16)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _image_model(**overrides: Any) -> Any:
    with registered("token") as pair:
        return build(*pair, obs_shape=IMAGE, action_dim=2, **overrides)


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    """``[n, 3, 16, 16]`` Reach-like frames: black, a 3x3 red and a 3x3 green square."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.zeros(n, *IMAGE)
    for i in range(n):
        for channel in (0, 1):
            row, col = (int(v) for v in torch.randint(0, 14, (2,), generator=gen))
            frames[i, channel, row : row + 3, col : col + 3] = 1.0
    return frames


def _image_batch(model: Any, b: int = 4, t: int = 3, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return Batch(
        obs=_frames(b * t, seed).view(b, t, *IMAGE),
        actions=random_actions(model, (b, t), seed),
        rewards=torch.randn(b, t, generator=gen),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )


# -- 1. the convolutional VQ-VAE ----------------------------------------------------------------
def test_images_get_one_token_per_grid_cell_and_codes_are_the_nearest_rows() -> None:
    model = _image_model()  # ci: 2 stride-2 stages, 16x16 -> 4x4 grid
    encoder: Any = model.observation_encoder
    assert encoder.grid == (4, 4) and encoder.num_tokens == 16
    assert model.bound_contract().state["tokens"].shape == (2, 16)
    obs = _frames(3)
    z_e, z_q, tokens = encoder.quantize(obs)
    assert z_e.shape == (3, 16, 4) and tokens.shape == (3, 16)
    # the grid cell (i, j) of the conv map is token i * w + j
    conv = encoder.net(obs)
    torch.testing.assert_close(z_e[:, 1 * 4 + 2], conv[:, :, 1, 2])
    dist = torch.cdist(z_e.flatten(0, 1), encoder.codebook.weight)
    assert torch.equal(tokens.flatten(), dist.argmin(-1))
    torch.testing.assert_close(z_q, encoder.codebook.weight[tokens])
    state = model.encode(obs)
    assert state["tokens"].shape == (3, 2, 16)
    assert model.decode(state).predictions["obs"].shape == (3, *IMAGE)


def test_straight_through_gives_the_conv_encoder_gradients() -> None:
    model = _image_model()
    encoder: Any = model.observation_encoder
    codes = encoder(_frames(2))["codes"]
    torch.testing.assert_close(codes, encoder.codebook(encoder(_frames(2))["tokens"]))
    model.decoder_module.reconstruct(codes).pow(2).sum().backward()  # type: ignore[operator]
    grads = [p.grad for p in encoder.net.parameters()]
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads)


def test_vqvae_reconstruction_of_a_small_image_set_improves_with_training() -> None:
    """The tokenizer alone (reconstruction + VQ, its own optimiser) learns 32 frames: its
    reconstruction through the codebook ends well below the mean frame's error (an all-black
    frame, the L1 optimum without a perceptual loss, is at about the mean frame's error)."""
    torch.manual_seed(0)
    model = _image_model().train()
    objective: Any = model.objective
    frames = _frames(32)
    opt = torch.optim.Adam(objective.tokenizer_parameters(model), lr=3e-3)

    def quantised_mse() -> float:
        with torch.no_grad():
            _, z_q, _ = model.observation_encoder.quantize(frames)  # type: ignore[operator]
            return float((model.decoder_module.reconstruct(z_q) - frames).pow(2).mean())  # type: ignore[operator]

    before = quantised_mse()
    for _ in range(200):
        reconstruction, vq, _ = objective.tokenizer_losses(model, frames)
        opt.zero_grad()
        (reconstruction + vq).backward()
        opt.step()
    after = quantised_mse()
    mean_frame = float((frames - frames.mean(0)).pow(2).mean())
    assert after < 0.3 * mean_frame, (before, after, mean_frame)
    assert after < 0.1 * before


# -- 2. separate parts and phases ---------------------------------------------------------------
def _grad_norms(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(sum(g.abs().sum() for g in grads if g is not None))


@pytest.mark.parametrize("image", [True, False])
def test_the_two_parts_send_no_gradient_into_each_other(image: bool) -> None:
    with registered("token") as pair:
        model = _image_model() if image else build(*pair)
    model.train()
    objective: Any = model.objective
    batch = _image_batch(model) if image else _toy_reward_batch(model)
    out = model.loss(batch)
    c = out.components
    tokenizer = objective.tokenizer_parameters(model)
    ids = {id(p) for p in tokenizer}
    world = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    world_loss = c["tokens"] + c["reward"] + c["continue"]
    assert _grad_norms(world_loss, tokenizer) == 0.0
    assert _grad_norms(c["reconstruction"] + c["vq"], world) == 0.0
    assert _grad_norms(world_loss, world) > 0.0
    assert _grad_norms(c["reconstruction"] + c["vq"], tokenizer) > 0.0


def test_the_optimisers_partition_the_parameters() -> None:
    model = _image_model()
    optimizers = model.objective.make_optimizers(model)  # type: ignore[union-attr,operator]
    assert set(optimizers) == {"tokenizer", "world_model", "behaviour"}
    owned = [id(p) for opt in optimizers.values() for g in opt.param_groups for p in g["params"]]
    assert len(owned) == len(set(owned))
    assert set(owned) == {id(p) for p in model.parameters() if p.requires_grad}


def test_the_warm_up_trains_only_the_tokenizer_then_both() -> None:
    model = _image_model(tokenizer_updates=2).train()
    objective: Any = model.objective
    tokenizer = {id(p) for p in objective.tokenizer_parameters(model)}
    trainer = Trainer(model, TrainerConfig())
    batch = _image_batch(model)

    def snapshot() -> dict[str, torch.Tensor]:
        """The trainable parameters (the behaviour's slow critic is an EMA, not trained)."""
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[bool, bool]:
        """(some tokenizer parameter changed, some other parameter changed)."""
        named = dict(model.named_parameters())
        moved = {n for n in a if not torch.equal(a[n], b[n])}
        return (
            any(id(named[n]) in tokenizer for n in moved),
            any(id(named[n]) not in tokenizer for n in moved),
        )

    start = snapshot()
    phases = [trainer.train_step(batch).metrics["phase"] for _ in range(2)]
    warm = snapshot()
    assert phases == [0.0, 0.0] and changed(start, warm) == (True, False)
    assert int(objective.updates) == 2 and "objective.updates" in model.state_dict()
    assert trainer.train_step(batch).metrics["phase"] == 1.0
    assert changed(warm, snapshot()) == (True, True)


# -- 3. reward sign classes and the continue flag ------------------------------------------------
def _toy_reward_batch(model: Any, b: int = 16, t: int = 3) -> Batch:
    """Vector batch whose reward sign is set by the first action: -1, 0 or +1 (scaled)."""
    gen = torch.Generator().manual_seed(3)
    actions = torch.rand(b, t, model.config.action_dim, generator=gen) * 2 - 1
    sign = torch.where(actions[..., 0] > 0.33, 1.0, torch.where(actions[..., 0] < -0.33, -1.0, 0.0))
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    terminated = torch.zeros(b, t, dtype=torch.bool)
    terminated[: b // 2, -1] = True
    return Batch(
        obs=torch.randn(b, t, *model.config.obs_shape, generator=gen),
        actions=actions,
        rewards=sign * (0.5 + torch.rand(b, t, generator=gen)),
        terminated=terminated,
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )


def test_reward_sign_classification_learns_the_sign() -> None:
    with registered("token") as pair:
        model = build(*pair).train()
    batch = _toy_reward_batch(model)
    objective: Any = model.objective  # the world model's loss (no behaviour terms: faster)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, conts = [], []
    for _ in range(150):
        out = objective(model, batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.components["reward"].detach()))
        conts.append(float(out.components["continue"].detach()))
    assert losses[-1] < 0.3 * losses[0] and conts[-1] < 0.5 * conts[0]
    model.eval()
    with torch.no_grad():
        state = model.encode(batch["obs"][:, 0])
        hits, total = 0, 0
        for step in range(batch["obs"].shape[1] - 1):
            nxt = model.transition(state, batch["actions"][:, step])
            decoder: Any = model.decoder_module
            logits, _ = decoder.heads(nxt["hidden"])
            reward = model.decode(nxt).predictions["reward"]
            # the decoded reward is the expected value of the classes {-1, 0, +1}
            probs = logits.softmax(-1)
            torch.testing.assert_close(reward, probs[:, 2] - probs[:, 0])
            truth = torch.sign(batch["rewards"][:, step])
            hits += int((logits.argmax(-1) - 1 == truth).sum())
            total += truth.numel()
            state = model.encode(batch["obs"][:, step + 1], state, batch["actions"][:, step])
    assert hits / total >= 0.9, hits / total


# -- 4. the image model keeps the EXPERIMENTAL obligations ---------------------------------------
def test_the_image_model_meets_the_experimental_obligations() -> None:
    def factory() -> Any:
        return create_world_model("token:ci", obs_shape=IMAGE, action_dim=2)

    report = check_model(factory, "experimental", profile="ci", seed=1, crash_dir=None)
    (result,) = report.results
    failures = [f"{c.id}: {c.message}" for c in result.failures()]
    assert not failures, "\n".join(failures)
