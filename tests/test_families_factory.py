"""The nine non-REFERENCE families through the generated classes and the factory.

``create_world_model("<type>-ci")`` builds the generated, registered class from the spec; its
maturity, parameter count and contract must agree with the spec, and it must run end to end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from test_families_harness import (
    load_spec,
    random_actions,
    random_batch,
    random_obs,
    single_thread,
)

from worldflux.core.registry import WorldModelRegistry
from worldflux.core.spec import ModelMaturity
from worldflux.factory import create_world_model

FAMILIES = ["jepa", "vjepa2", "token", "diffusion", "dit", "ssm", "renderer3d", "physics", "gan"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.mark.parametrize("family", FAMILIES)
def test_ci_alias_builds_the_generated_model(family: str) -> None:
    spec = load_spec(family)
    torch.manual_seed(0)
    model = create_world_model(f"{family}-ci").eval()
    assert model.model_type == family
    assert model.maturity == ModelMaturity(spec["maturity"])
    assert model.num_parameters() == spec["presets"]["ci"]["params"]
    assert tuple(model.config.obs_shape) == tuple(spec["default_env"]["obs_shape"])


@pytest.mark.parametrize("family", FAMILIES)
def test_spec_aliases_resolve(family: str) -> None:
    for alias, preset in load_spec(family)["aliases"].items():
        assert WorldModelRegistry.resolve(alias) == (family, preset)


def test_other_environment_shapes() -> None:
    """Vector families accept any observation size and discrete actions."""
    for family in ("jepa", "token", "diffusion", "ssm", "physics", "gan", "dit"):
        model = create_world_model(
            f"{family}-ci", obs_shape=(5,), action_dim=3, action_type="discrete"
        ).eval()
        state = model.encode(random_obs(model, (2,)))
        traj = model.rollout(state, random_actions(model, (2, 2)))
        assert traj.rewards.shape == (2, 2)
        assert torch.isfinite(model.loss(random_batch(model, b=2, t=3)).loss)


@pytest.mark.parametrize("family", FAMILIES)
def test_base_preset_runs_end_to_end(family: str) -> None:
    """The realistic preset encodes, rolls out and computes a finite loss (B=1)."""
    torch.manual_seed(0)
    model = create_world_model(family).eval()
    with torch.no_grad():
        traj = model.rollout(model.encode(random_obs(model, (1,))), random_actions(model, (1, 2)))
        assert bool(torch.isfinite(traj.rewards).all())
        assert torch.isfinite(model.loss(random_batch(model, b=1, t=3)).loss)
