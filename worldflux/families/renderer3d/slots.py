"""SKELETON: a latent scene code decoded by a tiny differentiable, camera-conditioned 3D renderer.

The decoder maps the scene code ``z [B, L]`` to G isotropic 3D Gaussians in *world* space
(centres in the cube ``[-extent, extent]³``, radius, opacity, colour). A camera (a world-to-camera
pose ``R, t`` and pinhole intrinsics ``[fx, fy, cx, cy]`` in pixels,
:mod:`worldflux.families.renderer3d.camera`) moves them to camera space, projects their centres,
sorts them by depth per sample and alpha-composites them front to back over a learned
background: ``I = Σ_g T_g α_g c_g + T_G b`` with ``T_g = Π_{h<g} (1 - α_h)``. ``decode`` renders
from the default camera (``look_at(0, 0, camera_distance)``, ``focal``);
:meth:`GaussianRenderer.render` renders the same scene from any pose. Reward and continue heads
read the scene code. Generic encoder / dynamics / objective complete it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from worldflux.components._common import build_mlp
from worldflux.core.components import BuildContext, Decoder
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.registry import register_component
from worldflux.core.types import ModelOutput, State
from worldflux.families.renderer3d.camera import default_intrinsics, look_at, project, to_camera
from worldflux.families.shared.hparams import family_hparam, require_dims

__all__ = ["GaussianRenderer", "hp", "render_gaussians"]

#: Gaussians closer to the camera than this (or behind it) are not drawn.
NEAR = 0.05


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
    rotation: Tensor,
    translation: Tensor,
    intrinsics: Tensor,
) -> Tensor:
    """Alpha-composite world-space Gaussians seen by a pinhole camera, front to back.

    Args:
        pos: ``[B, G, 3]`` world-space centres.
        radius: ``[B, G]`` world-space radii; opacity ``[B, G]`` in (0, 1); color ``[B, G, C]``.
        background: ``[C]``; hw: output height and width.
        rotation, translation: world-to-camera pose, ``[3, 3]`` / ``[3]`` or per sample
            ``[B, 3, 3]`` / ``[B, 3]`` (``X_c = R X_w + t``).
        intrinsics: ``[4]`` or ``[B, 4]``: ``fx, fy, cx, cy`` in pixels (pixel centres at
            integer coordinates).

    Returns:
        image ``[B, C, H, W]``. A Gaussian's footprint is isotropic in the image with standard
        deviation ``fx * radius / depth`` (``fy ...`` vertically); Gaussians with depth below
        ``NEAR`` are transparent.
    """
    height, width = hw
    cam = to_camera(pos, rotation, translation)
    order = cam[..., 2].argsort(dim=1)
    cam = cam.gather(1, order.unsqueeze(-1).expand_as(cam))
    radius, opacity = radius.gather(1, order), opacity.gather(1, order)
    color = color.gather(1, order.unsqueeze(-1).expand_as(color))
    uv, depth, in_front = project(cam, intrinsics, NEAR)  # [B, G, 2] pixels
    k = intrinsics.to(pos.dtype).expand(pos.shape[0], 4)
    sigma_x = (k[:, 0:1] * radius / depth).view(*radius.shape, 1, 1)
    sigma_y = (k[:, 1:2] * radius / depth).view(*radius.shape, 1, 1)
    rows = torch.arange(height, device=pos.device, dtype=pos.dtype)
    cols = torch.arange(width, device=pos.device, dtype=pos.dtype)
    dy = rows.view(1, 1, height, 1) - uv[..., 1].view(*uv.shape[:2], 1, 1)
    dx = cols.view(1, 1, 1, width) - uv[..., 0].view(*uv.shape[:2], 1, 1)
    falloff = torch.exp(-0.5 * ((dx / sigma_x) ** 2 + (dy / sigma_y) ** 2))
    visible = (opacity * in_front.to(opacity.dtype)).view(*opacity.shape, 1, 1)
    alpha = visible * falloff  # [B, G, H, W]
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
        self.distance = float(hp(ctx, "camera_distance"))
        self.focal = float(hp(ctx, "focal"))
        if self.distance <= 3**0.5 * self.extent:
            raise ConfigurationError(
                f"renderer3d: camera_distance {self.distance} must exceed sqrt(3) * extent "
                f"= {3**0.5 * self.extent:.3g} so the default camera sees the whole scene cube"
            )
        require_dims(ctx, "renderer3d.renderer", "latent_dim", built_by="the observation encoder")
        latent = int(ctx.dims["latent_dim"])
        self.to_scene = nn.Linear(latent, self.prims * (3 + 1 + 1 + self.channels))
        self.background = nn.Parameter(torch.zeros(self.channels))
        hidden = int(hp(ctx, "head_hidden"))
        self.reward = build_mlp(latent, hidden, 1, 1)
        self.cont = build_mlp(latent, hidden, 1, 1)

    def scene(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(pos [B, G, 3] world, radius [B, G], opacity [B, G], color [B, G, C])`` from ``z``."""
        raw = self.to_scene(z).view(z.shape[0], self.prims, -1)
        pos = torch.tanh(raw[..., :3]) * self.extent
        radius = 0.05 + nn.functional.softplus(raw[..., 3]) * 0.5
        opacity = torch.sigmoid(raw[..., 4])
        return pos, radius, opacity, raw[..., 5:]

    def default_camera(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(rotation [3, 3], translation [3], intrinsics [4])`` of ``decode``'s camera."""
        rotation, translation = look_at(0.0, 0.0, self.distance, like.dtype, like.device)
        intrinsics = default_intrinsics(self.hw, self.focal, like.dtype).to(like.device)
        return rotation, translation, intrinsics

    def render(
        self,
        state: State,
        rotation: Tensor | None = None,
        translation: Tensor | None = None,
        intrinsics: Tensor | None = None,
    ) -> Tensor:
        """The scene of ``state`` seen from a pose: image ``[B, C, H, W]``.

        ``rotation [3, 3] | [B, 3, 3]``, ``translation [3] | [B, 3]`` (world-to-camera, e.g. from
        :func:`~worldflux.families.renderer3d.camera.look_at`), ``intrinsics [4] | [B, 4]``;
        any left out is the default camera's.
        """
        z = state["latent"]
        base_rotation, base_translation, base_intrinsics = self.default_camera(z)
        return render_gaussians(
            *self.scene(z),
            self.background,
            self.hw,
            base_rotation if rotation is None else rotation,
            base_translation if translation is None else translation,
            base_intrinsics if intrinsics is None else intrinsics,
        )

    def forward(self, state: State) -> ModelOutput:
        z = state["latent"]
        return ModelOutput(
            predictions={
                "obs": self.render(state),
                "reward": self.reward(z).squeeze(-1),
                "continue": torch.sigmoid(self.cont(z).squeeze(-1)),
            },
            state=state,
        )
