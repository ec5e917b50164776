"""Token (EXPERIMENTAL): an IRIS-style discrete-token world model.

A VQ-VAE (codebook, straight-through; convolutional for images, one token per grid cell, see
:mod:`.nets`; an MLP for vectors) turns each observation into N tokens; a causal transformer over
[obs tokens, action token] blocks predicts the next frame's tokens, the reward's sign class and
the continue flag. The objective trains the tokenizer and the world model as separate parts with
their own optimisers, the world model on the tokenizer's integer tokens, after an optional
tokenizer-only warm-up (``tokenizer_updates``). Registers ``token.tokenizer``, ``token.action``,
``token.transformer``, ``token.decoder`` and ``token.objective``; its causal transformer, shared
with ``vjepa2``, is :mod:`worldflux.families.shared.transformer`.
"""

from worldflux.families.token import objective, slots

__all__ = ["objective", "slots"]
