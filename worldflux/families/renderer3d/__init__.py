"""Renderer3D (SKELETON): latent scene code + tiny differentiable Gaussian-splat renderer.

Registers ``renderer3d.renderer``; the spec completes it with the generic ``cnn_encoder``,
``concat``, ``mlp_dynamics``, ``open_loop`` and ``generic`` objective.
"""

from worldflux.families.renderer3d import slots

__all__ = ["slots"]
