"""``dreamerv3.imagine``: open-loop imagination with one batched decode.

The H prior steps go through ``model.transition`` (action conditioner + RSSM) exactly as H
separate calls would; the decoder then runs once on all ``H*B`` imagined states instead of once
per step (larger matrix products, same values), as the official agent decodes its imagined
trajectory in one call. Predictions are ``[B, H, ...]`` views of that time-major decode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
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
        # decode the H imagined states time-major ([H, B] stacks flatten without a copy); they
        # come from the model's own transitions, so the contract checks are not repeated
        imagined = State.stack(states[1:], dim=0).flatten(0, 1)
        decoded = model.decode(imagined, validate=False).predictions
        predictions = {
            k: torch.unflatten(v, 0, (horizon, batch)).transpose(0, 1).contiguous()
            for k, v in decoded.items()
        }
        stacked = State.stack(states, dim=1)
        like = stacked[next(iter(stacked))]
        zeros = like.new_zeros(batch, horizon)
        return Trajectory(
            states=stacked,
            actions=actions,
            rewards=predictions.get("reward", zeros),
            continues=predictions.get("continue", zeros + 1.0),
            predictions=predictions,
        )
