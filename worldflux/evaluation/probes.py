"""Read-outs of a latent-only model's state as an observation (evaluation probes).

A model without an observation decoder (JEPA, V-JEPA 2, TD-MPC2) is read through a probe fitted
on its teacher-forced states of training windows and applied, frozen, to its open-loop states:

- :func:`fit_linear_probe`: ridge regression (closed form). Cheap, but a linear map of a small
  state cannot draw a moving object: on the 16x16 Reach frames a ridge probe of the *true*
  ``[x, y, gx, gy]`` state is only 4% under the mean frame (docs/evaluation.md);
- :func:`fit_mlp_probe`: a two-hidden-layer MLP on standardised features, trained with Adam for a
  fixed number of steps from a seeded stream (deterministic). The same true state read through
  it is 60% under the mean frame: it measures what the state holds, not what a linear map of it
  can draw (the JEPA papers read their predictions through trained decoders, too).

Both return a callable ``features [N, F] -> observations [N, D]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["MLP_PROBE_STEPS", "Probe", "fit_linear_probe", "fit_mlp_probe"]

Probe = Callable[[Tensor], Tensor]

#: Adam steps of :func:`fit_mlp_probe` (batch 256, lr 1e-3).
MLP_PROBE_STEPS = 3000


def _with_bias(features: Tensor) -> Tensor:
    return torch.cat([features, torch.ones(features.shape[0], 1, dtype=features.dtype)], dim=1)


def fit_linear_probe(features: Tensor, targets: Tensor, ridge: float = 1e-3) -> Probe:
    """Ridge regression ``[F + 1, D]`` from features ``[N, F]`` to targets ``[N, D]``."""
    x = _with_bias(features.double())
    gram = x.T @ x + ridge * torch.eye(x.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, x.T @ targets.double()).float()

    def probe(new: Tensor) -> Tensor:
        out: Tensor = _with_bias(new.float()) @ weights
        return out

    return probe


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
