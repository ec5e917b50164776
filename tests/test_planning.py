"""MPPI and CEM (worldflux.planning): bounds, convergence on a toy model with a known optimum,
warm start, the official iteration heuristic and parameter validation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from pydantic import Field
from torch import Tensor

from worldflux.core.components import BuildContext, Decoder, DynamicsModel, ObservationEncoder
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.model import build_component
from worldflux.core.registry import register_component, unregister_component
from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import ModelOutput, State
from worldflux.planning import CEMPlanner, MPPIPlanner, gumbel_sample

GOAL = torch.tensor([0.5, -0.3])


class PointConfig(WorldModelConfig):
    """A point mass in the plane: latent = position, action = displacement."""

    horizon: int = Field(3, ge=1)


class PointEncoder(ObservationEncoder):
    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, Tensor)
        return State(latent=obs)


class PointDynamics(DynamicsModel):
    """``z' = a``: the latent is where the last action put the point (input ``[z, a]``)."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()

    def forward(self, state: State, action_input: Tensor) -> State:
        _, a = action_input.chunk(2, dim=-1)
        return State(latent=a)


class PointDecoder(Decoder):
    """reward = −5·‖z − goal‖²: every step's best action is the goal itself (value gaps of order
    1 suit the official temperature 0.5; much sharper ones make MPPI collapse early)."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()

    def forward(self, state: State) -> ModelOutput:
        z = state["latent"]
        reward = -5.0 * ((z - GOAL.to(z)) ** 2).sum(-1)
        return ModelOutput({"reward": reward, "continue": torch.ones_like(reward)}, state)


_COMPONENTS = [
    ("observation_encoder", "wftest/point_encoder", PointEncoder),
    ("dynamics_model", "wftest/point_dynamics", PointDynamics),
    ("decoder", "wftest/point_decoder", PointDecoder),
]


class PointModel(SpecWorldModel):
    SPEC = {  # noqa: RUF012
        "slots": {
            "observation_encoder": {"impl": "wftest/point_encoder"},
            "action_conditioner": {"impl": "concat"},
            "dynamics_model": {"impl": "wftest/point_dynamics"},
            "decoder": {"impl": "wftest/point_decoder"},
            "rollout_executor": {"impl": "open_loop"},
        },
        "planner": {"impl": "mppi"},
        "io_contract": {
            "observation": {"obs": {"shape": ["*obs_shape"], "dtype": "float32"}},
            "action": {"kind": "continuous", "dim": "action_dim", "low": -1.0, "high": 1.0},
            "state": {"latent": {"shape": ["action_dim"], "dtype": "float32"}},
            "predictions": {"reward": {"shape": []}, "continue": {"shape": []}},
        },
        "capabilities": ["latent_dynamics", "reward_pred", "planning"],
    }

    @classmethod
    def _config_class(cls) -> type[WorldModelConfig]:
        return PointConfig


@pytest.fixture
def point_model() -> Iterator[PointModel]:
    for kind, key, cls in _COMPONENTS:
        register_component(kind, key)(cls)
    try:
        yield PointModel(PointConfig(obs_shape=(2,), action_dim=2))
    finally:
        for kind, key, _ in _COMPONENTS:
            unregister_component(kind, key)


def _planner(model: PointModel, key: str, **params: Any) -> Any:
    return build_component("planner", key, params, model._build_context())


@pytest.mark.parametrize("key", ["mppi", "cem"])
def test_converges_to_the_known_optimum(point_model: PointModel, key: str) -> None:
    torch.manual_seed(0)
    point_model.planner = _planner(point_model, key)
    obs = torch.tensor([[0.0, 0.0], [-0.9, 0.9], [0.9, 0.9]])
    action = point_model.plan(obs, eval_mode=True, t0=True)
    assert action.shape == (3, 2)
    assert torch.allclose(action, GOAL.expand(3, 2), atol=0.1), action
    mean = point_model.planner._prev_mean  # the refined mean [H, B, A]
    assert torch.allclose(mean[0], GOAL.expand(3, 2), atol=0.05), mean


def test_mppi_default_via_model_plan(point_model: PointModel) -> None:
    torch.manual_seed(1)
    action = point_model.plan(torch.tensor([[0.2, 0.1]]), eval_mode=True, t0=True)
    assert torch.allclose(action, GOAL, atol=0.1), action


@pytest.mark.parametrize("key", ["mppi", "cem"])
@pytest.mark.parametrize("eval_mode", [True, False])
def test_actions_inside_bounds(point_model: PointModel, key: str, eval_mode: bool) -> None:
    torch.manual_seed(2)
    point_model.planner = _planner(point_model, key, action_low=-0.2, action_high=0.1)
    far = torch.tensor([[-5.0, 5.0], [5.0, -5.0], [0.0, 0.0]])
    action = point_model.plan(far, eval_mode=eval_mode)
    assert action.shape == (3, 2)
    assert bool((action >= -0.2).all()) and bool((action <= 0.1).all())


def test_warm_start_shifts_previous_mean(point_model: PointModel) -> None:
    torch.manual_seed(3)
    planner = point_model.planner
    assert isinstance(planner, MPPIPlanner)
    obs = torch.zeros(1, 2)
    point_model.plan(obs, eval_mode=True, t0=True)
    prev = planner._prev_mean
    assert prev is not None and prev.shape == (3, 1, 2)  # [H, B, A]
    # the refined mean's first step sits at the goal
    assert torch.allclose(prev[0, 0], GOAL, atol=0.1), prev
    planner.reset()
    assert planner._prev_mean is None


def test_iterations_heuristic_and_validation(point_model: PointModel) -> None:
    ctx = point_model._build_context()
    assert _planner(point_model, "mppi").iterations == 6
    big = BuildContext(PointConfig(obs_shape=(2,), action_dim=20))
    assert MPPIPlanner(big, _planner(point_model, "mppi").params).iterations == 8
    for bad in (
        {"num_elites": 600},
        {"num_pi_trajs": 256},
        {"min_std": 3.0},
        {"action_low": 1.0, "action_high": -1.0},
    ):
        with pytest.raises(ConfigurationError):
            build_component("planner", "mppi", {"num_samples": 256, **bad}, ctx)
    discrete = BuildContext(PointConfig(obs_shape=(2,), action_dim=2, action_type="discrete"))
    relaxed = CEMPlanner(discrete, _planner(point_model, "cem").params)
    scores = torch.tensor([[0.2, -0.4], [-0.9, 0.1]])
    assert relaxed.env_action(scores).tolist() == [0, 1]  # discrete: index of the top score


def test_gumbel_sample_follows_the_weights() -> None:
    torch.manual_seed(4)
    probs = torch.tensor([[0.7, 0.2, 0.1]]).expand(4000, 3)
    counts = torch.bincount(gumbel_sample(probs), minlength=3).float() / 4000
    assert torch.allclose(counts, probs[0], atol=0.03)
    assert int(gumbel_sample(torch.tensor([[0.0, 1.0, 0.0]]))[0]) == 1


# -- MPPI weighting ------------------------------------------------------------------------------
def test_mppi_elite_weights_are_monotone_in_value_and_exact(point_model: PointModel) -> None:
    """Official weights: softmax(temperature * V) over the elites, so a better elite never weighs
    less; a sign error (softmax(-temperature * V)) reverses the order and fails here."""
    planner = _planner(point_model, "mppi")
    gen = torch.Generator().manual_seed(5)
    value = torch.randn(3, 64, generator=gen) * 4.0
    weights = planner.elite_weights(value)
    assert torch.allclose(weights.sum(1), torch.ones(3))
    assert torch.allclose(weights, torch.softmax(0.5 * value, 1), atol=1e-7)
    order = value.argsort(1)
    ranked = torch.gather(weights, 1, order)
    assert bool((ranked[:, 1:] >= ranked[:, :-1]).all())
    assert torch.equal(weights.argmax(1), value.argmax(1))


OPTIMUM = 0.37


class QuadDecoder(Decoder):
    """1-D quadratic return: reward = -30 (z - 0.37)^2 with z = the last action."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()

    def forward(self, state: State) -> ModelOutput:
        z = state["latent"][..., 0]
        reward = -30.0 * (z - OPTIMUM) ** 2
        return ModelOutput({"reward": reward, "continue": torch.ones_like(reward)}, state)


