"""DreamerV3 (REFERENCE): slot implementations, objective, weight map and parity handler.

Importing this package registers ``dreamerv3.encoder``, ``dreamerv3.action``, ``dreamerv3.rssm``,
``dreamerv3.decoder``, ``dreamerv3.imagine``, ``dreamerv3.objective`` and the ``dreamerv3``
parity handler.
"""

from worldflux.families.dreamerv3 import decoder, encoder, objective, parity, rollout, rssm
from worldflux.parity import register_parity_handler

register_parity_handler("dreamerv3", parity.DreamerParityHandler())

__all__ = ["decoder", "encoder", "objective", "parity", "rollout", "rssm"]
