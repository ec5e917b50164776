"""``open_loop``: the generic rollout executor (H x ``transition`` + ``decode``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from worldflux.core.components import BuildContext, RolloutExecutor
from worldflux.core.registry import register_component
from worldflux.core.types import State, Trajectory

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel


@register_component("rollout_executor", "open_loop")
class OpenLoopRollout(RolloutExecutor):
    """Roll ``actions [B, H, ...]`` forward from ``state``: exactly H ``transition`` + ``decode``.

    Returns a Trajectory with states ``[B, H+1, ...]`` (the start state first), rewards and
    continues ``[B, H]`` (zeros / ones when the decoder predicts none), predictions ``[B, H, ...]``.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()

    def forward(self, model: WorldModel, state: State, actions: Tensor) -> Trajectory:
        states = [state]
        predictions: list[dict[str, Tensor]] = []
        for t in range(actions.shape[1]):
            state = model.transition(state, actions[:, t], validate=False)
            states.append(state)
            predictions.append(model.decode(state).predictions)
        batch, horizon = actions.shape[0], actions.shape[1]
        stacked = {
            key: torch.stack([p[key] for p in predictions], dim=1)
            for key in (predictions[0] if predictions else {})
        }
        like = next(iter(state.values())) if len(state) else actions
        zeros = torch.zeros(batch, horizon, dtype=like.dtype, device=like.device)
        return Trajectory(
            states=State.stack(states, dim=1),
            actions=actions,
            rewards=stacked.get("reward", zeros),
            continues=stacked.get("continue", torch.ones_like(zeros)),
            predictions=stacked,
        )
