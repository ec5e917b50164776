"""Diffusion (EXPERIMENTAL): a DIAMOND-style world model.

An EDM denoiser conditioned on the last frames and actions generates the next observation in a
few Euler steps (a U-Net with AdaGroupNorm for images, ``unet.py``; a FiLM MLP for vectors);
the shared EDM sampler (``EDM.sample``) starts from noise with churn in training mode and is
deterministic in eval mode; a separate recurrent reward/termination model (``rewend.py``)
predicts reward sign and termination. Registers ``diffusion.frames``, ``diffusion.action``,
``diffusion.edm``, ``diffusion.heads`` and ``diffusion.objective``; the EDM maths it shares with
``dit`` is in :mod:`worldflux.families.shared.edm`.
"""

from worldflux.families.diffusion import objective, slots

__all__ = ["objective", "slots"]
