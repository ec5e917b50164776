"""Shared test set-up: Hypothesis profiles and a toy spec-declared world model.

Hypothesis profiles (choose with ``HYPOTHESIS_PROFILE=dev|ci|thorough``; default ``ci``) are the
conformance suite's, from :mod:`worldflux.conformance.profiles`: one set for both.
    dev       few examples, fast local iteration
    ci        derandomized, no example database, no deadline: reproducible on any machine
    thorough  many examples, for a nightly or a bug hunt

Fixtures:
    toy_model_type  registers ``wf_toy`` (a tiny :class:`SpecWorldModel` whose five slots and
                    objective are the test-local classes below, under ``wftest/...`` keys), with
                    presets ``ci`` / ``wide``, catalog entries and aliases ``wf-toy`` /
                    ``wf-toy-wide``; unregisters everything afterwards. Yields the model type.
    toy_model       a ``wf_toy:ci`` model for ``obs_shape=(5,)``, ``action_dim=3``.
    toy_batch       a valid ``[2, 4, ...]`` training batch for ``toy_model``.
    batch_factory   :func:`make_batch` (other sizes, discrete actions).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from hypothesis import settings
from pydantic import BaseModel, Field
from torch import Tensor, nn
from torch.nn import functional as F
from worldflux.conformance.profiles import register_hypothesis_profiles

from worldflux.core.components import (
    ActionConditioner,
    BuildContext,
    Decoder,
    DynamicsModel,
    Objective,
    ObservationEncoder,
    RolloutExecutor,
)
from worldflux.core.config import WorldModelConfig
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry, register_component, unregister_component
from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import Batch, LossOutput, ModelOutput, State, Trajectory

# -- Hypothesis profiles: the conformance suite's (worldflux.conformance.profiles) --------------
register_hypothesis_profiles()
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- the toy model: test-local slot implementations ------------------------------------------------
TOY_TYPE = "wf_toy"


class ToyConfig(WorldModelConfig):
    """Hyperparameters of the toy model."""

    MODEL_TYPE = TOY_TYPE

    latent_dim: int = Field(8, ge=1, description="latent size")
    hidden_dim: int = Field(16, ge=1, description="hidden width of the alternative encoder")
    reward_coef: float = Field(0.5, ge=0.0, description="weight of the reward loss")


class ToyEncoder(ObservationEncoder):
    """obs ``[B, *obs_shape]`` -> ``{"latent": [B, latent_dim]}`` (one linear layer + tanh)."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        obs_dim = 1
        for d in ctx.obs_shape:
            obs_dim *= d
        self.latent_dim = int(ctx.config.latent_dim)  # type: ignore[attr-defined]
        self.net = nn.Linear(obs_dim, self.latent_dim)
        ctx.dims["latent_dim"] = self.latent_dim

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, Tensor)
        return State(latent=torch.tanh(self.net(obs.flatten(1))))


class MLPEncoderParams(BaseModel):
    """Params of the alternative encoder (exercises ``params_model``)."""

    model_config = {"extra": "forbid"}
    hidden: int = Field(12, ge=1)


class ToyMLPEncoder(ObservationEncoder):
    """An alternative encoder (two layers), for ``swap_component`` tests."""

    def __init__(self, ctx: BuildContext, params: MLPEncoderParams) -> None:
        super().__init__()
        obs_dim = 1
        for d in ctx.obs_shape:
            obs_dim *= d
        latent_dim = int(ctx.config.latent_dim)  # type: ignore[attr-defined]
        self.net = nn.Sequential(
            nn.Linear(obs_dim, params.hidden), nn.ELU(), nn.Linear(params.hidden, latent_dim)
        )

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, Tensor)
        return State(latent=torch.tanh(self.net(obs.flatten(1))))


