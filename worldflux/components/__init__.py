"""Generic slot implementations, usable by any spec (registered on import).

observation_encoder: ``mlp_encoder``, ``cnn_encoder``; action_conditioner: ``concat``, ``film``;
dynamics_model: ``mlp_dynamics``, ``gru_dynamics``; decoder: ``mlp_decoder``, ``cnn_decoder``;
rollout_executor: ``open_loop``; objective: ``generic``. Sizes in their params are ints or config
symbols (``"latent_dim"``), so presets resize them.
"""

from worldflux.components import (
    conditioners,
    decoders,
    dynamics,
    encoders,
    objectives,
    rollout,
)

__all__ = ["conditioners", "decoders", "dynamics", "encoders", "objectives", "rollout"]
