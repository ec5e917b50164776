"""JEPA's I-JEPA mechanisms: the ViT patch / feature-token encoder, a context encoder that sees
only context tokens, the mask-token predictor and its masked-positions-only loss, the EMA
momentum schedule and a target that never gets gradients, and the world model's open-loop
latent term (the predictor fed its own outputs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from test_families_harness import random_batch, single_thread
from torch import nn
from torch.nn import functional as F

from worldflux import create_world_model
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.types import State
from worldflux.evaluation.probes import fit_linear_probe
from worldflux.families.jepa.masks import sample_masks
from worldflux.families.jepa.objective import ema_momentum, spread_loss
from worldflux.families.jepa.slots import JEPAEncoder


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _model(obs_shape: tuple[int, ...] = (24,), **config: Any) -> WorldModel:
    torch.manual_seed(0)
    return create_world_model("jepa:ci", obs_shape=obs_shape, action_dim=2, **config).eval()


def _encoder(model: WorldModel) -> JEPAEncoder:
    encoder = model.observation_encoder
    assert isinstance(encoder, JEPAEncoder)
    return encoder


# -- the encoder ------------------------------------------------------------------------------
def test_images_are_patchified_by_a_conv_and_vectors_by_feature_chunks() -> None:
    image = _encoder(_model((3, 16, 16)))  # ci: patch 4 -> a 4 x 4 grid
    assert isinstance(image.context.patchify, nn.Conv2d)
    assert image.context.patchify.stride == (4, 4) and image.grid.tokens == 16
    vector = _encoder(_model((5,), feature_patch=2))  # 5 features -> 3 tokens (one zero-padded)
    assert isinstance(vector.context.patchify, nn.Linear)
    assert (vector.grid.rows, vector.grid.cols) == (1, 3)
    # fixed sin-cos positions (I-JEPA), distinct per token, not trained
    assert "pos" not in dict(vector.named_parameters())
    assert torch.unique(image.context.pos, dim=0).shape[0] == 16
    with pytest.raises(ConfigurationError, match="patch_size"):
        _model((3, 18, 18))


def test_positions_are_computed_on_the_cpu_when_sized_on_the_meta_device() -> None:
    """Loading a checkpoint sizes the model on the meta device under a time limit; an
    ``arange`` there goes through torch's slow decomposition path (a >10 s import on a busy
    machine). The fixed positions are computed on the CPU instead."""
    model_cls = WorldModelRegistry.get("jepa")
    config_cls = WorldModelRegistry.get_config_class("jepa")
    config = config_cls(**model_cls.presets["ci"], obs_shape=(3, 16, 16))  # type: ignore[attr-defined]
    with torch.device("meta"):
        model = model_cls(config)
    encoder = _encoder(model)
    assert encoder.context.pos.device.type == "cpu"
    assert next(encoder.context.parameters()).device.type == "meta"


@pytest.mark.parametrize("obs_shape", [(24,), (3, 16, 16)])
def test_the_context_encoder_sees_only_context_tokens(obs_shape: tuple[int, ...]) -> None:
    """Changing the observation under non-context tokens leaves the context tokens' features
    unchanged; changing it under a context token does not. The target encoder sees everything."""
    model = _model(obs_shape)
    encoder = _encoder(model)
    grid = encoder.grid
    masks = sample_masks(2, (grid.rows, grid.cols), model.objective.masks)  # type: ignore[union-attr]
    keep = masks.context
    obs = torch.randn(2, *obs_shape)

    def perturb(where: torch.Tensor) -> torch.Tensor:
        """obs + noise under the tokens where ``where [2, N]`` is True."""
        if grid.kind == "image":
            per_pixel = where.view(2, 1, grid.rows, 1, grid.cols, 1).expand(
                2, obs_shape[0], grid.rows, grid.patch, grid.cols, grid.patch
            )
            under = per_pixel.reshape(2, *obs_shape)
        else:
            under = where.repeat_interleave(grid.patch, dim=1)[:, : grid.features]
        return obs + under * torch.randn_like(obs) * 3

    with torch.no_grad():
        base = encoder.tokens(obs, keep)
        other = encoder.tokens(perturb(~keep), keep)
        torch.testing.assert_close(other[keep], base[keep])
        changed = encoder.tokens(perturb(keep), keep)
        assert not torch.allclose(changed[keep], base[keep])
        target = encoder.target_tokens(obs)
        assert not torch.allclose(encoder.target_tokens(perturb(~keep))[keep], target[keep])


def test_the_state_latent_is_the_layernormed_mean_of_the_tokens() -> None:
    model = _model()
    obs = torch.randn(3, 24)
    with torch.no_grad():
        tokens = _encoder(model).tokens(obs)
        latent = model.encode(obs)["latent"]
    torch.testing.assert_close(latent, F.layer_norm(tokens.mean(1), (tokens.shape[-1],)))


@pytest.mark.parametrize("state_tokens", [1, 4, 16])
def test_the_state_keeps_state_tokens_layernormed_token_means(state_tokens: int) -> None:
    """16x16 frames in 4x4 patches are 16 tokens; the state keeps ``state_tokens`` means of
    consecutive runs (row-major), each LayerNorm'd; predicted states are normalised the same
    way, so they live where encoded ones do."""
    model = _model((3, 16, 16), state_tokens=state_tokens)
    obs = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        tokens = _encoder(model).tokens(obs)
        latent = model.encode(obs)["latent"]
        runs = tokens.unflatten(1, (state_tokens, 16 // state_tokens)).mean(2)
        torch.testing.assert_close(latent, F.layer_norm(runs, (8,)).flatten(1))
        nxt = model.transition(State(latent=latent), torch.rand(3, 2))["latent"]
    per_token = nxt.unflatten(1, (state_tokens, 8))
    torch.testing.assert_close(per_token.mean(-1), torch.zeros(3, state_tokens))
    assert model.loss(random_batch(model, b=2, t=4)).loss.isfinite()


def _squares(n: int, seed: int) -> torch.Tensor:
    """``[n, 3, 16, 16]`` frames of one 4x4 square of a random colour at a random position."""
    generator = torch.Generator().manual_seed(seed)
    frames = torch.zeros(n, 3, 16, 16)
    corners = torch.randint(0, 13, (n, 2), generator=generator)
    colours = torch.rand(n, 3, generator=generator)
    for i, (row, col) in enumerate(corners.tolist()):
        frames[i, :, row : row + 4, col : col + 4] = colours[i].view(3, 1, 1)
    return frames


def test_the_token_grid_state_keeps_where_things_are() -> None:
    """A ridge read-out of the (untrained) encoder's state draws held-out frames of a moving
    square far better from the token grid (``state_tokens=16``) than from the pooled mean
    (``state_tokens=1``), which adds the patches up and keeps little of where they were."""
    frames, new = _squares(512, seed=0), _squares(128, seed=1)
    errors = {}
    for state_tokens in (1, 16):
        model = _model((3, 16, 16), state_tokens=state_tokens)
        with torch.no_grad():
            fit, held = model.encode(frames)["latent"], model.encode(new)["latent"]
        probe = fit_linear_probe(fit, frames.flatten(1), ridge=1e-2)
        errors[state_tokens] = float((probe(held) - new.flatten(1)).pow(2).mean())
    mean_error = float((frames.mean(0) - new).pow(2).mean())
    assert errors[16] < 0.5 * errors[1], errors
    assert errors[1] > 0.6 * mean_error, (errors, mean_error)


def test_state_tokens_must_divide_the_tokens() -> None:
    with pytest.raises(ConfigurationError, match=r"state_tokens=3 must divide .* 16 tokens"):
        _model((3, 16, 16), state_tokens=3)


# -- the masked-prediction term ---------------------------------------------------------------
def test_the_masked_loss_reads_targets_at_masked_positions_only() -> None:
    """Target features outside the target blocks do not change the loss; inside they do; and
    the predictor's mask token gets gradient (it is what fills the target positions)."""
    model = _model()
    objective: Any = model.objective
    encoder = _encoder(model)
    obs = torch.randn(6, 24)
    with torch.no_grad():
        targets = encoder.target_tokens(obs)
    torch.manual_seed(1)
    masks = sample_masks(6, (1, 24), objective.masks)
    outside = ~masks.targets.any(1)

    def loss(t: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(1)  # the same masks as above
        value: torch.Tensor = objective.masked_loss(encoder, obs, t)
        return value

    base = loss(targets)
    noise = torch.randn_like(targets) * 5
    torch.testing.assert_close(loss(targets + noise * outside[..., None]), base)
    assert not torch.allclose(loss(targets + noise * ~outside[..., None]), base)
    base.backward()
    assert objective.predictor.mask_token.grad is not None
    assert float(objective.predictor.mask_token.grad.abs().sum()) > 0


def test_mask_tokens_carry_their_positions_not_the_hidden_content() -> None:
    """At the target positions the predictor sees a mask token plus that position's embedding:
    the hidden tokens' own features do not matter, and the positions tell the outputs apart."""
    model = _model()
    predictor: Any = model.objective.predictor  # type: ignore[union-attr]
    tokens = torch.randn(1, 24, 8)
    targets = torch.zeros(1, 1, 24, dtype=torch.bool)
    targets[0, 0, 10:14] = True
    context = ~targets[:, 0]
    context[0, 20:] = False  # neither context nor target: ignored too
    with torch.no_grad():
        out = predictor(tokens, context, targets)[0, 0, 10:14]
        hidden = ~context[0]
        other = tokens + torch.randn_like(tokens) * 5 * hidden[None, :, None]
        torch.testing.assert_close(predictor(other, context, targets)[0, 0, 10:14], out)
    assert torch.cdist(out, out).add(torch.eye(4) * 1e3).min() > 1e-3  # all four differ


def test_the_masked_loss_learns() -> None:
    """Adam on the masked term alone (fixed frames) lowers it well below its start."""
    model = _model().train()
    objective: Any = model.objective
    encoder = _encoder(model)
    obs = torch.randn(16, 24).cumsum(1) / 5  # neighbouring features are correlated
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    torch.manual_seed(0)
    for _ in range(80):
        value = objective.masked_loss(encoder, obs, encoder.target_tokens(obs))
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(float(value.detach()))
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10


# -- EMA ----------------------------------------------------------------------------------------
def test_ema_momentum_ramps_linearly_then_holds() -> None:
    assert ema_momentum(0, 0.996, 1.0, 1000) == 0.996
    assert ema_momentum(500, 0.996, 1.0, 1000) == pytest.approx(0.998)
    assert ema_momentum(1000, 0.996, 1.0, 1000) == 1.0
    assert ema_momentum(5000, 0.996, 1.0, 1000) == 1.0


def test_after_step_follows_the_schedule_and_the_target_gets_no_gradient() -> None:
    model = _model(ema_steps=4).train()
    objective: Any = model.objective
    encoder = _encoder(model)
    assert all(not p.requires_grad for p in encoder.target.parameters())
    batch = random_batch(model, b=3, t=4)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    for step in range(6):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        assert all(p.grad is None for p in encoder.target.parameters())
        opt.step()
        before = [p.detach().clone() for p in encoder.target.parameters()]
        ctx = [p.detach().clone() for p in encoder.context.parameters()]
        expected = ema_momentum(step, 0.996, 1.0, 4)
        assert out.metrics["ema_momentum"] == pytest.approx(expected)
        objective.after_step(model)
        assert int(encoder.updates) == step + 1
        for tgt, old, src in zip(encoder.target.parameters(), before, ctx, strict=True):
            torch.testing.assert_close(tgt, expected * old + (1 - expected) * src)
    assert expected == 1.0  # held at ema_end: the target is frozen from step 4 on


def test_the_schedule_clock_is_saved_with_the_model(tmp_path: Any) -> None:
    model = _model()
    for _ in range(3):
        model.objective.after_step(model)  # type: ignore[operator, union-attr]
    model.save_pretrained(tmp_path / "m")
    loaded = type(model).from_pretrained(tmp_path / "m")
    assert int(_encoder(loaded).updates) == 3


# -- the world model ----------------------------------------------------------------------------
def test_the_open_loop_latent_term_feeds_the_predictor_its_own_outputs() -> None:
    """``latent`` with rollout_steps=2 equals the hand-computed mean of the one-step error and
    the error of transition(transition(z_t)) against the latent two steps on, with pairs that
    cross an episode start left out."""
    model = _model()
    objective: Any = model.objective
    assert objective.p.rollout_steps == 5 and objective.p.latent_target == "context"
    objective.p = objective.p.model_copy(update={"rollout_steps": 2})
    batch = random_batch(model, b=2, t=4)  # sample 0 starts a new episode at t=2
    obs, actions = batch["obs"], batch["actions"]
    with torch.no_grad():
        z = model.encode(obs.flatten(0, 1))["latent"].unflatten(0, (2, 4))
        got, _ = objective.latent_loss(model, z, z, batch)

        def step(latent: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            return model.transition(State(latent=latent), a)["latent"]

        one, two = [], []
        for b in range(2):
            for t in range(3):
                if not batch["is_first"][b, t + 1]:
                    z1 = step(z[b : b + 1, t], actions[b : b + 1, t])
                    one.append(F.smooth_l1_loss(z1, z[b : b + 1, t + 1], reduction="none"))
                    if t + 2 < 4 and not batch["is_first"][b, t + 2]:
                        z2 = step(z1, actions[b : b + 1, t + 1])
                        two.append(F.smooth_l1_loss(z2, z[b : b + 1, t + 2], reduction="none"))
        want = (torch.cat(one).mean() + torch.cat(two).mean()) / 2
    torch.testing.assert_close(got, want)
    assert len(two) == 2  # sample 0's pairs across t=2 are left out


def test_the_loss_has_every_component_and_plans_toward_goals() -> None:
    model = _model((3, 16, 16))
    out = model.loss(random_batch(model, b=2, t=6))
    assert set(out.components) == {"latent", "masked", "spread", "reward", "continue"}
    assert all(bool(torch.isfinite(v)) for v in out.components.values())
    obs = torch.rand(1, 3, 16, 16)
    action, _ = model.act(obs, None, is_first=torch.ones(1, dtype=torch.bool), goal=obs)
    assert action.shape == (1, 2)


def test_the_spread_term_penalises_collapsed_latents_only() -> None:
    collapsed = torch.ones(64, 8) + 1e-6 * torch.randn(64, 8)
    assert float(spread_loss(collapsed, 0.5)) == pytest.approx(0.5, abs=0.02)
    spread = torch.randn(4096, 8)  # unit std, uncorrelated
    assert float(spread_loss(spread, 0.5)) < 0.01
    assert float(spread_loss(spread[:1], 0.5)) == 0.0
