"""JEPA (EXPERIMENTAL): I-JEPA-style latent prediction with an EMA target encoder.

Registers ``jepa.encoder``, ``jepa.predictor``, ``jepa.heads`` and ``jepa.objective``; the
action conditioner (``concat``) and the rollout executor (``open_loop``) are generic.
"""

from worldflux.families.jepa import objective, slots

__all__ = ["objective", "slots"]
