"""The evaluation's probes (worldflux/evaluation/probes.py): what a latent-only model's state is
read through. The MLP probe must read a state that a linear map cannot draw; the ridge probe is
scale-free and its strength is chosen on rows it was not fitted on."""

from __future__ import annotations

import torch

from worldflux.evaluation.probes import RIDGE_GRID, fit_linear_probe, fit_mlp_probe, select_ridge


def _dots(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """States ``[n, 2]`` (a position in [0, 1]^2) and 8x8 frames ``[n, 64]`` of a dot there:
    the frame is a nonlinear function of the state, as Reach's rendered frames are."""
    generator = torch.Generator().manual_seed(seed)
    position = torch.rand(n, 2, generator=generator)
    grid = (torch.arange(8).float() + 0.5) / 8
    dx = grid.view(1, 1, 8) - position[:, 0].view(-1, 1, 1)
    dy = grid.view(1, 8, 1) - position[:, 1].view(-1, 1, 1)
    frames = torch.exp(-(dx**2 + dy**2) / (2 * 0.08**2))
    return position, frames.flatten(1)


def test_the_mlp_probe_reads_what_a_linear_map_cannot_draw() -> None:
    """On held-out states, the MLP probe's error is a fraction of the ridge probe's, which is
    near the mean frame's (fails when the MLP is not trained or has no nonlinearity)."""
    states, frames = _dots(2048, seed=0)
    new_states, new_frames = _dots(512, seed=1)
    mean_error = float(((frames.mean(0) - new_frames) ** 2).mean())
    linear = float(((fit_linear_probe(states, frames)(new_states) - new_frames) ** 2).mean())
    probe = fit_mlp_probe(states, frames, seed=0, hidden=64, steps=1500)
    mlp = float(((probe(new_states) - new_frames) ** 2).mean())
    assert linear > 0.7 * mean_error, (linear, mean_error)
    assert mlp < 0.35 * linear, (mlp, linear)


def test_the_mlp_probe_is_deterministic_and_leaves_the_callers_stream() -> None:
    states, frames = _dots(256, seed=0)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = fit_mlp_probe(states, frames, seed=5, hidden=16, steps=50)(states)
    assert torch.equal(torch.get_rng_state(), before)
    again = fit_mlp_probe(states, frames, seed=5, hidden=16, steps=50)(states)
    other = fit_mlp_probe(states, frames, seed=6, hidden=16, steps=50)(states)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def _noisy_linear(
    n: int, features: int, noise: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets ``[n, 6]`` that are a fixed linear map of the first two of ``features`` features
    ``[n, features]`` plus ``noise`` (the others are irrelevant)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    mix = torch.linspace(-1.0, 1.0, 12).view(2, 6)
    y = x[:, :2] @ mix + noise * torch.randn(n, 6, generator=generator)
    return x, y


def test_the_ridge_probe_does_not_depend_on_the_features_scale() -> None:
    x, y = _noisy_linear(200, 8, 0.1, seed=0)
    scaled = x * torch.tensor([1e-3, 1.0, 1e3, 1.0, 10.0, 1.0, 1.0, 1e-2])
    new, _ = _noisy_linear(50, 8, 0.1, seed=1)
    torch.testing.assert_close(
        fit_linear_probe(x, y, ridge=0.1)(new),
        fit_linear_probe(scaled, y, ridge=0.1)(new * (scaled[0] / x[0])),
        rtol=1e-4,
        atol=1e-4,
    )


def test_the_ridge_is_chosen_on_the_validation_rows() -> None:
    """Few rows of many irrelevant features: a strong ridge generalises, the weakest overfits;
    many rows of exactly linear targets: no shrinkage is needed, the weakest ridge wins. The
    chosen probe beats the weakest one on fresh rows."""
    fit, validation = _noisy_linear(60, 50, 1.0, seed=0), _noisy_linear(200, 50, 1.0, seed=1)
    ridge = select_ridge(fit, validation)
    assert ridge >= 0.1, ridge
    fresh_x, fresh_y = _noisy_linear(500, 50, 1.0, seed=2)

    def error(r: float) -> float:
        return float((fit_linear_probe(*fit, ridge=r)(fresh_x) - fresh_y).pow(2).mean())

    assert error(ridge) < 0.8 * error(min(RIDGE_GRID)), (error(ridge), error(min(RIDGE_GRID)))
    clean = select_ridge(_noisy_linear(2000, 4, 0.0, seed=0), _noisy_linear(200, 4, 0.0, seed=1))
    assert clean == min(RIDGE_GRID)
