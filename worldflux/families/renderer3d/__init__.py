"""Renderer3D (SKELETON): latent scene code + tiny differentiable, camera-conditioned Gaussian-splat
renderer (camera poses and intrinsics in :mod:`worldflux.families.renderer3d.camera`).

Registers ``renderer3d.renderer``; the spec completes it with the generic ``cnn_encoder``,
``concat``, ``mlp_dynamics``, ``open_loop`` and ``generic`` objective.
"""

from worldflux.families.renderer3d import slots

__all__ = ["slots"]
