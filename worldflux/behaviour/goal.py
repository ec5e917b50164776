"""``goal_cem``: plan toward a goal observation by minimising a latent energy (V-JEPA 2-AC).

For a goal observation ``g``, the energy of an action sequence ``a_0..a_H-1`` from state ``z_0``
is the mean absolute difference between the features of the imagined ``z_H`` and those of
``encode(g)`` (V-JEPA 2-AC's L1 energy on predicted embeddings). The search is the CEM loop of
:class:`~worldflux.planning.SamplingPlanner` (same sampling, elites, warm start and bounds) with
the return replaced by minus the energy, so it needs neither a reward nor a decoder: any model
with ``encode`` and ``transition`` can reach goals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field
from torch import Tensor

from worldflux.components._common import state_features
from worldflux.core.components import BuildContext
from worldflux.core.exceptions import CapabilityError
from worldflux.core.registry import register_component
from worldflux.core.types import State
from worldflux.planning.base import LatentFunctions, SamplingPlannerParams
from worldflux.planning.cem import CEMPlanner

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["GoalCEM", "GoalCEMParams"]


class GoalCEMParams(SamplingPlannerParams):
    """CEM settings for goal reaching (smaller than TD-MPC2's: energies are cheap to rank)."""

    iterations: int = Field(4, ge=1, description="refinement iterations")
    num_samples: int = Field(128, ge=2, description="action sequences per iteration")
    num_elites: int = Field(16, ge=1, description="best sequences kept")
    num_pi_trajs: int = Field(0, ge=0, description="no policy prior")
    horizon: int | None = Field(5, ge=1, description="imagined steps to the goal")
    max_std: float = Field(1.0, gt=0.0)
    energy: str = Field(
        "all",
        pattern="^(final|all)$",
        description="distance averaged over every imagined state (default: reach the goal "
        "soon, so the first action commits) or at the last imagined state only (V-JEPA 2-AC)",
    )


@register_component("behaviour", "goal_cem", params_model=GoalCEMParams)
class GoalCEM(CEMPlanner):
    """CEM over action sequences minimising ``|feat(z_H) - feat(encode(goal))|`` (mean over
    features). ``act(model, obs [B, ...], carry, goal=goal_obs [B, ...])`` -> ``[B, A]``."""

    needs_goal = True

    def __init__(self, ctx: BuildContext, params: GoalCEMParams) -> None:
        super().__init__(ctx, params)
        self.energy = params.energy
        self._goal: Tensor | None = None

    def check_model(self, model: WorldModel) -> None:
        """The model encodes observations and steps its state (every WorldModel does)."""
        if model.dynamics_model is None or model.observation_encoder is None:
            raise CapabilityError("goal_cem needs the encoder and dynamics slots")

    def act(
        self,
        model: WorldModel,
        obs: Tensor | dict[str, Tensor],
        carry: Any = None,
        *,
        is_first: bool = False,
        eval_mode: bool = False,
        goal: Tensor | dict[str, Tensor] | None = None,
    ) -> tuple[Tensor, Any]:
        """Plan from ``obs`` toward ``goal`` (``[B, *obs_shape]``) -> ``(action [B, A], None)``."""
        if goal is None:
            raise CapabilityError("goal_cem: act(...) needs goal=<goal observation [B, ...]>")
        with torch.no_grad():
            goal_feat = state_features(model.encode(goal)).float()
        self._goal = goal_feat.repeat_interleave(self.params.num_samples, dim=0)
        try:
            action: Tensor = self(model, obs, eval_mode=eval_mode, t0=is_first)
        finally:
            self._goal = None
        return action, None

    def _value(self, fns: LatentFunctions, state: State, actions: Tensor, gamma: float) -> Tensor:
        """Minus the goal energy of ``actions [H, N, A]`` from ``state [N, ...]``: ``[N]``."""
        goal = self._goal
        if goal is None:
            raise CapabilityError("goal_cem plans only through act(..., goal=...)")
        total = torch.zeros(actions.shape[1], dtype=goal.dtype, device=goal.device)
        for t in range(actions.shape[0]):
            state = fns.model.transition(state, self.env_action(actions[t]), validate=False)
            if self.energy == "all" or t == actions.shape[0] - 1:
                total = total + (state_features(state).float() - goal).abs().mean(-1)
        if self.energy == "all":
            total = total / actions.shape[0]
        return -total
