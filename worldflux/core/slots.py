"""The five slots of the Model Developer Guide (what every world model is built from)."""

from __future__ import annotations

__all__ = ["SLOTS"]

#: The five slots of the Model Developer Guide, in build order, with the model attribute of each.
SLOTS: dict[str, str] = {
    "observation_encoder": "observation_encoder",
    "action_conditioner": "action_conditioner",
    "dynamics_model": "dynamics_model",
    "decoder": "decoder_module",
    "rollout_executor": "rollout_executor",
}
