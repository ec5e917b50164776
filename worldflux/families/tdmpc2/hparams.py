"""TD-MPC2 hyperparameters, read from a model config with the official defaults.

The spec (specs/models/tdmpc2.yaml) declares every field below in the generated config class;
:func:`hparams_from` also accepts any config object (missing fields take the official default),
so the slots can be built from a hand-made config in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from worldflux.core.exceptions import ConfigurationError

__all__ = ["MODEL_SIZES", "TDMPC2HParams", "discount_from_episode_length", "hparams_from"]

#: Official model sizes (tdmpc2/common/__init__.py MODEL_SIZE) plus the golden ``tiny`` (= ci).
MODEL_SIZES: dict[str, dict[str, int]] = {
    "ci": {"enc_dim": 32, "mlp_dim": 32, "latent_dim": 16, "num_enc_layers": 2, "num_q": 2},
    "1m": {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    "5m": {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2, "num_q": 5},
    "19m": {"enc_dim": 1024, "mlp_dim": 1024, "latent_dim": 768, "num_enc_layers": 3, "num_q": 5},
    "48m": {"enc_dim": 1792, "mlp_dim": 1792, "latent_dim": 768, "num_enc_layers": 4, "num_q": 5},
    "317m": {"enc_dim": 4096, "mlp_dim": 4096, "latent_dim": 1376, "num_enc_layers": 5, "num_q": 8},
}


@dataclass(frozen=True)
class TDMPC2HParams:
    """Every TD-MPC2 hyperparameter (official config.yaml defaults, model size 5)."""

    enc_dim: int = 256
    mlp_dim: int = 512
    latent_dim: int = 512
    num_enc_layers: int = 2
    num_q: int = 5
    simnorm_dim: int = 8
    dropout: float = 0.01
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    horizon: int = 3
    episode_length: int = 1000
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995

    @property
    def discount(self) -> float:
        """γ from the episode length (official heuristic)."""
        return discount_from_episode_length(
            self.episode_length, self.discount_denom, self.discount_min, self.discount_max
        )


def discount_from_episode_length(
    episode_length: int, denom: float = 5.0, low: float = 0.95, high: float = 0.995
) -> float:
    """clip((L/denom − 1)/(L/denom), low, high); e.g. 500 -> 0.99, 1000 -> 0.995."""
    frac = episode_length / denom
    return min(max((frac - 1) / frac, low), high)


def hparams_from(config: Any) -> TDMPC2HParams:
    """The hyperparameters a config holds (official defaults for fields it lacks).

    Raises:
        ConfigurationError: ``latent_dim`` is not a multiple of ``simnorm_dim``, or a size is < 1.
    """
    values: dict[str, Any] = {
        f.name: getattr(config, f.name, f.default) for f in fields(TDMPC2HParams)
    }
    hp = TDMPC2HParams(**values)
    if hp.latent_dim % hp.simnorm_dim:
        raise ConfigurationError(
            f"tdmpc2: latent_dim must be a multiple of simnorm_dim={hp.simnorm_dim}, "
            f"found {hp.latent_dim}"
        )
    for name in ("enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "horizon", "num_bins"):
        if getattr(hp, name) < 1:
            raise ConfigurationError(f"tdmpc2: {name} must be >= 1, found {getattr(hp, name)}")
    if hp.num_q < 2:
        raise ConfigurationError(
            f"tdmpc2: num_q must be >= 2 (two heads are subsampled), found {hp.num_q}"
        )
    return hp
