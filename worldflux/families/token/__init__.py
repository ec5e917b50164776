"""Token (EXPERIMENTAL): an IRIS-style discrete-token world model.

A discrete autoencoder (codebook, straight-through) turns each observation into N tokens; a causal
transformer over [obs tokens, action token] blocks predicts the next frame's tokens, the reward and
the continue flag. Registers ``token.tokenizer``, ``token.action``, ``token.transformer``,
``token.decoder`` and ``token.objective``; its causal transformer, shared with ``vjepa2``, is
:mod:`worldflux.families.shared.transformer`.
"""

from worldflux.families.token import objective, slots

__all__ = ["objective", "slots"]
