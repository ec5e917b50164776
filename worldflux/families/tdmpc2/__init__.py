"""TD-MPC2 (REFERENCE): slot implementations, objective, planner and weight map.

Importing this package registers ``tdmpc2.encoder``, ``tdmpc2.dynamics``, ``tdmpc2.heads``,
``tdmpc2.objective``, the planners (``mppi``, ``cem``, from :mod:`worldflux.planning`) and the
``tdmpc2`` parity handler.
"""

import worldflux.behaviour  # noqa: F401  (registers the behaviours: mppi, cem, ...)
from worldflux.families.tdmpc2 import objective, parity, slots

__all__ = ["objective", "parity", "slots"]
