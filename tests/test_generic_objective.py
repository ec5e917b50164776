"""The generic objective's latent dynamics term (worldflux/components/objectives.py): one step
from each posterior, and with ``rollout_steps`` K > 1 the open-loop K-step rollouts (PlaNet's
latent overshooting), never across an episode start."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from worldflux import create_world_model
from worldflux.components._common import state_features
from worldflux.core.types import Batch


def _batch(obs_dim: int, action_dim: int, b: int = 4, t: int = 6) -> Batch:
    gen = torch.Generator().manual_seed(3)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 3] = True  # sample 1 starts a new episode at step 3
    return Batch(
        obs=torch.randn(b, t, obs_dim, generator=gen),
        actions=torch.rand(b, t, action_dim, generator=gen) * 2 - 1,
        rewards=torch.zeros(b, t),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )


def _expected_dynamics(model: Any, batch: Batch, steps: int, discount: float) -> torch.Tensor:
    """The term written out: for each start t and k = 1..K (inside the window), the k-step
    open-loop state against posterior t + k, averaged over the samples that stay in one
    episode, weighted discount ** (k - 1); the mean of all those terms."""
    posteriors = model.objective._posteriors(model, batch)
    terms = []
    for t in range(batch.seq_len):
        state = posteriors[t]
        for k in range(1, steps + 1):
            if t + k >= batch.seq_len:
                break
            state = model.transition(state, batch["actions"][:, t + k - 1])
            same_episode = ~batch["is_first"][:, t + 1 : t + k + 1].any(1)
            error = (state_features(state) - state_features(posteriors[t + k])).pow(2).mean(-1)
            terms.append(discount ** (k - 1) * error[same_episode].mean())
    return torch.stack(terms).mean()


@pytest.mark.parametrize(
    ("family", "steps", "discount"), [("ssm", 1, 1.0), ("ssm", 3, 0.5), ("physics", 4, 1.0)]
)
def test_the_dynamics_term_is_the_k_step_open_loop_error(
    family: str, steps: int, discount: float
) -> None:
    torch.manual_seed(0)
    model = create_world_model(
        f"{family}:ci",
        obs_shape=(5,),
        action_dim=2,
        objective={"rollout_steps": steps, "rollout_discount": discount},
    )
    batch = _batch(5, 2)
    objective: Any = model.objective
    with torch.no_grad():
        found = objective(model, batch).components["dynamics"]
        expected = _expected_dynamics(model, batch, steps, discount)
    torch.testing.assert_close(found, expected)
