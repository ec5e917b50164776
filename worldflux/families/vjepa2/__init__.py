"""V-JEPA 2 (EXPERIMENTAL): a V-JEPA 2-AC-style action-conditioned latent world model.

A patch-token ViT encoder (with an EMA target; or frozen and loaded from a pretrained vjepa2
checkpoint, :mod:`~worldflux.families.vjepa2.pretrained`) embeds each frame; a block-causal
transformer with 3-D RoPE (:mod:`~worldflux.families.vjepa2.rope`) over [action token, patch
tokens] frames predicts the next frame's features; the loss is L1 in latent
space with teacher forcing plus an auto-regressive rollout term. Registers ``vjepa2.encoder``,
``vjepa2.action``, ``vjepa2.predictor``, ``vjepa2.heads`` and ``vjepa2.objective``.
"""

from worldflux.families.vjepa2 import objective, slots

__all__ = ["objective", "slots"]
