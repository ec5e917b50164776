"""Behaviours (worldflux.behaviour): every family declares one and acts through it; the shared
imagination actor-critic raises the model's predicted return; goal CEM reaches goals; a learned
behaviour's gradients stay out of the world model; the wave-1 ``planner`` name still works."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import Tensor

from worldflux import create_world_model
from worldflux.behaviour import GoalCEM, ImaginationActorCritic, ObjectivePolicy
from worldflux.core.components import BuildContext, Decoder, DynamicsModel, ObservationEncoder
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import CapabilityError
from worldflux.core.registry import register_component, unregister_component
from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import Batch, ModelOutput, State
from worldflux.planning import CEMPlanner, MPPIPlanner

GOAL = torch.tensor([0.6, -0.4])
STEP = 0.3

#: family -> the behaviour its spec declares (the table of docs/families.md)
DECLARED = {
    "dreamerv3": ObjectivePolicy,
    "tdmpc2": MPPIPlanner,
    "jepa": GoalCEM,
    "vjepa2": GoalCEM,
    "token": ImaginationActorCritic,
    "diffusion": ImaginationActorCritic,
    "dit": ImaginationActorCritic,
    "ssm": ImaginationActorCritic,
    "renderer3d": CEMPlanner,
    "physics": MPPIPlanner,
    "gan": MPPIPlanner,
}


def _obs(model: Any, batch: int) -> Tensor:
    (spec,) = model.bound_contract().observation.values()
    return torch.rand(batch, *(int(d) for d in spec.shape))


@pytest.mark.parametrize("family", sorted(DECLARED))
def test_every_family_acts_through_its_declared_behaviour(family: str) -> None:
    torch.manual_seed(0)
    model = create_world_model(f"{family}:ci").eval()
    assert type(model.behaviour) is DECLARED[family]
    obs = _obs(model, 3)
    goal = _obs(model, 3) if model.behaviour.needs_goal else None
    action, _ = model.act(obs, None, is_first=True, eval_mode=True, goal=goal)
    assert action.shape == (3, model.config.action_dim)
    assert bool((action.abs() <= 1.0).all())
    assert model.can_act is not model.behaviour.needs_goal


def test_a_goal_planner_refuses_to_act_without_a_goal() -> None:
    model = create_world_model("jepa:ci")
    with pytest.raises(CapabilityError, match="goal"):
        model.act(_obs(model, 2), None, is_first=True)


# -- a point mass whose physics is known: z' = clip(z + 0.3 a), reward = -|z - GOAL|^2 ---------
class _Encoder(ObservationEncoder):
    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, Tensor)
        return State(latent=obs)


class _Dynamics(DynamicsModel):
    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(()))  # a world-model parameter

    def forward(self, state: State, action_input: Tensor) -> State:
        z, a = action_input.chunk(2, dim=-1)
        return State(latent=(z + STEP * self.gain * a).clamp(-1.0, 1.0))


class _Decoder(Decoder):
    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()

    def forward(self, state: State) -> ModelOutput:
        z = state["latent"]
        reward = -((z - GOAL.to(z)) ** 2).sum(-1)
        return ModelOutput({"reward": reward, "continue": torch.ones_like(reward)}, state)


_PARTS = [
    ("observation_encoder", "wftest/mass_encoder", _Encoder),
    ("dynamics_model", "wftest/mass_dynamics", _Dynamics),
    ("decoder", "wftest/mass_decoder", _Decoder),
]


def _mass_model(behaviour: dict[str, Any], key: str = "behaviour") -> SpecWorldModel:
    class PointMass(SpecWorldModel):
        SPEC = {  # noqa: RUF012
            "slots": {
                "observation_encoder": {"impl": "wftest/mass_encoder"},
                "action_conditioner": {"impl": "concat"},
                "dynamics_model": {"impl": "wftest/mass_dynamics"},
                "decoder": {"impl": "wftest/mass_decoder"},
                "rollout_executor": {"impl": "open_loop"},
            },
            key: behaviour,
            "io_contract": {
                "observation": {"obs": {"shape": ["*obs_shape"], "dtype": "float32"}},
                "action": {"kind": "continuous", "dim": "action_dim", "low": -1.0, "high": 1.0},
                "state": {"latent": {"shape": ["action_dim"], "dtype": "float32"}},
                "predictions": {"reward": {"shape": []}, "continue": {"shape": []}},
            },
            "capabilities": ["latent_dynamics", "reward_pred"],
        }

    return PointMass(WorldModelConfig(obs_shape=(2,), action_dim=2))


@pytest.fixture
def parts() -> Iterator[None]:
    for kind, key, cls in _PARTS:
        register_component(kind, key)(cls)
    try:
        yield
    finally:
        for kind, key, _ in _PARTS:
            unregister_component(kind, key)


def _distance_after(model: SpecWorldModel, start: Tensor, steps: int, act: Any) -> Tensor:
    z = start.clone()
    for step in range(steps):
        a = act(z, step)
        z = (z + STEP * a).clamp(-1.0, 1.0)
    return (z - GOAL).norm(dim=-1)


def test_goal_cem_reaches_the_goal_observation(parts: None) -> None:
    torch.manual_seed(0)
    model = _mass_model({"impl": "goal_cem", "params": {"horizon": 4}})
    start = torch.tensor([[-0.6, 0.6], [0.0, 0.0], [-0.8, -0.8]])
    goal = GOAL.expand(3, 2)

    def plan(z: Tensor, step: int) -> Tensor:
        return model.act(z, None, is_first=step == 0, eval_mode=True, goal=goal)[0]

    def random(z: Tensor, step: int) -> Tensor:
        return torch.rand_like(z) * 2 - 1

    reached = _distance_after(model, start, 8, plan)
    wandered = _distance_after(model, start, 8, random)
    assert bool((reached < 0.12).all()), reached
    assert float(reached.mean()) < 0.3 * float(wandered.mean())


def _imagined_return(model: SpecWorldModel, starts: Tensor, steps: int = 8) -> float:
    """Mean reward of the eval-mode policy over ``steps`` steps in the model itself."""
    z, total = starts, 0.0
    with torch.no_grad():
        for _ in range(steps):
            a, _ = model.act(z, None, is_first=True, eval_mode=True)
            z = model.transition(model.encode(z), a)["latent"]
            total += float(model.decode(State(latent=z)).predictions["reward"].mean())
    return total / steps


def test_the_actor_critic_raises_the_models_predicted_return(parts: None) -> None:
    """Trained on the behaviour loss alone, the policy learns to move toward the rewarded goal."""
    torch.manual_seed(0)
    params = {"units": 32, "imag_length": 8, "starts": 64, "bins": 63}
    model = _mass_model({"impl": "actor_critic", "params": params})
    behaviour = model.behaviour
    assert isinstance(behaviour, ImaginationActorCritic)
    obs = torch.rand(16, 4, 2) * 2 - 1
    batch = Batch(
        obs=obs,
        actions=torch.zeros(16, 4, 2),
        rewards=torch.zeros(16, 4),
        terminated=torch.zeros(16, 4, dtype=torch.bool),
        truncated=torch.zeros(16, 4, dtype=torch.bool),
        is_first=torch.zeros(16, 4, dtype=torch.bool),
    )
    starts = torch.rand(64, 2) * 2 - 1
    before = _imagined_return(model, starts)
    opt = torch.optim.Adam(behaviour.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        behaviour.loss(model, batch).loss.backward()
        opt.step()
        behaviour.after_step(model)
    after = _imagined_return(model.eval(), starts)
    assert after > before + 0.5, (before, after)  # measured: -1.13 -> -0.14


def test_the_behaviour_loss_joins_the_model_loss_without_touching_the_world_model(
    parts: None,
) -> None:
    model = _mass_model({"impl": "actor_critic", "params": {"units": 8, "imag_length": 3}})
    assert set(model.declared_contract().loss_components) >= {"policy", "value"}
    batch = Batch(
        obs=torch.rand(4, 3, 2),
        actions=torch.zeros(4, 3, 2),
        rewards=torch.zeros(4, 3),
        terminated=torch.zeros(4, 3, dtype=torch.bool),
        truncated=torch.zeros(4, 3, dtype=torch.bool),
        is_first=torch.zeros(4, 3, dtype=torch.bool),
    )
    model.behaviour.loss(model, batch).loss.backward()
    gain = model.dynamics_model.gain
    assert gain.grad is None or float(gain.grad.abs()) == 0.0


def test_the_wave_one_planner_key_still_builds_the_behaviour(parts: None) -> None:
    model = _mass_model({"impl": "cem", "params": {"horizon": 2}}, key="planner")
    assert isinstance(model.behaviour, CEMPlanner) and model.planner is model.behaviour
    assert model.plan(torch.zeros(2, 2), eval_mode=True).shape == (2, 2)


def test_a_behaviour_swaps_in_and_survives_a_checkpoint(tmp_path: Any) -> None:
    model = create_world_model("physics:ci")  # declares mppi
    before = set(model.declared_contract().loss_components)
    model.swap_component("behaviour", "actor_critic", {"units": 16})
    assert isinstance(model.behaviour, ImaginationActorCritic) and model.planner is None
    assert set(model.declared_contract().loss_components) == before | {"policy", "value"}
    model.save_pretrained(tmp_path / "m")
    loaded = type(model).from_pretrained(tmp_path / "m")
    assert isinstance(loaded.behaviour, ImaginationActorCritic)
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_a_behaviour_that_cannot_be_built_is_refused_and_the_old_one_kept() -> None:
    model = create_world_model("physics:ci")
    with pytest.raises(Exception, match="did you mean 'actor_critic'"):
        model.swap_component("behaviour", "actor_critc")
    assert isinstance(model.behaviour, MPPIPlanner)
