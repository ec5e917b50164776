"""``cem``: the cross-entropy method, with the MPPI planner's interface and settings.

The elites are weighted uniformly; the returned action is the refined mean's first action, plus
std·N(0, 1) exploration noise outside eval mode.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldflux.core.components import BuildContext
from worldflux.core.registry import register_component
from worldflux.planning.base import SamplingPlanner, SamplingPlannerParams

__all__ = ["CEMPlanner"]


@register_component("behaviour", "cem", params_model=SamplingPlannerParams)
class CEMPlanner(SamplingPlanner):
    """The cross-entropy method: uniform elite weights, returns the mean's first action."""

    def __init__(self, ctx: BuildContext, params: SamplingPlannerParams) -> None:
        super().__init__(ctx, params)

    def elite_weights(self, elite_value: Tensor) -> Tensor:
        return torch.full_like(elite_value, 1.0 / elite_value.shape[1])

    def select(
        self, elite_actions: Tensor, weights: Tensor, mean: Tensor, std: Tensor, eval_mode: bool
    ) -> Tensor:
        action = mean[0]
        if not eval_mode:
            action = action + std[0] * torch.randn_like(action)
        return action
