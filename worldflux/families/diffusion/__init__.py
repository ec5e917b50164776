"""Diffusion (EXPERIMENTAL): a DIAMOND-style world model.

An EDM denoiser conditioned on the last frames and actions generates the next observation in a few
Euler steps; reward/continue heads read the last (frame, action). Registers
``diffusion.frames``, ``diffusion.action``, ``diffusion.edm``, ``diffusion.heads`` and
``diffusion.objective``; the EDM maths it shares with ``dit`` is in
:mod:`worldflux.families.shared.edm`.
"""

from worldflux.families.diffusion import objective, slots

__all__ = ["objective", "slots"]
