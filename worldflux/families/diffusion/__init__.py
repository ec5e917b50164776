"""Diffusion (EXPERIMENTAL): a DIAMOND-style world model.

An EDM denoiser conditioned on the last frames and actions generates the next observation in a few
Euler steps; reward/continue heads read the last (frame, action). Registers
``diffusion.frames``, ``diffusion.action``, ``diffusion.edm``, ``diffusion.heads`` and
``diffusion.objective``; :mod:`.edm` holds the EDM maths shared with ``dit``.
"""

from worldflux.families.diffusion import edm, objective, slots

__all__ = ["edm", "objective", "slots"]
