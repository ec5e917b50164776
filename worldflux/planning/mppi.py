"""``mppi``: TD-MPC2's MPPI planner (official ``TDMPC2._plan``).

MPPI weights the elites by exp(temperature·(V − V_max)) and returns an elite's first action drawn
with those weights (Gumbel-max sampling), plus std·N(0, 1) exploration noise outside eval mode.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldflux.core.components import BuildContext
from worldflux.core.registry import register_component
from worldflux.planning.base import SamplingPlanner, SamplingPlannerParams

__all__ = ["MPPIPlanner", "gumbel_sample"]


def gumbel_sample(probs: Tensor) -> Tensor:
    """One index per row of ``probs [B, E]`` (rows sum to 1), drawn by Gumbel-max: ``[B]``."""
    gumbels = -torch.empty_like(probs).exponential_().log()
    return (probs.log() + gumbels).argmax(-1)


@register_component("behaviour", "mppi", params_model=SamplingPlannerParams)
class MPPIPlanner(SamplingPlanner):
    """MPPI with the official TD-MPC2 settings (6 iterations, +2 for action_dim >= 20; 512 samples;
    64 elites; 24 policy trajectories; horizon 3; temperature 0.5; std in [0.05, 2])."""

    def __init__(self, ctx: BuildContext, params: SamplingPlannerParams) -> None:
        super().__init__(ctx, params)

    def elite_weights(self, elite_value: Tensor) -> Tensor:
        max_value = elite_value.max(1, keepdim=True).values
        score = torch.exp(self.params.temperature * (elite_value - max_value))
        return score / score.sum(1, keepdim=True)

    def select(
        self, elite_actions: Tensor, weights: Tensor, mean: Tensor, std: Tensor, eval_mode: bool
    ) -> Tensor:
        idx = gumbel_sample(weights)  # [B]
        batch = torch.arange(idx.shape[0], device=idx.device)
        action = elite_actions[0, batch, idx]  # [B, A]
        if not eval_mode:
            action = action + std[0] * torch.randn_like(action)
        return action
