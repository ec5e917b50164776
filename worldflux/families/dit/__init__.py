"""DiT (SKELETON): diffusion-transformer latent dynamics (adaLN-Zero, EDM sampling).

Registers ``dit.denoiser`` and ``dit.objective``; the spec completes it with the generic
``mlp_encoder``, ``concat``, ``mlp_decoder`` and ``open_loop``.
"""

from worldflux.families.dit import objective, slots

__all__ = ["objective", "slots"]
