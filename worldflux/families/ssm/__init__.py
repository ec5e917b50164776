"""SSM (SKELETON): a selective state-space world model (Mamba's S6 layer).

Registers ``ssm.action`` and ``ssm.selective`` (:mod:`.slots`, the parallel and sequential scans
in :mod:`.scan`); the spec completes it with the generic ``mlp_encoder``, ``mlp_decoder``,
``open_loop`` and ``generic`` objective.
"""

from worldflux.families.ssm import scan, slots

__all__ = ["scan", "slots"]
