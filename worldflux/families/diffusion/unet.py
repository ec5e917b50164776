"""DIAMOND-style convolutional blocks: AdaGroupNorm, conditioned residual blocks, a small U-Net.

A smaller version of DIAMOND's denoiser network (arXiv:2405.12399, section 3 and appendix):
the past K frames are stacked on the channels of the noisy next frame, residual conv blocks run
at ``len(unet_channels)`` resolutions with stride-2 down and nearest-neighbour up sampling and
skip connections between the two paths, and every block is conditioned on the noise level and
the actions through adaptive group normalisation. Written from the paper's description; the
sizes are the spec's (``unet_channels``, ``unet_depth``, ``cond_dim``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.families.shared.edm import sinusoidal_embedding

__all__ = ["AdaGroupNorm", "CondResBlock", "DiffusionUNet", "group_count"]

#: Channels per GroupNorm group (DIAMOND: 32); small layers get one group.
GROUP_SIZE = 32


def group_count(channels: int) -> int:
    """GroupNorm groups for ``channels``: about ``channels / GROUP_SIZE``, dividing ``channels``."""
    groups = max(1, channels // GROUP_SIZE)
    while channels % groups:
        groups -= 1
    return groups


class AdaGroupNorm(nn.Module):
    """``GN(x) * (1 + scale) + shift`` with ``(scale, shift) = Linear(cond)`` per sample.

    Shapes: ``x [B, C, H, W]``, ``cond [B, cond_dim]`` -> ``[B, C, H, W]``. The GroupNorm has
    no affine weights of its own: the conditioning embedding decides them.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.groups = group_count(channels)
        self.linear = nn.Linear(cond_dim, 2 * channels)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.linear(cond)[:, :, None, None].chunk(2, dim=1)
        out: Tensor = F.group_norm(x, self.groups, eps=1e-5) * (1 + scale) + shift
        return out


class CondResBlock(nn.Module):
    """``proj(x) + conv2(SiLU(AdaGN(conv1(SiLU(AdaGN(x))))))``, ``[B, Ci, H, W] -> [B, Co, H, W]``.

    ``conv2`` starts at zero (as DIAMOND's), so each block starts as its skip path.
    """

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int) -> None:
        super().__init__()
        self.proj: nn.Module = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.norm1 = AdaGroupNorm(in_ch, cond_dim)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = AdaGroupNorm(out_ch, cond_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x, cond)))
        h = self.conv2(F.silu(self.norm2(h, cond)))
        out: Tensor = self.proj(x) + h
        return out


class _Stage(nn.Module):
    """``depth`` conditioned residual blocks in a row: ``[B, Ci, H, W] -> [B, Co, H, W]``."""

    def __init__(self, in_ch: int, out_ch: int, depth: int, cond_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            CondResBlock(in_ch if j == 0 else out_ch, out_ch, cond_dim) for j in range(depth)
        )

    def forward(self, z: Tensor, cond: Tensor) -> Tensor:
        for block in self.blocks:
            z = block(z, cond)
        return z


class DiffusionUNet(nn.Module):
    """``F(c_in x, c_noise | past frames, actions)`` for image observations ``[C, H, W]``.

    Input channels: the K past frames (scaled by ``1 / sigma_data``, as DIAMOND) and the noisy
    frame, ``(K + 1) C``. Conditioning: ``MLP([sinusoid(c_noise), actions, valid])`` of width
    ``cond_dim``, fed to every AdaGroupNorm. Level ``i`` (resolution ``H / 2^i``) has
    ``depth`` blocks of ``channels[i]``; the up path concatenates each level's skip.
    Shapes: ``x [B, C, H, W]``, ``c_noise [B]``, ``frames [B, K, C, H, W]``,
    ``actions [B, K, E]``, ``valid [B, K]`` -> ``[B, C, H, W]``. H and W need not be powers of
    two: the input is zero-padded to a multiple of ``2^(levels - 1)`` and the output cropped.
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        context: int,
        action_dim: int,
        *,
        channels: tuple[int, ...],
        depth: int,
        cond_dim: int,
        noise_dim: int,
        sigma_data: float,
    ) -> None:
        super().__init__()
        img_ch = int(obs_shape[0])
        self.noise_dim, self.sigma_data = noise_dim, sigma_data
        self.levels = len(channels)
        cond_in = noise_dim + context * action_dim + context
        self.cond = nn.Sequential(
            nn.Linear(cond_in, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )
        self.conv_in = nn.Conv2d((context + 1) * img_ch, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = channels[0]
        for i, ch in enumerate(channels):
            self.down.append(_Stage(prev, ch, depth, cond_dim))
            prev = ch
            if i < self.levels - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = CondResBlock(prev, prev, cond_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(self.levels)):
            ch = channels[i]
            self.up.append(_Stage(prev + ch, ch, depth, cond_dim))
            prev = ch
            if i > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.norm_out = nn.GroupNorm(group_count(prev), prev)
        self.conv_out = nn.Conv2d(prev, img_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)

    def embed(self, c_noise: Tensor, actions: Tensor, valid: Tensor) -> Tensor:
        """The conditioning embedding ``[B, cond_dim]``."""
        noise = sinusoidal_embedding(c_noise, self.noise_dim)
        cond: Tensor = self.cond(torch.cat([noise, actions.flatten(1), valid], dim=-1))
        return cond

    def forward(
        self, x: Tensor, c_noise: Tensor, frames: Tensor, actions: Tensor, valid: Tensor
    ) -> Tensor:
        cond = self.embed(c_noise, actions, valid)
        b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        mult = 2 ** (self.levels - 1)
        pad_h, pad_w = -h % mult, -w % mult
        inp = torch.cat([frames.reshape(b, -1, h, w) / self.sigma_data, x], dim=1)
        z = self.conv_in(F.pad(inp, (0, pad_w, 0, pad_h)))
        skips = []
        for i, stage in enumerate(self.down):
            z = stage(z, cond)
            skips.append(z)
            if i < self.levels - 1:
                z = self.downsample[i](z)
        z = self.mid(z, cond)
        for i, stage in enumerate(self.up):
            if i > 0:
                z = self.upsample[i - 1](F.interpolate(z, scale_factor=2.0, mode="nearest"))
            z = stage(torch.cat([z, skips[self.levels - 1 - i]], dim=1), cond)
        out: Tensor = self.conv_out(F.silu(self.norm_out(z)))
        return out[..., :h, :w]
