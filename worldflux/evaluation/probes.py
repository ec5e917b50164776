"""Read-outs of a latent-only model's state as an observation (evaluation probes).

A model without an observation decoder (JEPA, V-JEPA 2, TD-MPC2) is read through a probe fitted
on its teacher-forced states of training windows and applied, frozen, to its open-loop states:

- :func:`fit_linear_probe`: ridge regression (closed form) on standardised features. Cheap, but a
  linear map of a small state cannot draw a moving object: on the 16x16 Reach frames a ridge
  probe of the *true* ``[x, y, gx, gy]`` state is only 4% under the mean frame
  (docs/evaluation.md). :func:`select_ridge` chooses its strength on held-aside episodes (the
  evaluation does; a wide state, e.g. a token grid, overfits the fit episodes without it);
- :func:`fit_mlp_probe`: a two-hidden-layer MLP on standardised features, trained with Adam for a
  fixed number of steps from a seeded stream (deterministic). The same true state read through
  it is 60% under the mean frame: it measures what the state holds, not what a linear map of it
  can draw (the JEPA papers read their predictions through trained decoders, too).

The fitters return a callable ``features [N, F] -> observations [N, D]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "MLP_PROBE_STEPS",
    "RIDGE_GRID",
    "Probe",
    "fit_linear_probe",
    "fit_mlp_probe",
    "fit_validated_linear_probe",
    "held_aside",
    "select_ridge",
]

Probe = Callable[[Tensor], Tensor]

#: Adam steps of :func:`fit_mlp_probe` (batch 256, lr 1e-3).
MLP_PROBE_STEPS = 3000


#: Ridge strengths :func:`select_ridge` chooses from (per row, on standardised features).
RIDGE_GRID = tuple(10.0**k for k in range(-4, 3))


def _with_bias(features: Tensor) -> Tensor:
    return torch.cat([features, torch.ones(features.shape[0], 1, dtype=features.dtype)], dim=1)


def fit_linear_probe(features: Tensor, targets: Tensor, ridge: float = 1e-3) -> Probe:
    """Ridge regression ``[F + 1, D]`` from features ``[N, F]`` to targets ``[N, D]``.

    Features are standardised with their fit statistics (a constant one is left centred), and
    the penalty is ``ridge * N`` on the weights (not the bias): the same ``ridge`` means the
    same shrinkage whatever the features' scale and the number of rows.
    """
    x = features.double()
    centre, scale = x.mean(0), x.std(0, correction=0)
    scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))
    design = _with_bias((x - centre) / scale)
    penalty = torch.full((design.shape[1],), ridge * design.shape[0], dtype=torch.float64)
    penalty[-1] = 0.0  # the bias is not shrunk
    gram = design.T @ design + torch.diag(penalty)
    weights = torch.linalg.solve(gram, design.T @ targets.double()).float()
    centre, scale = centre.float(), scale.float()

    def probe(new: Tensor) -> Tensor:
        out: Tensor = _with_bias((new.float() - centre) / scale) @ weights
        return out

    return probe


def select_ridge(
    fit: tuple[Tensor, Tensor],
    validation: tuple[Tensor, Tensor],
    grid: tuple[float, ...] = RIDGE_GRID,
) -> float:
    """The ridge of ``grid`` whose probe, fitted on ``fit`` (features ``[N, F]``, targets
    ``[N, D]``), has the lowest mean squared error on ``validation`` (rows of other episodes);
    the strongest of equally good ones."""
    best, best_error = grid[0], float("inf")
    for ridge in sorted(grid):
        error = float(
            (fit_linear_probe(*fit, ridge=ridge)(validation[0]) - validation[1]).pow(2).mean()
        )
        if error <= best_error:
            best, best_error = ridge, error
    return best


def held_aside(episodes: Sequence[int]) -> tuple[list[int], list[int]]:
    """``(kept, aside)``: every fifth of the sorted ``episodes`` is held aside (the rows
    :func:`select_ridge` scores on), the others kept."""
    ordered = sorted(episodes)
    return [e for i, e in enumerate(ordered) if i % 5 != 4], ordered[4::5]


def fit_validated_linear_probe(
    fit: tuple[Tensor, Tensor], validation: tuple[Tensor, Tensor]
) -> tuple[Probe, float]:
    """The ridge probe with the strength :func:`select_ridge` chooses, refitted on the rows of
    both ``fit`` and ``validation``; and that strength."""
    ridge = select_ridge(fit, validation)
    features = torch.cat([fit[0], validation[0]])
    targets = torch.cat([fit[1], validation[1]])
    return fit_linear_probe(features, targets, ridge=ridge), ridge


def fit_mlp_probe(
    features: Tensor,
    targets: Tensor,
    *,
    seed: int = 0,
    hidden: int = 256,
    steps: int = MLP_PROBE_STEPS,
    batch: int = 256,
    lr: float = 1e-3,
) -> Probe:
    """An MLP ``F -> hidden -> hidden -> D`` (SiLU) from standardised features ``[N, F]`` to
    targets ``[N, D]``, ``steps`` Adam steps on minibatches of ``batch`` rows. Initialisation
    and minibatches come from a generator seeded with ``seed``: the same inputs give the same
    probe, and the caller's torch stream is not touched."""
    generator = torch.Generator().manual_seed(seed)
    x, y = features.float(), targets.float()
    centre, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    with torch.random.fork_rng():  # the layers' default init draws; ours replaces it
        net = nn.Sequential(
            nn.Linear(x.shape[1], hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, y.shape[1]),
        )
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Linear):
                bound = layer.in_features**-0.5
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    normalised = (x - centre) / scale
    with torch.enable_grad():
        for _ in range(steps):
            rows = torch.randint(0, x.shape[0], (min(batch, x.shape[0]),), generator=generator)
            loss = (net(normalised[rows]) - y[rows]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()

    def probe(new: Tensor) -> Tensor:
        with torch.no_grad():
            out: Tensor = net((new.float() - centre) / scale)
        return out

    return probe
