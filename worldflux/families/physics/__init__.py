"""Physics (SKELETON): latent particles integrated with a learned force MLP (semi-implicit Euler).

Registers ``physics.euler``; the spec completes it with the generic ``mlp_encoder``, ``concat``,
``mlp_decoder``, ``open_loop`` and ``generic`` objective.
"""

from worldflux.families.physics import slots

__all__ = ["slots"]
