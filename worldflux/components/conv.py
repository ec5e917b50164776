"""Conv stacks shared by the generic image encoders and decoders.

``conv_stages`` halves height and width per stage (kernel 4, stride 2, padding 1) and doubles the
channels from ``depth``; ``deconv_stages`` is its mirror, ending in the image's channels with no
activation. :class:`ConvTrunk` / :class:`DeconvHead` wrap them between flat vectors, so a
component that flattens observations (``mlp_encoder``, ``mlp_decoder``) can read and write
images through convolutions with ``images: conv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field
from torch import nn

from worldflux.components._common import Size, activation
from worldflux.core.exceptions import ConfigurationError

__all__ = [
    "ConvTrunk",
    "DeconvHead",
    "ImageConvParams",
    "ImageMode",
    "check_image_shape",
    "conv_stages",
    "deconv_stages",
    "deepest_grid",
]

#: How a flattening component (``mlp_encoder``, ``mlp_decoder``) treats ``[C, H, W]``
#: observations: through its MLP as a flat vector, or through conv stages.
ImageMode = Literal["flatten", "conv"]


class ImageConvParams(BaseModel):
    """The image params shared by ``mlp_encoder`` and ``mlp_decoder``."""

    images: ImageMode = Field(
        "flatten",
        description="image observations [C, H, W]: 'flatten' (through the MLP as one vector) or "
        "'conv' (conv stages and a linear map to / from the features instead)",
    )
    conv_depth: Size = Field(16, description="channels of the outermost conv stage (images: conv)")
    conv_stages: int = Field(
        2, ge=1, le=6, description="conv stages (images: conv), each halving / doubling H and W"
    )


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


def deepest_grid(height: int, width: int, depth: int, stages: int) -> tuple[int, int, int]:
    """``(channels, h, w)`` after ``stages`` conv stages: ``depth * 2**(stages-1)`` channels on
    the ``H / 2**stages`` x ``W / 2**stages`` grid (where deconv stages start)."""
    factor = 2**stages
    return depth * 2 ** (stages - 1), height // factor, width // factor


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
        grid = deepest_grid(height, width, depth, stages)
        super().__init__(
            nn.Unflatten(1, (channels, height, width)),
            *conv_stages(channels, depth, stages, act),
            nn.Flatten(1),
            nn.Linear(grid[0] * grid[1] * grid[2], out),
        )


class DeconvHead(nn.Sequential):
    """Features ``[B, D]`` -> a linear map to the smallest grid -> transposed-conv stages ->
    flat images ``[B, C*H*W]``."""

    def __init__(
        self, owner: str, in_dim: int, obs_shape: Sequence[int], depth: int, stages: int, act: str
    ) -> None:
        channels, height, width = check_image_shape(owner, obs_shape, stages)
        start = deepest_grid(height, width, depth, stages)
        super().__init__(
            nn.Linear(in_dim, start[0] * start[1] * start[2]),
            nn.Unflatten(1, start),
            *deconv_stages(channels, depth, stages, act),
            nn.Flatten(1),
        )