class ToyConditioner(ActionConditioner):
    """``[latent, action]`` (discrete actions one-hot) -> ``[B, latent_dim + A]``."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        self.action_dim = ctx.action_dim
        self.discrete = ctx.action_type == "discrete"

    def forward(self, state: State, action: Tensor) -> Tensor:
        if self.discrete:
            action = F.one_hot(action.long(), self.action_dim).to(state["latent"].dtype)
        return torch.cat([state["latent"], action], dim=-1)


class ToyDynamics(DynamicsModel):
    """``latent' = tanh(W [latent, action])``; no recurrent carry."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        latent_dim = int(ctx.dims["latent_dim"])
        self.net = nn.Linear(latent_dim + ctx.action_dim, latent_dim)

    def forward(self, state: State, action_input: Tensor) -> State:
        return State(latent=torch.tanh(self.net(action_input)))


class ToyDecoder(Decoder):
    """``reward [B]`` and ``continue [B]`` (a probability) from the latent."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        self.head = nn.Linear(int(ctx.dims["latent_dim"]), 2)

    def forward(self, state: State) -> ModelOutput:
        out = self.head(state["latent"])
        return ModelOutput(
            predictions={"reward": out[:, 0], "continue": torch.sigmoid(out[:, 1])}, state=state
        )


class ToyRollout(RolloutExecutor):
    """H x (``transition`` + ``decode``)."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()

    def forward(self, model: WorldModel, state: State, actions: Tensor) -> Trajectory:
        states, rewards, continues = [state], [], []
        for t in range(actions.shape[1]):
            state = model.transition(state, actions[:, t], validate=False)
            out = model.decode(state).predictions
            states.append(state)
            rewards.append(out["reward"])
            continues.append(out["continue"])
        return Trajectory(
            states=State.stack(states, dim=1),
            actions=actions,
            rewards=torch.stack(rewards, dim=1),
            continues=torch.stack(continues, dim=1),
            predictions={"reward": torch.stack(rewards, 1), "continue": torch.stack(continues, 1)},
        )


class ToyObjective(Objective):
    """Latent consistency (predicted vs. encoded next latent) + reward regression."""

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        self.reward_coef = float(ctx.config.reward_coef)  # type: ignore[attr-defined]

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions, rewards = batch["obs"], batch["actions"], batch["rewards"]
        steps = obs.shape[1] - 1
        latents = [model.encode(obs[:, t], validate=False) for t in range(obs.shape[1])]
        consistency = obs.new_zeros(())
        reward = obs.new_zeros(())
        for t in range(steps):
            nxt = model.transition(latents[t], actions[:, t], validate=False)
            consistency = consistency + F.mse_loss(nxt["latent"], latents[t + 1]["latent"].detach())
            pred = model.decode(nxt).predictions["reward"]
            reward = reward + F.mse_loss(pred, rewards[:, t].to(pred.dtype))
        consistency, reward = consistency / max(steps, 1), reward / max(steps, 1)
        return LossOutput(
            loss=consistency + self.reward_coef * reward,
            components={"consistency": consistency, "reward": reward},
        )


TOY_COMPONENTS: list[tuple[str, str, type, type[BaseModel] | None]] = [
    ("observation_encoder", "wftest/encoder", ToyEncoder, None),
    ("observation_encoder", "wftest/mlp_encoder", ToyMLPEncoder, MLPEncoderParams),
    ("action_conditioner", "wftest/concat", ToyConditioner, None),
    ("dynamics_model", "wftest/dynamics", ToyDynamics, None),
    ("decoder", "wftest/decoder", ToyDecoder, None),
    ("rollout_executor", "wftest/rollout", ToyRollout, None),
    ("objective", "wftest/objective", ToyObjective, None),
]

TOY_SPEC: dict[str, Any] = {
    "slots": {
        "observation_encoder": {"impl": "wftest/encoder"},
        "action_conditioner": {"impl": "wftest/concat"},
        "dynamics_model": {"impl": "wftest/dynamics"},
        "decoder": {"impl": "wftest/decoder"},
        "rollout_executor": {"impl": "wftest/rollout"},
    },
    "objective": {"impl": "wftest/objective"},
    "io_contract": {
        "observation": {"obs": {"shape": ["*obs_shape"], "dtype": "float"}},
        "action": {"kind": "continuous", "dim": "action_dim", "low": -1.0, "high": 1.0},
        "state": {"latent": {"shape": ["latent_dim"], "dtype": "float32"}},
        "predictions": {"reward": {"shape": []}, "continue": {"shape": []}},
        "loss_components": ["consistency", "reward"],
    },
    "capabilities": ["latent_dynamics", "reward_pred", "continue_pred"],
    "composable": ["observation_encoder", "decoder"],
    "maturity": "experimental",
}

