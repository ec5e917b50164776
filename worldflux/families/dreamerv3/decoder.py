"""``dreamerv3.decoder``: State -> observation reconstruction, reward and continue.

Official ``rssm.Decoder`` plus the agent's ``rew`` and ``con`` heads:

* vector keys: an MLP of ``dec_layers`` x ``units`` on ``[stoch_flat, deter]`` (stoch first), then
  one dense output per key, in symlog space; loss = squared error against ``symlog(target)``
  summed over the key's features;
* image keys: the ``bspace`` block-linear spatial projection, nearest x2 upsampling with 5x5 convs
  and a sigmoid output; loss = squared error summed over C, H, W;
* reward: ``rew_layers`` MLP on ``[deter, stoch_flat]`` (deter first), 255 symexp two-hot bins,
  zero-initialised output;
* continue: ``con_layers`` MLP on the same features, one logit (Bernoulli).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.components import BuildContext, Decoder
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.spec import ModelIOContract
from worldflux.core.types import ModelOutput, State
from worldflux.families.dreamerv3.encoder import Conv, as_dict, channel_norm, split_keys
from worldflux.families.dreamerv3.hparams import hp, obs_layout
from worldflux.nn.heads import BinaryHead, TwoHotHead
from worldflux.nn.nets import MLP, BlockLinear, Dense, RMSNorm, symexp, symlog

__all__ = ["DreamerDecoder", "feat_of"]


def feat_of(state: State) -> Tensor:
    """Head input ``[deter, stoch_flat]``: ``[..., D + S*K]``."""
    stoch = state["stoch"]
    return torch.cat([state["deter"], stoch.reshape(*stoch.shape[:-2], -1)], -1)


class ImageDecoder(nn.Module):
    """``deter [N, D]``, ``stoch_flat [N, SK]`` -> images ``[N, C, H, W]`` in [0, 1]."""

    def __init__(
        self,
        deter: int,
        stoch_flat: int,
        units: int,
        out_ch: int,
        hw: tuple[int, int],
        depths: list[int],
        kernel: int,
        bspace: int,
    ) -> None:
        super().__init__()
        factor = 2 ** len(depths)
        self.minres = (hw[0] // factor, hw[1] // factor)
        self.channels = depths[-1]
        self.bspace = bspace
        u = self.minres[0] * self.minres[1] * self.channels
        self.sp0 = BlockLinear(deter, u, bspace)
        self.sp1 = Dense(stoch_flat, 2 * units)
        self.sp1norm = RMSNorm(2 * units)
        self.sp2 = Dense(2 * units, u)
        self.spnorm = RMSNorm(self.channels)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        ch = self.channels
        for depth in reversed(depths[:-1]):
            self.convs.append(Conv(ch, depth, kernel))
            self.norms.append(RMSNorm(depth))
            ch = depth
        self.imgout = Conv(ch, out_ch, kernel)

    def forward(self, deter: Tensor, stoch_flat: Tensor) -> Tensor:
        n, g = deter.shape[0], self.bspace
        h, w = self.minres
        c = self.channels
        x0 = self.sp0(deter.view(n, g, -1))  # [N, g * h * w * c/g], block-major
        x0 = x0.view(n, g, h, w, c // g).permute(0, 2, 3, 1, 4).reshape(n, h, w, c)
        x1 = F.silu(self.sp1norm(self.sp1(stoch_flat)))
        x1 = self.sp2(x1).view(n, h, w, c)
        x = F.silu(self.spnorm(x0 + x1)).permute(0, 3, 1, 2)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = F.silu(channel_norm(norm, conv(x)))
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.sigmoid(self.imgout(x))


@register_component("decoder", "dreamerv3.decoder")
class DreamerDecoder(Decoder):
    """Predictions for a State ``[B, ...]``: ``reward [B]``, ``continue [B]`` (probability) and the
    reconstruction (``obs [B, *obs_shape]`` raw units, or ``obs_<key>`` for dict observations)."""

    #: The training loss's reconstruction and its terms (docs/compile.md).
    compile_regions = ("reconstruct", "rec_losses")

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        if ctx.dims and "deter" not in ctx.dims:
            # Built after other slots (a swap) whose dynamics is not the DreamerV3 RSSM: the
            # decoder reads the RSSM's {deter, stoch} state and cannot serve this model.
            raise ConfigurationError(
                "dreamerv3.decoder reads the DreamerV3 RSSM state {deter, stoch}; it cannot "
                "replace the decoder of a model with other dynamics"
            )
        self.layout = obs_layout(ctx)
        self.vec_keys, self.img_keys = split_keys(self.layout)
        deter = int(ctx.dims.get("deter", hp(ctx, "deter")))
        sk = int(ctx.dims.get("stoch_flat", int(hp(ctx, "stoch")) * int(hp(ctx, "classes"))))
        units = int(hp(ctx, "units"))
        feat = deter + sk
        self.mlp: MLP | None = None
        self.vec = nn.ModuleDict()
        if self.vec_keys:
            self.mlp = MLP(feat, int(hp(ctx, "dec_layers")), units)
            for key in self.vec_keys:
                self.vec[key] = Dense(self.mlp.out_dim, max(1, math.prod(self.layout[key])))
        self.image: ImageDecoder | None = None
        if self.img_keys:
            shapes = [self.layout[k] for k in self.img_keys]
            depths = [int(hp(ctx, "depth")) * int(m) for m in hp(ctx, "mults")]
            self.image = ImageDecoder(
                deter,
                sk,
                units,
                sum(s[0] for s in shapes),
                (shapes[0][1], shapes[0][2]),
                depths,
                int(hp(ctx, "kernel")),
                int(hp(ctx, "bspace")),
            )
        self.rew = TwoHotHead(feat, int(hp(ctx, "rew_layers")), units, int(hp(ctx, "bins")))
        self.con = BinaryHead(feat, int(hp(ctx, "con_layers")), units)

    def refine_contract(self, contract: ModelIOContract) -> ModelIOContract:
        """With dict observations the declared ``obs`` reconstruction becomes ``obs_<key>``
        ``[B, *shape]`` per key (what :meth:`forward` returns)."""
        if list(self.layout) == ["obs"]:
            return contract
        predictions = {k: v for k, v in contract.predictions.items() if k != "obs"}
        base = contract.predictions.get("obs")
        if base is not None:
            for key in sorted(self.layout):
                predictions[f"obs_{key}"] = replace(base, shape=self.layout[key])
        return replace(contract, predictions=predictions)

    # -- pieces used by the objective and the parity check ----------------------------------------
    def reconstruct(self, deter: Tensor, stoch: Tensor) -> dict[str, Tensor]:
        """Raw decoder outputs per key: vectors in symlog space ``[N, *shape]``, images in [0, 1]
        ``[N, C, H, W]``. ``deter [N, D]``, ``stoch [N, S, K]``."""
        stoch_flat = stoch.reshape(stoch.shape[0], -1)
        out: dict[str, Tensor] = {}
        if self.mlp is not None:
            x = self.mlp(torch.cat([stoch_flat, deter], -1))
            for key in self.vec_keys:
                out[key] = self.vec[key](x).reshape(-1, *self.layout[key])
        if self.image is not None:
            imgs = self.image(deter, stoch_flat)
            start = 0
            for key in self.img_keys:
                ch = self.layout[key][0]
                out[key] = imgs[:, start : start + ch]
                start += ch
        return out

    def rec_losses(self, recon: dict[str, Tensor], obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-key reconstruction loss ``[N]``; ``obs`` values ``[N, *shape]`` (raw units)."""
        losses: dict[str, Tensor] = {}
        for key in self.vec_keys:
            target = symlog(obs[key].float()).detach()
            err = (recon[key] - target).square()
            losses[key] = err.reshape(err.shape[0], -1).sum(-1)
        for key in self.img_keys:
            target = obs[key]
            target = target.float() / 255.0 if target.dtype == torch.uint8 else target.float()
            losses[key] = (recon[key] - target.detach()).square().flatten(1).sum(-1)
        return losses

    def as_obs_dict(self, obs: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
        return as_dict(obs, sorted(self.layout))

    # -- slot interface ---------------------------------------------------------------------------
    def forward(self, state: State) -> ModelOutput:
        feat = feat_of(state)
        predictions = {
            "reward": self.rew.dist(feat).pred(),
            "continue": torch.sigmoid(self.con(feat)),
        }
        recon = self.reconstruct(state["deter"], state["stoch"])
        for key, value in recon.items():
            value = symexp(value) if key in self.vec_keys else value
            predictions["obs" if list(self.layout) == ["obs"] else f"obs_{key}"] = value
        return ModelOutput(predictions=predictions, state=state)
