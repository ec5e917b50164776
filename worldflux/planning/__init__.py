"""Sampling planners over a world model's latent space: ``mppi`` (TD-MPC2) and ``cem``.

Both are registered as kind ``"planner"`` on import; a spec names one (``planner: {impl: mppi}``)
and ``model.plan(obs)`` calls it. See :mod:`worldflux.planning.base` for what a model must offer.
"""

from worldflux.planning.base import LatentFunctions, SamplingPlanner, SamplingPlannerParams
from worldflux.planning.cem import CEMPlanner
from worldflux.planning.mppi import MPPIPlanner, gumbel_sample

__all__ = [
    "CEMPlanner",
    "LatentFunctions",
    "MPPIPlanner",
    "SamplingPlanner",
    "SamplingPlannerParams",
    "gumbel_sample",
]
