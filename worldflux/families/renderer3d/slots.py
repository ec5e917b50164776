"""SKELETON: a latent scene code decoded by a tiny differentiable 3D renderer.

The decoder maps the scene code ``z [B, L]`` to G isotropic 3D Gaussians (camera-space position
with depth > 1, radius, opacity, colour), projects them with a pinhole camera (focal length 1,
image plane ``[-1, 1]²``), sorts them by depth per sample and alpha-composites them front to back
over a learned background: ``I = Σ_g T_g α_g c_g + T_G b`` with ``T_g = Π_{h<g} (1 - α_h)``.
Reward and continue heads read the scene code. Generic encoder / dynamics / objective complete it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.components._common import build_mlp
from worldflux.core.components import BuildContext, Decoder
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.types import ModelOutput, State
from worldflux.families.shared.hparams import family_hparam, require_dims

__all__ = ["GaussianRenderer", "hp", "render_gaussians"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the renderer3d spec."""
    return family_hparam(ctx, "renderer3d", name)


def render_gaussians(
    pos: Tensor,
    radius: Tensor,
    opacity: Tensor,
    color: Tensor,
    background: Tensor,
    hw: tuple[int, int],
) -> Tensor:
    """Alpha-composite projected Gaussians front to back.

    Args:
        pos: ``[B, G, 3]`` camera-space centres (depth ``pos[..., 2] > 0``).
        radius: ``[B, G]`` world-space radii; opacity ``[B, G]`` in (0, 1); color ``[B, G, C]``.
        background: ``[C]``; hw: output height and width.

    Returns:
        image ``[B, C, H, W]``.
    """
    height, width = hw
    depth = pos[..., 2]
    order = depth.argsort(dim=1)
    pos = pos.gather(1, order.unsqueeze(-1).expand_as(pos))
    radius, opacity = radius.gather(1, order), opacity.gather(1, order)
    color = color.gather(1, order.unsqueeze(-1).expand_as(color))
    depth = pos[..., 2]
    uv = pos[..., :2] / depth.unsqueeze(-1)  # [B, G, 2] on the image plane
    r = radius / depth  # projected radius
    ys = torch.linspace(-1.0, 1.0, height, device=pos.device, dtype=pos.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=pos.device, dtype=pos.dtype)
    dy = ys.view(1, 1, height, 1) - uv[..., 1].view(*uv.shape[:2], 1, 1)
    dx = xs.view(1, 1, 1, width) - uv[..., 0].view(*uv.shape[:2], 1, 1)
    falloff = torch.exp(-(dx**2 + dy**2) / (2 * r.view(*r.shape, 1, 1) ** 2))
    alpha = opacity.view(*opacity.shape, 1, 1) * falloff  # [B, G, H, W]
    ones = torch.ones_like(alpha[:, :1])
    trans = torch.cumprod(torch.cat([ones, 1 - alpha], dim=1), dim=1)  # [B, G+1, H, W]
    weights = trans[:, :-1] * alpha
    image = torch.einsum("bghw,bgc->bchw", weights, color)
    return image + trans[:, -1:] * background.view(1, -1, 1, 1)


@register_component("decoder", "renderer3d.renderer")
class GaussianRenderer(Decoder):
    """Scene code ``{"latent": [B, L]}`` -> rendered ``obs [B, C, H, W]``, reward, continue."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        if len(ctx.obs_shape) != 3:
            raise ConfigurationError(
                f"renderer3d renders images [C, H, W], found obs_shape {list(ctx.obs_shape)}"
            )
        self.channels, height, width = ctx.obs_shape
        self.hw = (int(height), int(width))
        self.prims = int(hp(ctx, "num_primitives"))
        self.extent = float(hp(ctx, "extent"))
        require_dims(ctx, "renderer3d.renderer", "latent_dim", built_by="the observation encoder")
        latent = int(ctx.dims["latent_dim"])
        self.to_scene = nn.Linear(latent, self.prims * (3 + 1 + 1 + self.channels))
        self.background = nn.Parameter(torch.zeros(self.channels))
        hidden = int(hp(ctx, "head_hidden"))
        self.reward = build_mlp(latent, hidden, 1, 1)
        self.cont = build_mlp(latent, hidden, 1, 1)

    def scene(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(pos [B, G, 3], radius [B, G], opacity [B, G], color [B, G, C])`` from ``z``."""
        raw = self.to_scene(z).view(z.shape[0], self.prims, -1)
        xy = torch.tanh(raw[..., :2]) * self.extent
        depth = 1.0 + F.softplus(raw[..., 2:3]) + 0.5
        radius = 0.05 + F.softplus(raw[..., 3]) * 0.5
        opacity = torch.sigmoid(raw[..., 4])
        return torch.cat([xy, depth], -1), radius, opacity, raw[..., 5:]

    def forward(self, state: State) -> ModelOutput:
        z = state["latent"]
        image = render_gaussians(*self.scene(z), self.background, self.hw)
        return ModelOutput(
            predictions={
                "obs": image,
                "reward": self.reward(z).squeeze(-1),
                "continue": torch.sigmoid(self.cont(z).squeeze(-1)),
            },
            state=state,
        )
