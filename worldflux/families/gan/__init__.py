"""GAN (SKELETON): generator latent dynamics trained against a transition discriminator.

Registers ``gan.generator`` and ``gan.objective`` (which owns the discriminator); the spec
completes it with the generic ``mlp_encoder``, ``concat``, ``mlp_decoder`` and ``open_loop``.
"""

from worldflux.families.gan import objective, slots

__all__ = ["objective", "slots"]
