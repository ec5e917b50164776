"""Behaviours: how a world model acts. A spec names one (``behaviour: {impl: KEY, params}``);
``model.act(obs, carry, ...)`` and ``worldflux train`` use it. Registered on import:

* ``mppi``, ``cem``: sampling planners on predicted returns (:mod:`worldflux.planning`,
  TD-MPC2's machinery; ``model.plan(obs)``);
* ``actor_critic``: a Dreamer-style actor-critic trained in the model's imagination
  (:mod:`.actor_critic`; its loss terms ``policy`` / ``value`` join the model's loss);
* ``goal_cem``: CEM toward a goal observation's embedding (:mod:`.goal`, V-JEPA 2-AC);
* ``objective_policy``: the objective's own policy (DreamerV3's actor, :mod:`.objective_policy`).
"""

from worldflux.behaviour.actor_critic import (
    ActorCriticParams,
    ImaginationActorCritic,
    imagination_losses,
)
from worldflux.behaviour.goal import GoalCEM, GoalCEMParams
from worldflux.behaviour.objective_policy import ObjectivePolicy
from worldflux.planning import CEMPlanner, MPPIPlanner

__all__ = [
    "ActorCriticParams",
    "CEMPlanner",
    "GoalCEM",
    "GoalCEMParams",
    "ImaginationActorCritic",
    "MPPIPlanner",
    "ObjectivePolicy",
    "imagination_losses",
]
