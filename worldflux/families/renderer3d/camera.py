"""Camera model of the renderer3d family: world-to-camera poses and pinhole intrinsics.

Conventions (OpenCV): camera ``x`` right, ``y`` down, ``z`` forward (depth). A pose is the
world-to-camera rigid transform ``X_c = R X_w + t`` (``rotation R [.., 3, 3]``, ``translation
t [.., 3]``). Intrinsics ``[fx, fy, cx, cy]`` are in pixels, pixel ``(u, v)`` (column, row) has its
centre at integer coordinates, so a camera-space point projects to
``u = fx * x / z + cx``, ``v = fy * y / z + cy``.

World frame: ``y`` points down as well, so the default camera (azimuth 0, elevation 0) has
``R = I`` and sits at ``(0, 0, -distance)`` looking along ``+z`` at the origin.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["default_intrinsics", "look_at", "project", "radians", "to_camera"]


def look_at(
    azimuth: Tensor | float,
    elevation: Tensor | float,
    distance: Tensor | float,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """The pose of a camera on a sphere of radius ``distance`` looking at the origin.

    The camera centre is ``distance * (cos e sin a, -sin e, -cos e cos a)``: azimuth ``a``
    (radians) turns it about the world's vertical (``y``) axis, elevation ``e`` lifts it above the
    scene (towards ``-y``, "up"). Rows of ``R`` are the camera's right ``(cos a, 0, sin a)``,
    down ``(sin e sin a, cos e, -sin e cos a)`` and forward ``-C / |C|`` axes; ``t = -R C =
    (0, 0, distance)``.

    Args:
        azimuth, elevation, distance: floats or tensors of one shape ``[*S]``.

    Returns:
        ``(rotation [*S, 3, 3], translation [*S, 3])``.
    """
    a, e, d = (
        torch.as_tensor(v, dtype=dtype, device=device) for v in (azimuth, elevation, distance)
    )
    zero = torch.zeros_like(a + e + d)  # broadcast to one shape
    a, e, d = a + zero, e + zero, d + zero
    right = torch.stack([a.cos(), zero, a.sin()], -1)
    down = torch.stack([e.sin() * a.sin(), e.cos(), -e.sin() * a.cos()], -1)
    forward = torch.stack([-e.cos() * a.sin(), e.sin(), e.cos() * a.cos()], -1)
    rotation = torch.stack([right, down, forward], -2)
    translation = torch.stack([zero, zero, d], -1)
    return rotation, translation


def default_intrinsics(
    hw: tuple[int, int], focal: float, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``[fx, fy, cx, cy]`` of a camera whose image plane ``[-1/focal, 1/focal]²`` (at depth 1)
    spans the image from the first to the last pixel centre: ``fx = focal (W - 1) / 2``,
    ``cx = (W - 1) / 2`` (and the same with ``H`` for ``fy``, ``cy``)."""
    height, width = hw
    half_w, half_h = (width - 1) / 2.0, (height - 1) / 2.0
    return torch.tensor([focal * half_w, focal * half_h, half_w, half_h], dtype=dtype)


def to_camera(pos: Tensor, rotation: Tensor, translation: Tensor) -> Tensor:
    """World points ``pos [B, G, 3]`` -> camera space ``R pos + t``, ``[B, G, 3]``.

    ``rotation [3, 3]`` or ``[B, 3, 3]``, ``translation [3]`` or ``[B, 3]``.
    """
    rotation = rotation.to(pos.dtype).expand(pos.shape[0], 3, 3)
    translation = translation.to(pos.dtype).expand(pos.shape[0], 3)
    return torch.einsum("bij,bgj->bgi", rotation, pos) + translation.unsqueeze(1)


def project(cam: Tensor, intrinsics: Tensor, near: float) -> tuple[Tensor, Tensor, Tensor]:
    """Camera-space points ``cam [B, G, 3]`` -> ``(uv [B, G, 2] pixels, depth [B, G] clamped to
    >= near, in_front [B, G] bool: depth > near)``. ``intrinsics [4]`` or ``[B, 4]``."""
    k = intrinsics.to(cam.dtype).expand(cam.shape[0], 4).unsqueeze(1)  # [B, 1, 4]
    in_front = cam[..., 2] > near
    depth = cam[..., 2].clamp_min(near)
    u = k[..., 0] * cam[..., 0] / depth + k[..., 2]
    v = k[..., 1] * cam[..., 1] / depth + k[..., 3]
    return torch.stack([u, v], -1), depth, in_front


def radians(degrees: float) -> float:
    """Degrees -> radians."""
    return degrees * math.pi / 180.0
