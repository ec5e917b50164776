"""``dreamerv3.encoder``: observations -> tokens ``{"embed": [B, E]}`` (official ``rssm.Encoder``).

* vector keys (rank 0 or 1 per sample), in sorted key order: symlog, concatenated, then
  ``enc_layers`` x (Dense, RMSNorm, SiLU) of ``units``;
* image keys (``[C, H, W]`` per sample), concatenated on channels: ``x/255 - 0.5`` for uint8
  (``x - 0.5`` for floats in [0, 1]), then per depth ``depth * mults[i]``: 5x5 stride-1 conv,
  2x2 max-pool, RMSNorm over channels, SiLU; flattened in (H, W, C) order as the official NHWC;
* the tokens are the vector features followed by the image features.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.components import BuildContext, ObservationEncoder
from worldflux.core.exceptions import ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.spec import ModelIOContract, TensorSpec
from worldflux.core.types import State
from worldflux.families.dreamerv3.hparams import hp, obs_layout
from worldflux.nn.nets import Dense, RMSNorm, symlog, trunc_normal_in_

__all__ = ["DreamerEncoder", "split_keys"]


def split_keys(layout: dict[str, tuple[int, ...]]) -> tuple[list[str], list[str]]:
    """(sorted vector keys, sorted image keys) of an observation layout."""
    vec = sorted(k for k, s in layout.items() if len(s) <= 1)
    img = sorted(k for k, s in layout.items() if len(s) == 3)
    bad = sorted(k for k, s in layout.items() if len(s) == 2 or len(s) > 3)
    if bad:
        raise ContractViolation(
            f"dreamerv3 observations: keys {bad} have rank 2 or >3; expected [] / [N] vectors "
            "or [C, H, W] images"
        )
    return vec, img


def as_dict(obs: Tensor | dict[str, Tensor], keys: list[str]) -> dict[str, Tensor]:
    """A plain tensor becomes ``{"obs": obs}``; a dict is checked for the expected keys."""
    if isinstance(obs, Tensor):
        if keys != ["obs"]:
            raise ContractViolation(f"obs: expected a dict with keys {keys}, found a tensor")
        return {"obs": obs}
    missing = sorted(set(keys) - set(obs))
    if missing:
        raise ContractViolation(f"obs: missing keys {missing}; expected {sorted(keys)}")
    return obs


class Conv(nn.Module):
    """Stride-1 'same' 2D conv with the official init; ``weight [O, I, k, k]`` (OIHW)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, outscale: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        trunc_normal_in_(self.weight, in_ch * kernel * kernel, outscale)
        self.pad = kernel // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.pad)


def channel_norm(norm: nn.Module, x: Tensor) -> Tensor:
    """RMSNorm over the channel axis of ``x [N, C, H, W]``."""
    normed: Tensor = norm(x.permute(0, 2, 3, 1))
    return normed.permute(0, 3, 1, 2)


class VectorEncoder(nn.Module):
    """symlog + ``layers`` x (Dense, RMSNorm, SiLU). ``[N, in] -> [N, units]``.

    Submodules are named as the official ones: ``mlp{i}`` and ``mlp{i}norm``.
    """

    def __init__(self, in_dim: int, layers: int, units: int) -> None:
        super().__init__()
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(layers):
            self.linears.append(Dense(in_dim if i == 0 else units, units))
            self.norms.append(RMSNorm(units))
        self.out_dim = units if layers else in_dim

    def forward(self, x: Tensor) -> Tensor:
        for linear, norm in zip(self.linears, self.norms, strict=True):
            x = F.silu(norm(linear(x)))
        return x


