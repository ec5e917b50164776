"""Conv stacks shared by the generic image encoders and decoders.

``conv_stages`` halves height and width per stage (kernel 4, stride 2, padding 1) and doubles the
channels from ``depth``; ``deconv_stages`` is its mirror, ending in the image's channels with no
activation. :class:`ConvTrunk` / :class:`DeconvHead` wrap them between flat vectors, so a
component that flattens observations (``mlp_encoder``, ``mlp_decoder``) can read and write
images through convolutions with ``images: conv``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from worldflux.components._common import activation
from worldflux.core.exceptions import ConfigurationError

__all__ = ["ConvTrunk", "DeconvHead", "check_image_shape", "conv_stages", "deconv_stages"]


def check_image_shape(owner: str, obs_shape: Sequence[int], stages: int) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``obs_shape`` when ``stages`` stride-2 stages fit it.

    Raises:
        ConfigurationError: not ``[C, H, W]``, or H / W not divisible by ``2**stages``.
    """
    if len(obs_shape) != 3:
        raise ConfigurationError(f"{owner} needs obs_shape [C, H, W], found {list(obs_shape)}")
    channels, height, width = (int(d) for d in obs_shape)
    factor = 2**stages
    if height % factor or width % factor:
        raise ConfigurationError(
            f"{owner} with {stages} stages needs height and width divisible by {factor}, found "
            f"obs_shape {list(obs_shape)}"
        )
    return channels, height, width


def conv_stages(in_channels: int, depth: int, stages: int, act: str) -> list[nn.Module]:
    """Conv + activation per stage; stage ``s`` has ``depth * 2**s`` channels."""
    layers: list[nn.Module] = []
    for stage in range(stages):
        out_ch = depth * 2**stage
        layers += [nn.Conv2d(in_channels, out_ch, 4, stride=2, padding=1), activation(act)]
        in_channels = out_ch
    return layers


def deconv_stages(out_channels: int, depth: int, stages: int, act: str) -> list[nn.Module]:
    """The mirror of :func:`conv_stages`: from ``depth * 2**(stages-1)`` channels to
    ``out_channels``, an activation between stages and none after the last."""
    layers: list[nn.Module] = []
    ch = depth * 2 ** (stages - 1)
    for stage in reversed(range(stages)):
        out_ch = out_channels if stage == 0 else depth * 2 ** (stage - 1)
        layers.append(nn.ConvTranspose2d(ch, out_ch, 4, stride=2, padding=1))
        if stage:
            layers.append(activation(act))
        ch = out_ch
    return layers


class ConvTrunk(nn.Sequential):
    """Flat images ``[B, C*H*W]`` -> conv stages -> ``[B, out]`` (a linear projection)."""

    def __init__(
        self, owner: str, obs_shape: Sequence[int], depth: int, stages: int, out: int, act: str
    ) -> None:
        channels, height, width = check_image_shape(owner, obs_shape, stages)
        factor = 2**stages
        flat = depth * 2 ** (stages - 1) * (height // factor) * (width // factor)
        super().__init__(
            nn.Unflatten(1, (channels, height, width)),
            *conv_stages(channels, depth, stages, act),
            nn.Flatten(1),
            nn.Linear(flat, out),
        )


class DeconvHead(nn.Sequential):
    """Features ``[B, D]`` -> a linear map to the smallest grid -> transposed-conv stages ->
    flat images ``[B, C*H*W]``."""

    def __init__(
        self, owner: str, in_dim: int, obs_shape: Sequence[int], depth: int, stages: int, act: str
    ) -> None:
        channels, height, width = check_image_shape(owner, obs_shape, stages)
        factor = 2**stages
        start = (depth * 2 ** (stages - 1), height // factor, width // factor)
        super().__init__(
            nn.Linear(in_dim, start[0] * start[1] * start[2]),
            nn.Unflatten(1, start),
            *deconv_stages(channels, depth, stages, act),
            nn.Flatten(1),
        )
