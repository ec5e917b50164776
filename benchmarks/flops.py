"""Analytic FLOP counts (F = 2 x MACs of dense and convolution layers) of the benchmarks.

These are the *floor's* work: the matmuls (and, for frames, convolutions) the reference
architecture must do (the formulas of the reference notes, world-models.md §10.3), independent
of how a family implements them. The harness divides them by the calibrated matmul speed, so
``efficiency = FLOPs / (time x GFLOP/s)`` and ``floor = FLOPs / GFLOP/s``. Norms, activations,
pooling, sampling and optimiser arithmetic are not counted (they are O(width), not O(width^2)).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = [
    "DREAMERV3_PRESETS",
    "TDMPC2_PRESETS",
    "DreamerDims",
    "TDMPC2Dims",
    "dreamer_imagine_step",
    "dreamer_policy",
    "dreamer_rollout_step",
    "dreamer_train_step",
    "dreamer_with_image",
    "mlp_macs",
    "tdmpc2_dynamics_step",
    "tdmpc2_mppi",
    "tdmpc2_update",
]

#: Two-hot bins of the DreamerV3 reward/value heads and of the TD-MPC2 reward/Q heads.
DREAMER_BINS = 255
TDMPC2_BINS = 101


def mlp_macs(widths: list[int]) -> int:
    """MACs of a dense MLP through ``widths`` (``[in, hidden..., out]``), per sample."""
    return sum(a * b for a, b in itertools.pairwise(widths))


@dataclass(frozen=True)
class DreamerDims:
    """DreamerV3 (current official architecture) sizes for a vector observation.

    deter D, hidden H, stoch S x classes K, MLP units U, GRU blocks G, action A, obs width O.
    ``mlp_layers`` hidden layers in the encoder/decoder/policy/value, 1 in reward/continue.
    ``image`` ``(C, H, W)`` replaces the vector observation by frames: a CNN encoder of
    ``depth * mults`` channels (``kernel``-square stride-1 convs, each followed by a 2x2 pool) and
    the mirrored decoder (``bspace`` block-linear spatial projection, x2 upsampling, convs).
    """

    deter: int
    hidden: int
    classes: int
    units: int
    stoch: int = 32
    blocks: int = 8
    action_dim: int = 6
    obs_dim: int = 24
    mlp_layers: int = 3
    image: tuple[int, int, int] | None = None
    depth: int = 16
    mults: tuple[int, ...] = (2, 3, 4, 4)
    kernel: int = 5
    bspace: int = 8

    @property
    def feat(self) -> int:
        """Width of the features the heads read: deter + stoch * classes."""
        return self.deter + self.stoch * self.classes

    @property
    def embed(self) -> int:
        """Width of the encoder's output (the posterior's observation input)."""
        if self.image is None:
            return self.units
        _, h, w = self.image
        factor = 1 << len(self.mults)
        return self.depth * self.mults[-1] * (h // factor) * (w // factor)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Official presets (dreamerv3/configs.yaml), Walker proprio (obs 24, action 6); ``ci`` is
#: worldflux's CPU preset (specs/models/dreamerv3.yaml: the parity goldens' tiny config).
DREAMERV3_PRESETS: dict[str, DreamerDims] = {
    "ci": DreamerDims(deter=64, hidden=16, classes=4, units=16, depth=4),
    "size1m": DreamerDims(deter=512, hidden=64, classes=4, units=64, depth=4),
    "size12m": DreamerDims(deter=2048, hidden=256, classes=16, units=256, depth=16),
    "size25m": DreamerDims(deter=3072, hidden=384, classes=24, units=384, depth=24),
    "size50m": DreamerDims(deter=4096, hidden=512, classes=32, units=512, depth=32),
}


def dreamer_with_image(d: DreamerDims, image: tuple[int, int, int]) -> DreamerDims:
    """``d`` observing ``image`` frames ``(C, H, W)`` instead of a vector."""
    return replace(d, image=image)


def _conv_macs(d: DreamerDims) -> tuple[int, int]:
    """(encoder, decoder) MACs of the CNNs per frame (0, 0 without an image)."""
    if d.image is None:
        return 0, 0
    channels, h, w = d.image
    chans = [d.depth * m for m in d.mults]
    k2 = d.kernel * d.kernel
    encoder, cin = 0, channels
    for index, cout in enumerate(chans):  # stride-1 conv at the stage's input resolution
        encoder += (h >> index) * (w >> index) * k2 * cin * cout
        cin = cout
    stages = len(chans)
    low = (h >> stages) * (w >> stages) * chans[-1]  # the spatial projection's width
    decoder = d.deter * low // d.bspace + mlp_macs([d.stoch * d.classes, 2 * d.units, low])
    ups = [*reversed(chans[:-1]), channels]
    cin = chans[-1]
    for index, cout in enumerate(ups):  # x2 upsampling, then the conv at the new resolution
        scale = stages - 1 - index
        decoder += (h >> scale) * (w >> scale) * k2 * cin * cout
        cin = cout
    return encoder, decoder


def _encoder_macs(d: DreamerDims) -> int:
    if d.image is not None:
        return _conv_macs(d)[0]
    return mlp_macs([d.obs_dim] + [d.units] * d.mlp_layers)


def _decoder_macs(d: DreamerDims) -> int:
    if d.image is not None:
        return _conv_macs(d)[1]
    return mlp_macs([d.feat] + [d.units] * d.mlp_layers + [d.obs_dim])


def _dreamer_img_macs(d: DreamerDims) -> int:
    """One RSSM prior step: core (3 input layers, block GRU) and the prior logits MLP."""
    sk = d.stoch * d.classes
    inputs = d.deter * d.hidden + sk * d.hidden + d.action_dim * d.hidden
    dyn = (d.deter // d.blocks + 3 * d.hidden) * d.deter  # BlockLinear: G blocks of (D/G+3H)·D/G
    gates = 3 * d.deter * d.deter // d.blocks  # BlockLinear to 3·D
    prior = mlp_macs([d.deter, d.hidden, d.hidden, sk])
    return inputs + dyn + gates + prior


def dreamer_imagine_step(d: DreamerDims) -> float:
    """FLOPs of one imagination step per sample, RSSM only (actions given)."""
    return 2.0 * _dreamer_img_macs(d)


def dreamer_rollout_step(d: DreamerDims) -> float:
    """FLOPs of one ``model.rollout`` step per sample: the RSSM prior step plus the decode of the
    imagined state (reward and continue heads, vector observation decoder)."""
    decode = (
        mlp_macs([d.feat, d.units, DREAMER_BINS])
        + mlp_macs([d.feat, d.units, 1])
        + _decoder_macs(d)
    )
    return 2.0 * (_dreamer_img_macs(d) + decode)


def _policy_macs(d: DreamerDims) -> int:
    return mlp_macs([d.feat] + [d.units] * d.mlp_layers + [2 * d.action_dim])


def dreamer_policy(d: DreamerDims) -> float:
    """FLOPs of one policy evaluation (mean and std of a continuous action) per sample."""
    return 2.0 * _policy_macs(d)


def dreamer_train_step(d: DreamerDims, batch: int, seq_len: int, horizon: int = 15) -> float:
    """FLOPs of one full DreamerV3 update on ``[batch, seq_len]`` with imagination ``horizon``.

    = 3 x world-model forward (forward + backward) over B*T steps (encoder, posterior step,
    decoder, reward, continue); imagination forward of H steps from every replay state (RSSM +
    policy, no grad); heads on the H+1 imagined states (reward, continue, policy, value, slow
    value forward; policy and value backward); the replay-value loss on B*T states (value
    forward + backward, slow value forward).
    """
    sk = d.stoch * d.classes
    units = [d.units] * d.mlp_layers
    encoder = _encoder_macs(d)
    observe = _dreamer_img_macs(d) + mlp_macs([d.deter + d.embed, d.hidden, sk])
    decoder = _decoder_macs(d)
    reward = mlp_macs([d.feat, d.units, DREAMER_BINS])
    cont = mlp_macs([d.feat, d.units, 1])
    policy = _policy_macs(d)
    value = mlp_macs([d.feat, *units, DREAMER_BINS])
    world_model = 3 * (encoder + observe + decoder + reward + cont)
    imagine = horizon * (_dreamer_img_macs(d) + policy)
    heads = (horizon + 1) * (reward + cont + policy + 2 * value + 2 * (policy + value))
    replay_value = 3 * value + value
    per_start = world_model + imagine + heads + replay_value
    return 2.0 * per_start * batch * seq_len


@dataclass(frozen=True)
class TDMPC2Dims:
    """TD-MPC2 sizes: latent L, mlp M, encoder width E and layers, Q heads, action A, obs O."""

    latent: int
    mlp: int
    enc: int
    num_enc_layers: int
    num_q: int
    action_dim: int = 6
    obs_dim: int = 24

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Official MODEL_SIZE presets (tdmpc2/common/__init__.py), Walker (obs 24, action 6).
TDMPC2_PRESETS: dict[str, TDMPC2Dims] = {
    "1m": TDMPC2Dims(latent=128, mlp=384, enc=256, num_enc_layers=2, num_q=2),
    "5m": TDMPC2Dims(latent=512, mlp=512, enc=256, num_enc_layers=2, num_q=5),
    "19m": TDMPC2Dims(latent=768, mlp=1024, enc=1024, num_enc_layers=3, num_q=5),
}


def _tdmpc2_parts(d: TDMPC2Dims) -> dict[str, int]:
    za = d.latent + d.action_dim
    return {
        "encoder": mlp_macs([d.obs_dim] + [d.enc] * (d.num_enc_layers - 1) + [d.latent]),
        "dynamics": mlp_macs([za, d.mlp, d.mlp, d.latent]),
        "reward": mlp_macs([za, d.mlp, d.mlp, TDMPC2_BINS]),
        "q": mlp_macs([za, d.mlp, d.mlp, TDMPC2_BINS]),  # one Q head
        "pi": mlp_macs([d.latent, d.mlp, d.mlp, 2 * d.action_dim]),
    }


def tdmpc2_dynamics_step(d: TDMPC2Dims) -> float:
    """FLOPs of one latent step (the dynamics MLP) per sample."""
    return 2.0 * _tdmpc2_parts(d)["dynamics"]


def tdmpc2_mppi(
    d: TDMPC2Dims,
    *,
    samples: int = 512,
    iterations: int = 6,
    horizon: int = 3,
    q_heads: int = 2,
    policy_trajectories: int = 24,
) -> float:
    """FLOPs of one MPPI action: per iteration and sample, H x (dynamics + reward), one policy
    and ``q_heads`` Q heads at the horizon; plus the policy-prior trajectories (H x (pi + dyn))
    and the encoding of the observation. ``q_heads=2`` is the floor (only the two sampled heads).
    """
    p = _tdmpc2_parts(d)
    per_sample = horizon * (p["dynamics"] + p["reward"]) + p["pi"] + q_heads * p["q"]
    prior = policy_trajectories * horizon * (p["pi"] + p["dynamics"])
    return 2.0 * (samples * iterations * per_sample + prior + p["encoder"])


def tdmpc2_update(d: TDMPC2Dims, batch: int, horizon: int = 3) -> float:
    """FLOPs of one TD-MPC2 update on ``[batch, horizon + 1]`` (reference accounting, §10.4).

    Forward: encoder on H+1 observations; TD targets (pi + every target Q head on H next
    latents); H dynamics steps; every Q head and the reward on H steps; the policy update's pi and
    every (detached) Q head on H+1 latents. Backward: 2 x the gradient-carrying part (one encoder
    pass, dynamics, Q heads, reward), 2 x pi and 1 x every Q head (input gradients) for the policy.
    """
    p = _tdmpc2_parts(d)
    all_q = d.num_q * p["q"]
    forward = (
        (horizon + 1) * p["encoder"]
        + horizon * (p["pi"] + all_q)
        + horizon * p["dynamics"]
        + horizon * (all_q + p["reward"])
        + (horizon + 1) * (p["pi"] + all_q)
    )
    grad_part = p["encoder"] + horizon * (p["dynamics"] + all_q + p["reward"])
    policy_backward = (horizon + 1) * (2 * p["pi"] + all_q)
    return 2.0 * (forward + 2 * grad_part + policy_backward) * batch
