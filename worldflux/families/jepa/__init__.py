"""JEPA (EXPERIMENTAL): I-JEPA at small scale as an action-conditioned latent world model.

``masks`` (multi-block target/context masks on a token grid; 1-D spans for vectors), ``vit``
(patch / feature-token ViT encoder, mask-token predictor), ``slots`` (registers
``jepa.encoder`` with its EMA target, ``jepa.predictor``, ``jepa.heads``) and ``objective``
(``jepa.objective``: masked prediction, open-loop latent, spread, reward and continue terms; the
EMA momentum schedule). The action conditioner (``concat``) and the rollout executor
(``open_loop``) are generic.
"""

from worldflux.families.jepa import objective, slots

__all__ = ["objective", "slots"]