class ImageEncoder(nn.Module):
    """Conv stack: per stage 5x5 conv, 2x2 max-pool, channel RMSNorm, SiLU. ``[N,C,H,W]->[N,F]``."""

    def __init__(self, in_ch: int, hw: tuple[int, int], depths: list[int], kernel: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        ch, (h, w) = in_ch, hw
        for depth in depths:
            self.convs.append(Conv(ch, depth, kernel))
            self.norms.append(RMSNorm(depth))
            ch, h, w = depth, h // 2, w // 2
        self.out_dim = ch * h * w

    def forward(self, x: Tensor) -> Tensor:
        # channels-last memory (NHWC, as the official layout): oneDNN's convolutions and the
        # pooling run ~1.5x faster on CPU than on NCHW memory with the same results, and the
        # channel RMSNorm's permute and the final (H, W, C) flatten need no copies
        x = x.contiguous(memory_format=torch.channels_last)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.max_pool2d(conv(x), 2)
            x = F.silu(channel_norm(norm, x))
        return x.permute(0, 2, 3, 1).flatten(1)


@register_component("observation_encoder", "dreamerv3.encoder")
class DreamerEncoder(ObservationEncoder):
    """Observations ``[B, *obs_shape]`` (or a dict) -> ``State({"embed": [B, E]})``.

    Sets ``ctx.dims["embed_dim"] = E`` and ``ctx.dims["obs_layout"]``.
    """

    #: The whole encoder (docs/compile.md).
    compile_regions = ("forward",)

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.layout = obs_layout(ctx)
        self.vec_keys, self.img_keys = split_keys(self.layout)
        units = int(hp(ctx, "units"))
        out = 0
        self.vector: VectorEncoder | None = None
        self.image: ImageEncoder | None = None
        if self.vec_keys:
            in_dim = sum(math.prod(self.layout[k]) for k in self.vec_keys)
            self.vector = VectorEncoder(in_dim, int(hp(ctx, "enc_layers")), units)
            out += self.vector.out_dim
        if self.img_keys:
            shapes = [self.layout[k] for k in self.img_keys]
            channels = sum(s[0] for s in shapes)
            depths = [int(hp(ctx, "depth")) * int(m) for m in hp(ctx, "mults")]
            hw = (shapes[0][1], shapes[0][2])
            self.image = ImageEncoder(channels, hw, depths, int(hp(ctx, "kernel")))
            out += self.image.out_dim
        self.embed_dim = out
        ctx.dims["embed_dim"] = out
        ctx.dims["obs_layout"] = dict(self.layout)

    def refine_contract(self, contract: ModelIOContract) -> ModelIOContract:
        """With dict observations (config ``obs_keys``) the contract's one ``obs`` tensor becomes
        one modality per key, ``[B, *shape]`` each, with the declared ``obs`` dtype."""
        if list(self.layout) == ["obs"]:
            return contract
        base = contract.observation.get("obs")
        dtype = base.dtype if base is not None else "float32"
        observation = {
            k: TensorSpec(shape=self.layout[k], dtype=dtype) for k in sorted(self.layout)
        }
        return replace(contract, observation=observation)

    def vector_input(self, obs: dict[str, Tensor], lead: int) -> Tensor:
        """symlog of the vector keys, concatenated in sorted order: ``[*lead_shape, D]``."""
        parts = []
        for key in self.vec_keys:
            x = obs[key].float()
            shape = x.shape[:lead]
            parts.append(symlog(x.reshape(*shape, -1)))
        return torch.cat(parts, -1)

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        """``obs [B, ...]`` or ``[B, T, ...]`` -> ``embed [B, E]`` or ``[B, T, E]``."""
        data = as_dict(obs, sorted(self.layout))
        first = data[sorted(self.layout)[0]]
        lead = first.dim() - len(self.layout[sorted(self.layout)[0]])
        bshape = first.shape[:lead]
        outs: list[Tensor] = []
        dtype = next(self.parameters()).dtype
        if self.vector is not None:
            x = self.vector_input(data, lead).to(dtype)
            outs.append(self.vector(x.reshape(-1, x.shape[-1])))
        if self.image is not None:
            imgs = [data[k] for k in self.img_keys]
            if imgs[0].dtype == torch.uint8:
                x = torch.cat([i.float() for i in imgs], -3) / 255.0 - 0.5
            else:
                x = torch.cat([i.float() for i in imgs], -3) - 0.5
            outs.append(self.image(x.reshape(-1, *x.shape[lead:]).to(dtype)))
        tokens = outs[0] if len(outs) == 1 else torch.cat(outs, -1)
        return State({"embed": tokens.reshape(*bshape, tokens.shape[-1])})