TOY_PRESETS: dict[str, dict[str, Any]] = {"ci": {"latent_dim": 8}, "wide": {"latent_dim": 32}}


class ToyWorldModel(SpecWorldModel):
    """The toy model class (registered by the ``toy_model_type`` fixture)."""

    SPEC = TOY_SPEC
    presets = TOY_PRESETS


def register_toy() -> str:
    """Register the toy model, its components, catalog entries and aliases; return its type."""
    for kind, key, cls, params_model in TOY_COMPONENTS:
        register_component(kind, key, params_model=params_model)(cls)
    WorldModelRegistry.register(TOY_TYPE, config_class=ToyConfig)(ToyWorldModel)
    for preset in TOY_PRESETS:
        WorldModelRegistry.register_catalog_entry(
            f"{TOY_TYPE}:{preset}",
            {
                "description": f"toy test model ({preset})",
                "params": "~1k",
                "type": TOY_TYPE,
                "default_obs": "vector",
                "maturity": "experimental",
            },
        )
    WorldModelRegistry.register_alias("wf-toy", f"{TOY_TYPE}:ci")
    WorldModelRegistry.register_alias("wf-toy-wide", f"{TOY_TYPE}:wide")
    return TOY_TYPE


def unregister_toy() -> None:
    """Undo :func:`register_toy` (safe to call when nothing is registered)."""
    WorldModelRegistry.unregister(TOY_TYPE)
    for kind, key, _, _ in TOY_COMPONENTS:
        unregister_component(kind, key)


@pytest.fixture
def toy_model_type() -> Iterator[str]:
    """The registered toy model type ``wf_toy`` (unregistered again after the test)."""
    unregister_toy()
    try:
        yield register_toy()
    finally:
        unregister_toy()


@pytest.fixture
def toy_model(toy_model_type: str) -> WorldModel:
    """A seeded ``wf_toy:ci`` model for ``obs_shape=(5,)``, ``action_dim=3`` (continuous)."""
    from worldflux.factory import create_world_model

    torch.manual_seed(0)
    return create_world_model(f"{toy_model_type}:ci", obs_shape=(5,), action_dim=3)


def make_batch(
    batch_size: int = 2,
    seq_len: int = 4,
    obs_shape: tuple[int, ...] = (5,),
    action_dim: int = 3,
    discrete: bool = False,
    seed: int = 0,
) -> Batch:
    """A valid random ``[B, T, ...]`` training batch for the toy model."""
    gen = torch.Generator().manual_seed(seed)
    if discrete:
        actions = torch.randint(0, action_dim, (batch_size, seq_len), generator=gen)
    else:
        actions = torch.rand(batch_size, seq_len, action_dim, generator=gen) * 2 - 1
    is_first = torch.zeros(batch_size, seq_len, dtype=torch.bool)
    is_first[:, 0] = True
    return Batch(
        obs=torch.randn(batch_size, seq_len, *obs_shape, generator=gen),
        actions=actions,
        rewards=torch.randn(batch_size, seq_len, generator=gen),
        terminated=torch.zeros(batch_size, seq_len, dtype=torch.bool),
        truncated=torch.zeros(batch_size, seq_len, dtype=torch.bool),
        is_first=is_first,
    )


@pytest.fixture
def toy_batch() -> Batch:
    """A valid ``[2, 4, ...]`` batch for :func:`toy_model`."""
    return make_batch()


@pytest.fixture
def batch_factory() -> Any:
    """:func:`make_batch`, for tests that need batches of other sizes."""
    return make_batch