class QuadModel(PointModel):
    SPEC = {  # noqa: RUF012
        **PointModel.SPEC,
        "slots": {**PointModel.SPEC["slots"], "decoder": {"impl": "wftest/quad_decoder"}},
    }


@pytest.fixture
def quad_model(point_model: PointModel) -> Iterator[QuadModel]:
    register_component("decoder", "wftest/quad_decoder")(QuadDecoder)
    try:
        yield QuadModel(PointConfig(obs_shape=(1,), action_dim=1))
    finally:
        unregister_component("decoder", "wftest/quad_decoder")


@pytest.mark.parametrize("elites", [64, 512])
def test_mppi_finds_the_optimum_of_a_1d_quadratic(quad_model: QuadModel, elites: int) -> None:
    """With every sample an elite (512 of 512) only the weighting can pull the mean to the
    optimum; with the official 64 elites the weighting still decides within the elite set."""
    torch.manual_seed(6)
    quad_model.planner = _planner(quad_model, "mppi", num_elites=elites)
    obs = torch.zeros(16, 1)
    action = quad_model.plan(obs, eval_mode=True, t0=True)  # an elite drawn by weight, per row
    mean = quad_model.planner._prev_mean  # [H, B, 1]
    assert torch.allclose(mean, torch.full_like(mean, OPTIMUM), atol=0.15), mean[:, :, 0]
    assert abs(float(mean.mean()) - OPTIMUM) < 0.05, mean[:, :, 0]
    assert abs(float(action.mean()) - OPTIMUM) < 0.05, action[:, 0]
    assert torch.allclose(action, torch.full_like(action, OPTIMUM), atol=0.3), action[:, 0]
