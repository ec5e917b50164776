"""renderer3d: camera-conditioned rendering of world-space 3D Gaussians.

Checks the camera geometry against independent formulas (look-at built from cross products,
pinhole projection written out), what rotating the camera does to the image, invariance under
identity and rigid co-transforms, and gradients through the pose transform.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from test_families_harness import build, random_obs, registered

from worldflux.families.renderer3d.camera import (
    default_intrinsics,
    look_at,
    project,
    radians,
    to_camera,
)
from worldflux.families.renderer3d.slots import render_gaussians

HW = (21, 21)
K = torch.tensor([12.0, 12.0, 10.0, 10.0], dtype=torch.float64)  # fx, fy, cx, cy (pixels)


def _expected_pixel(point: np.ndarray, az: float, el: float, dist: float) -> np.ndarray:
    """Independent look-at: centre on the sphere, forward to the origin, right = f x up (world
    up is -y), down = f x right; then the pinhole formula."""
    centre = dist * np.array(
        [math.cos(el) * math.sin(az), -math.sin(el), -math.cos(el) * math.cos(az)]
    )
    forward = -centre / np.linalg.norm(centre)
    right = np.cross(forward, np.array([0.0, -1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rel = point - centre
    x, y, z = rel @ right, rel @ down, rel @ forward
    fx, fy, cx, cy = K.tolist()
    return np.array([fx * x / z + cx, fy * y / z + cy])


def _one(point: list[float], radius: float = 0.5) -> tuple[torch.Tensor, ...]:
    """One opaque-ish white Gaussian at ``point``: (pos, radius, opacity, color, background)."""
    return (
        torch.tensor([[point]], dtype=torch.float64),
        torch.tensor([[radius]], dtype=torch.float64),
        torch.tensor([[0.9]], dtype=torch.float64),
        torch.ones(1, 1, 1, dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
    )


def _centroid(image: torch.Tensor) -> tuple[float, float]:
    """``(u, v)`` (column, row) of the brightness centroid of ``image [1, 1, H, W]``."""
    weights = image[0, 0]
    rows = torch.arange(weights.shape[0], dtype=weights.dtype)
    cols = torch.arange(weights.shape[1], dtype=weights.dtype)
    total = weights.sum()
    return float((weights.sum(0) * cols).sum() / total), float(
        (weights.sum(1) * rows).sum() / total
    )


def _render(scene: tuple[torch.Tensor, ...], az: float, el: float, dist: float) -> torch.Tensor:
    rotation, translation = look_at(az, el, dist, torch.float64)
    return render_gaussians(*scene, HW, rotation, translation, K)


def test_a_gaussian_projects_to_the_analytically_expected_pixel() -> None:
    for point, az, el in [
        ([0.5, -0.5, 1.0], 0.0, 0.0),
        ([0.3, 0.2, -0.4], radians(35.0), radians(20.0)),
        ([-0.6, 0.1, 0.5], radians(-120.0), radians(-30.0)),
    ]:
        want = _expected_pixel(np.array(point), az, el, 4.0)
        rotation, translation = look_at(az, el, 4.0, torch.float64)
        cam = to_camera(torch.tensor([[point]], dtype=torch.float64), rotation, translation)
        uv, _, in_front = project(cam, K, 0.05)
        np.testing.assert_allclose(uv[0, 0].numpy(), want, atol=1e-9)
        assert bool(in_front.all())
        # the rendered blob is centred there (a small Gaussian well inside the image)
        image = _render(_one(point), az, el, 4.0)
        np.testing.assert_allclose(_centroid(image), want, atol=1e-3)
    # default pose: R = I, camera at (0, 0, -d): (0.5, -0.5, 1) -> depth 5, u = 12 * 0.1 + 10
    np.testing.assert_allclose(_expected_pixel(np.array([0.5, -0.5, 1.0]), 0, 0, 4.0), [11.2, 8.8])


def test_rotating_the_camera_about_the_scene_moves_the_image_as_expected() -> None:
    on_x = _one([1.0, 0.0, 0.0])
    u0, v0 = _centroid(_render(on_x, 0.0, 0.0, 4.0))  # seen from -z: right of centre
    assert u0 > 10.5 and abs(v0 - 10.0) < 1e-6
    u90, _ = _centroid(_render(on_x, radians(90.0), 0.0, 4.0))  # camera on +x: in front
    assert abs(u90 - 10.0) < 1e-6
    u180, _ = _centroid(_render(on_x, radians(180.0), 0.0, 4.0))  # from +z: mirrored, left
    assert abs((u180 - 10.0) + (u0 - 10.0)) < 1e-6
    # in front at 90 degrees it is nearer (depth 3) than at -90 (depth 5): a larger footprint
    near, far = _render(on_x, radians(90.0), 0.0, 4.0), _render(on_x, radians(-90.0), 0.0, 4.0)
    assert float((near > 0.05).sum()) > float((far > 0.05).sum())
    # a point above the origin (world up is -y) is above the centre, and centred seen from above
    above = _one([0.0, -1.0, 0.0])
    assert _centroid(_render(above, 0.0, 0.0, 4.0))[1] < 9.5
    np.testing.assert_allclose(
        _centroid(_render(above, 0.0, radians(90.0), 4.0)), [10, 10], atol=1e-6
    )
    # turning the camera by azimuth a == turning the scene about the vertical axis by R_y(a)
    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(1, 5, 3, generator=gen, dtype=torch.float64) * 2 - 1
    scene = (
        pos,
        torch.full((1, 5), 0.2, dtype=torch.float64),
        torch.full((1, 5), 0.7, dtype=torch.float64),
        torch.rand(1, 5, 3, generator=gen, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
    )
    a = radians(40.0)
    ry = torch.tensor(
        [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]],
        dtype=torch.float64,
    )
    turned = (pos @ ry.T, *scene[1:])
    torch.testing.assert_close(_render(scene, a, 0.0, 4.0), _render(turned, 0.0, 0.0, 4.0))


def test_identity_and_rigid_co_transforms_leave_the_image_unchanged() -> None:
    gen = torch.Generator().manual_seed(1)
    pos = torch.rand(2, 4, 3, generator=gen, dtype=torch.float64) * 2 - 1
    rest = (
        torch.full((2, 4), 0.3, dtype=torch.float64),
        torch.full((2, 4), 0.8, dtype=torch.float64),
        torch.rand(2, 4, 3, generator=gen, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
    )
    rotation, translation = look_at(radians(25.0), radians(-15.0), 4.0, torch.float64)
    image = render_gaussians(pos, *rest, HW, rotation, translation, K)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.equal(
        render_gaussians(pos, *rest, HW, rotation @ eye, translation + 0.0, K), image
    )
    # move the scene by (Q, s) and the camera with it: R' = R Q^T, t' = t - R Q^T s
    q, _ = look_at(radians(70.0), radians(30.0), 1.0, torch.float64)
    s = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    moved = pos @ q.T + s
    r2 = rotation @ q.T
    torch.testing.assert_close(
        render_gaussians(moved, *rest, HW, r2, translation - r2 @ s, K), image
    )
    # per-sample poses: sample 1 seen from another camera, sample 0 as before
    rot_b = torch.stack([rotation, look_at(1.0, 0.2, 4.0, torch.float64)[0]])
    both = render_gaussians(pos, *rest, HW, rot_b, translation.expand(2, 3), K)
    torch.testing.assert_close(both[0], image[0])
    assert not torch.allclose(both[1], image[1])


def test_gradients_flow_through_the_pose_transform() -> None:
    gen = torch.Generator().manual_seed(2)
    pos = (torch.rand(1, 3, 3, generator=gen, dtype=torch.float64) - 0.5).requires_grad_(True)
    radius = torch.tensor([[0.3, 0.4, 0.5]], dtype=torch.float64, requires_grad=True)
    opacity = torch.tensor([[0.6, 0.7, 0.5]], dtype=torch.float64, requires_grad=True)
    color = torch.rand(1, 3, 2, generator=gen, dtype=torch.float64).requires_grad_(True)
    angles = torch.tensor([0.4, -0.3], dtype=torch.float64, requires_grad=True)
    background = torch.zeros(2, dtype=torch.float64)

    def image(p: Any, r: Any, o: Any, c: Any, ae: Any) -> torch.Tensor:
        rotation, translation = look_at(ae[0], ae[1], 4.0, torch.float64)
        return render_gaussians(p, r, o, c, background, (7, 7), rotation, translation, K / 3)

    assert torch.autograd.gradcheck(image, (pos, radius, opacity, color, angles))
    image(pos, radius, opacity, color, angles).sum().backward()
    for grad in (pos.grad, radius.grad, opacity.grad, color.grad, angles.grad):
        assert grad is not None and bool(grad.abs().sum() > 0)


def test_decode_uses_the_default_camera_and_render_takes_any_pose() -> None:
    with registered("renderer3d") as classes:
        model = build(*classes)
        renderer: Any = model.slot_modules()["decoder"]
        state = model.encode(random_obs(model, (2,)))
        with torch.no_grad():
            decoded = model.decode(state).predictions["obs"]
            dist = float(model.config.camera_distance)  # type: ignore[attr-defined]
            rotation, translation = look_at(0.0, 0.0, dist)
            intrinsics = default_intrinsics(tuple(decoded.shape[-2:]), float(model.config.focal))  # type: ignore[attr-defined]
            assert torch.equal(renderer.render(state, rotation, translation, intrinsics), decoded)
            assert torch.equal(renderer.render(state), decoded)
            turned = renderer.render(state, *look_at(radians(60.0), radians(10.0), dist))
        assert turned.shape == decoded.shape and not torch.allclose(turned, decoded)
        state["latent"].requires_grad_(True)
        renderer.render(state, *look_at(radians(60.0), 0.0, dist)).sum().backward()
        assert renderer.to_scene.weight.grad is not None
        assert bool(renderer.to_scene.weight.grad.abs().sum() > 0)
