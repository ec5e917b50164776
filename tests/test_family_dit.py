"""DiT's residual transition: the sampler generates the change of the latent, ``z' - z``.

An untrained (zero-initialised, as in DiT) denoiser then leaves the latent where it is in eval
mode instead of sending it to the prior mean, and the denoising objective is the same for a
latent pair shifted by any constant (it only sees the change).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from worldflux import create_world_model
from worldflux.core.types import State
from worldflux.families.dit.slots import DiTDynamics


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _dynamics(residual: bool) -> tuple[DiTDynamics, int]:
    torch.manual_seed(0)
    model = create_world_model("dit-ci", obs_shape=(4,), action_dim=2, residual=residual)
    dynamics = model.dynamics_model
    assert isinstance(dynamics, DiTDynamics)
    return dynamics.eval(), int(model.config.latent_dim)


def test_an_untrained_residual_transition_keeps_the_latent() -> None:
    dynamics, latent_dim = _dynamics(residual=True)
    z = torch.randn(5, latent_dim)
    cond = torch.cat([z, torch.randn(5, 2)], dim=-1)
    with torch.no_grad():
        nxt = dynamics(State(latent=z), cond)["latent"]
    torch.testing.assert_close(nxt, z)  # the zero-initialised output layer generates no change
    plain, _ = _dynamics(residual=False)
    with torch.no_grad():
        jumped = plain(State(latent=z), cond)["latent"]
    assert float((jumped - z).abs().mean()) > 0.1  # without it, the prior mean (zero)


def test_the_residual_denoising_loss_sees_only_the_change() -> None:
    dynamics, latent_dim = _dynamics(residual=True)
    z, nxt = torch.randn(6, latent_dim), torch.randn(6, latent_dim)
    cond = torch.randn(6, latent_dim + 2)
    shift = 3.0 * torch.randn(1, latent_dim)
    torch.manual_seed(1)
    before = dynamics.denoising_loss(cond, z, nxt)
    torch.manual_seed(1)
    after = dynamics.denoising_loss(cond, z + shift, nxt + shift)
    torch.testing.assert_close(before, after)
    torch.manual_seed(1)
    assert not torch.allclose(before, dynamics.denoising_loss(cond, z, nxt + shift))


def test_scheduled_sampling_conditions_on_the_models_own_estimates() -> None:
    """With ``rollout_steps=2`` the extra denoising term's inputs are the model's own one-step
    estimates (eval mode, no gradient, action ``a_i``), its action ``a_{i+1}`` and its target the
    encoded ``z_{i+2}``; starts whose window crosses an episode start are masked out."""
    from worldflux.core.types import Batch

    torch.manual_seed(0)
    model = create_world_model(
        "dit:ci", obs_shape=(5,), action_dim=2, objective={"rollout_steps": 2}
    )
    b, t = 3, 5
    actions = torch.arange(t).float().view(1, t, 1).expand(b, t, 2).contiguous()
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[1, 2] = True
    batch = Batch(
        obs=torch.randn(b, t, 5),
        actions=actions,
        rewards=torch.zeros(b, t),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )
    dynamics = model.dynamics_model
    assert isinstance(dynamics, DiTDynamics)
    own_calls: list[tuple[bool, bool]] = []
    original_forward = dynamics.forward

    def own_step(state: State, action_input: torch.Tensor) -> State:
        own_calls.append((dynamics.training, torch.is_grad_enabled()))
        # marks the estimate with its action: latent + 100 * a_i
        return State(latent=state["latent"] + 100 * action_input[:, -1:])

    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    original_loss = dynamics.denoising_loss

    def record(
        action_input: torch.Tensor, latent: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        seen.append((action_input.detach(), latent.detach(), target.detach()))
        return original_loss(action_input, latent, target)

    dynamics.forward = own_step  # type: ignore[method-assign]
    dynamics.denoising_loss = record  # type: ignore[method-assign]
    objective: Any = model.objective
    z = model.encode(batch["obs"].flatten(0, 1))["latent"].detach().view(b, t, -1)
    terms = objective._own_rollout_terms(model, z, actions, is_first)
    dynamics.forward = original_forward  # type: ignore[method-assign]
    assert len(terms) == 1 and own_calls == [(False, False)]
    action_input, latent, target = seen[0]
    steps = torch.arange(t - 2).float()  # starts i = 0..T-3
    expected = z[:, : t - 2] + 100 * steps.view(1, -1, 1)  # own estimate of z_{i+1}
    torch.testing.assert_close(latent, expected.flatten(0, 1))
    torch.testing.assert_close(target, z[:, 2:].flatten(0, 1))
    torch.testing.assert_close(action_input[:, -1], (steps + 1).repeat(b))  # a_{i+1}
    # sample 1's episode starts at step 2: starts 0 and 1 cross it; only start 2 counts there
    dynamics.denoising_loss = lambda a, x, y: torch.arange(x.shape[0]).float()  # type: ignore[method-assign,assignment]
    (masked,) = objective._own_rollout_terms(model, z, actions, is_first)
    kept = [0, 1, 2, 5, 6, 7, 8]  # [B * (T - 2)] rows: sample 0, sample 1 start 2, sample 2
    assert float(masked) == pytest.approx(sum(kept) / len(kept))


def test_images_go_through_conv_stages_and_vectors_through_the_mlp() -> None:
    """The spec's autoencoder is ``images: conv``: DiT works in a conv autoencoder's latent (an
    MLP on flattened 16x16 frames reconstructed held-out frames at 0.0056 vs 0.0033 on its
    training frames, docs/families.md)."""
    from worldflux.components.conv import ConvTrunk, DeconvHead
    from worldflux.components.decoders import MLPDecoder
    from worldflux.components.encoders import MLPEncoder

    def parts(obs_shape: tuple[int, ...]) -> tuple[MLPEncoder, MLPDecoder]:
        model = create_world_model("dit-ci", obs_shape=obs_shape, action_dim=2)
        encoder, decoder = model.observation_encoder, model.slot_modules()["decoder"]
        assert isinstance(encoder, MLPEncoder) and isinstance(decoder, MLPDecoder)
        return encoder, decoder

    encoder, decoder = parts((3, 16, 16))
    assert isinstance(encoder.net, ConvTrunk) and isinstance(decoder.obs, DeconvHead)
    latent = encoder(torch.rand(2, 3, 16, 16))
    assert decoder(latent).predictions["obs"].shape == (2, 3, 16, 16)
    encoder, decoder = parts((4,))
    assert not isinstance(encoder.net, ConvTrunk) and not isinstance(decoder.obs, DeconvHead)
