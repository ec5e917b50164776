"""``dreamerv3.imagine``: open-loop imagination with one batched decode.

The H prior steps go through ``model.transition`` (action conditioner + RSSM) exactly as H
separate calls would; the decoder then runs once on all ``B*H`` imagined states instead of once
per step (larger matrix products, same values), as the official agent decodes its imagined
trajectory in one call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from worldflux.core.components import BuildContext, RolloutExecutor
from worldflux.core.registry import register_component
from worldflux.core.types import State, Trajectory

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["DreamerImagine"]


@register_component("rollout_executor", "dreamerv3.imagine")
class DreamerImagine(RolloutExecutor):
    """``actions [B, H, ...]`` from ``state`` -> Trajectory (states ``[B, H+1, ...]``, rewards,
    continues and every decoded prediction ``[B, H, ...]`` of the H imagined states)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()

    def forward(self, model: WorldModel, state: State, actions: Tensor) -> Trajectory:
        batch, horizon = actions.shape[0], actions.shape[1]
        states = [state]
        for t in range(horizon):
            state = model.transition(state, actions[:, t], validate=False)
            states.append(state)
        stacked = State.stack(states, dim=1)
        imagined = stacked.index(slice(1, None), dim=1).flatten(0, 1)
        decoded = model.decode(imagined).predictions
        predictions = {k: v.unflatten(0, (batch, horizon)) for k, v in decoded.items()}
        like = stacked[next(iter(stacked))]
        zeros = like.new_zeros(batch, horizon)
        return Trajectory(
            states=stacked,
            actions=actions,
            rewards=predictions.get("reward", zeros),
            continues=predictions.get("continue", zeros + 1.0),
            predictions=predictions,
        )
