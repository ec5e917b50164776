"""DiT's residual transition: the sampler generates the change of the latent, ``z' - z``.

An untrained (zero-initialised, as in DiT) denoiser then leaves the latent where it is in eval
mode instead of sending it to the prior mean, and the denoising objective is the same for a
latent pair shifted by any constant (it only sees the change).
"""

from __future__ import annotations

from collections.abc import Iterator

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
