"""SSM (SKELETON): a diagonal linear state-space world model.

Registers ``ssm.action`` and ``ssm.diagonal``; the spec completes it with the generic
``mlp_encoder``, ``mlp_decoder``, ``open_loop`` and ``generic`` objective.
"""

from worldflux.families.ssm import slots

__all__ = ["slots"]
