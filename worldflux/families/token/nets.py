"""The token family's tokenizer networks: IRIS's convolutional VQ-VAE, small, and the quantiser.

Images ``[C, H, W]``: :class:`ConvEncoder` downsamples by 2 ``downsamples`` times to a
``[code_dim, h, w]`` grid (``h = H / 2^d``, ``w = W / 2^d``); each grid cell is one token, so a
frame has ``h * w`` tokens, row-major. :class:`ConvDecoder` mirrors it back to ``[C, H, W]``.
As IRIS (taming-transformers' encoder), with these differences: no attention blocks at the low
resolutions, the encoder's output convolution goes straight to ``code_dim`` (IRIS adds a 1x1
pre-quantisation convolution, and a 1x1 post-quantisation one before the decoder), and the
downsampling convolution pads symmetrically.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from worldflux.core.exceptions import ConfigurationError

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "ResBlock",
    "grid_shape",
    "nearest_codes",
    "straight_through",
]


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with two channels per group, at most 32 groups (IRIS: 32 groups)."""
    return nn.GroupNorm(math.gcd(32, max(channels // 2, 1)), channels, eps=1e-6)


class ResBlock(nn.Module):
    """``x + conv(SiLU(norm(conv(SiLU(norm(x))))))`` on ``[B, ch, h, w]`` (3x3 convolutions)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            _norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.block(x)
        return out


def grid_shape(obs_shape: tuple[int, ...], downsamples: int, owner: str) -> tuple[int, int]:
    """The token grid ``(h, w)`` of ``[C, H, W]`` images after ``downsamples`` halvings.

    Raises:
        ConfigurationError: H or W is not divisible by ``2 ** downsamples``.
    """
    _, height, width = obs_shape
    step = 2**downsamples
    if height % step or width % step:
        raise ConfigurationError(
            f"{owner}: image obs_shape {list(obs_shape)} must have H and W divisible by "
            f"2 ** tokenizer_downsamples = {step}"
        )
    return height // step, width // step


class ConvEncoder(nn.Module):
    """``[B, C, H, W]`` -> ``[B, code_dim, H / 2^d, W / 2^d]``.

    conv 3x3 -> d x (``res_blocks`` ResBlocks, stride-2 conv 3x3) -> ``res_blocks`` ResBlocks ->
    norm, SiLU, conv 3x3 to ``code_dim``.
    """

    def __init__(
        self, in_channels: int, channels: int, downsamples: int, res_blocks: int, code_dim: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1)]
        for _ in range(downsamples):
            layers += [ResBlock(channels) for _ in range(res_blocks)]
            layers.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
        layers += [ResBlock(channels) for _ in range(res_blocks)]
        layers += [_norm(channels), nn.SiLU(), nn.Conv2d(channels, code_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x)
        return out


class ConvDecoder(nn.Module):
    """``[B, code_dim, h, w]`` -> ``[B, C, h 2^d, w 2^d]``, the mirror of :class:`ConvEncoder`.

    conv 3x3 -> ``res_blocks`` ResBlocks -> d x (nearest upsampling x2, conv 3x3, ``res_blocks``
    ResBlocks) -> norm, SiLU, conv 3x3 to C.
    """

    def __init__(
        self, code_dim: int, channels: int, downsamples: int, res_blocks: int, out_channels: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(code_dim, channels, 3, padding=1)]
        layers += [ResBlock(channels) for _ in range(res_blocks)]
        for _ in range(downsamples):
            layers += [nn.Upsample(scale_factor=2.0, mode="nearest")]
            layers.append(nn.Conv2d(channels, channels, 3, padding=1))
            layers += [ResBlock(channels) for _ in range(res_blocks)]
        layers += [_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        out: Tensor = self.net(z)
        return out


def nearest_codes(z_e: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest codebook row (squared Euclidean) for each vector.

    Args:
        z_e: ``[..., C]`` encoder outputs.
        codebook: ``[V, C]``.

    Returns:
        ``[...]`` int64 in ``[0, V)``: ``argmin_v ||z_e - codebook[v]||²``.
    """
    dist = (
        z_e.pow(2).sum(-1, keepdim=True)
        - 2 * torch.matmul(z_e, codebook.t())
        + codebook.pow(2).sum(-1)
    )
    return dist.argmin(-1)


def straight_through(z_e: Tensor, z_q: Tensor) -> Tensor:
    """``z_q`` in the forward pass, the identity's gradient to ``z_e`` in the backward pass."""
    return z_e + (z_q - z_e).detach()
