"""A tiny spec-built world model that exercises every part of the training stack.

It is *not* registered on import: :func:`registered_toy_model` registers its components and the
model type ``training_toy`` for the duration of a ``with`` block (tests, docs, smoke runs of the
training stack while no reference model is installed), then removes them again.

Parts: a linear+tanh encoder (any observation shape, flattened), an MLP latent dynamics, reward
and continue heads, the generic ``concat`` conditioner and ``open_loop`` rollout, an objective
with a Polyak-averaged target encoder (``after_step``) and a small tanh policy, and a one-step
random-shooting planner drawing from the global torch RNG. With ``two_stage=True`` the objective
has two optimisers (``model`` and ``policy``) and a custom ``update`` that steps them in order,
the policy on detached latents, as TD-MPC2 does.

The module also registers a Gymnasium environment with dict observations, ``DictPendulum-v1``
(``gym.make(DICT_ENV_ID)``, ``worldflux train MODEL --env worldflux.training.toy:DictPendulum-v1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.components import (
    BuildContext,
    Decoder,
    DynamicsModel,
    Objective,
    ObservationEncoder,
    Planner,
)
from worldflux.core.config import WorldModelConfig
from worldflux.core.registry import WorldModelRegistry, register_component, unregister_component
from worldflux.core.spec import ModelIOContract, ModelMaturity
from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import Batch, LossOutput, ModelOutput, State

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = [
    "DICT_ENV_ID",
    "TOY_MODEL_TYPE",
    "ToyConfig",
    "make_dict_pendulum",
    "registered_toy_model",
]

TOY_MODEL_TYPE = "training_toy"
_PREFIX = "training_toy"


class ToyConfig(WorldModelConfig):
    """Hyperparameters of the toy model."""

    MODEL_TYPE = TOY_MODEL_TYPE

    latent_dim: int = 16
    hidden_dim: int = 32
    horizon: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    tau: float = 0.05
    num_samples: int = 32


class ToyEncoder(ObservationEncoder):
    """obs ``[B, *obs_shape]`` -> ``State(latent [B, latent_dim])``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        flat = 1
        for d in ctx.obs_shape:
            flat *= d
        self.net = nn.Linear(flat, ctx.hparam("latent_dim"))
        ctx.dims["latent_dim"] = ctx.hparam("latent_dim")

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, Tensor)
        return State(latent=torch.tanh(self.net(obs.flatten(1).float())))


class ToyDynamics(DynamicsModel):
    """``latent [B, L]`` + action features -> next ``latent [B, L]``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent, hidden = ctx.hparam("latent_dim"), ctx.hparam("hidden_dim")
        self.net = nn.Sequential(
            nn.Linear(latent + ctx.action_dim, hidden), nn.ELU(), nn.Linear(hidden, latent)
        )

    def forward(self, state: State, action_input: Tensor) -> State:
        return State(latent=torch.tanh(self.net(action_input)))


class ToyHeads(Decoder):
    """``latent [B, L]`` -> ``reward [B]``, ``continue [B]`` (probability)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent, hidden = ctx.hparam("latent_dim"), ctx.hparam("hidden_dim")
        self.reward = nn.Sequential(nn.Linear(latent, hidden), nn.ELU(), nn.Linear(hidden, 1))
        self.cont = nn.Linear(latent, 1)

    def forward(self, state: State) -> ModelOutput:
        z = state["latent"]
        return ModelOutput(
            predictions={
                "reward": self.reward(z).squeeze(-1),
                "continue": torch.sigmoid(self.cont(z)).squeeze(-1),
            },
            state=state,
        )


class ToyObjective(Objective):
    """Latent consistency (against a Polyak target encoder) + reward + continue + policy terms.

    ``batch``: ``obs [B, T, ...]``, ``actions [B, T, A]`` (or ``[B, T]``), ``rewards [B, T]``,
    ``terminated [B, T]``. Components: ``consistency``, ``reward``, ``continue``, ``policy``.
    """

    synced: Tensor
    target_encoder: ToyEncoder

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.action_dim, self.action_type = ctx.action_dim, ctx.action_type
        self.lr = float(ctx.hparam("lr"))
        self.tau = float(ctx.hparam("tau"))
        self.grad_clip = 10.0
        self.policy = nn.Sequential(nn.Linear(ctx.hparam("latent_dim"), ctx.action_dim), nn.Tanh())
        self.target_encoder = ToyEncoder(ctx, params).requires_grad_(False)
        self.register_buffer("synced", torch.zeros((), dtype=torch.bool))
        #: tests: ``"model"`` poisons the world-model loss, ``"policy"`` the policy stage
        self.poison: str | None = None

    def _target(self, model: WorldModel) -> nn.Module:
        """The target encoder, copied from the online one before its first use."""
        online = model.observation_encoder
        assert online is not None
        if not bool(self.synced):
            weights = nn.Module.state_dict(online)
            self.target_encoder.load_state_dict(weights)
            self.synced.copy_(torch.tensor(True))
        return self.target_encoder

    def model_losses(self, model: WorldModel, batch: Batch) -> tuple[dict[str, Tensor], Tensor]:
        """The world-model terms and the encoded first latents ``[B, L]``."""
        obs, actions = batch["obs"], batch["actions"]
        z0 = model.encode(obs[:, 0], validate=False)["latent"]
        z = State(latent=z0)
        consistency = reward = cont = obs.new_zeros(())
        steps = obs.shape[1] - 1
        target_enc = self._target(model)
        for t in range(steps):
            z = model.transition(z, actions[:, t], validate=False)
            with torch.no_grad():
                target = target_enc(obs[:, t + 1])["latent"]
            pred = model.decode(z).predictions
            consistency = consistency + F.mse_loss(z["latent"], target)
            reward = reward + F.mse_loss(pred["reward"], batch["rewards"][:, t].float())
            alive = (~batch["terminated"][:, t]).float()
            cont = cont + F.binary_cross_entropy(pred["continue"].clamp(1e-6, 1 - 1e-6), alive)
        scale = 1.0 / max(steps, 1)
        terms = {
            "consistency": consistency * scale,
            "reward": reward * scale,
            "continue": cont * scale,
        }
        return terms, z0

    def policy_loss(self, z0: Tensor, batch: Batch) -> Tensor:
        """Behaviour cloning of the first action from detached latents ``z0 [B, L]`` (only the
        policy receives gradients); zero for discrete actions."""
        action: Tensor = self.policy(z0)
        if self.action_type == "discrete":
            return action.sum() * 0.0
        return F.mse_loss(action, batch["actions"][:, 0].float())

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        terms, z0 = self.model_losses(model, batch)
        terms["policy"] = self.policy_loss(z0.detach(), batch)
        total = sum(terms.values(), start=z0.new_zeros(()))
        if self.poison is not None:
            total = total * float("nan")
        return LossOutput(loss=total, components=terms)

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.param_groups(model), lr=self.lr)}

    def after_step(self, model: WorldModel) -> None:
        target, online = self._target(model), model.observation_encoder
        assert online is not None
        with torch.no_grad():
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.lerp_(o, self.tau)


class ToyTwoStageObjective(ToyObjective):
    """Two optimisers: ``model`` (everything but the policy) then ``policy`` on detached latents."""

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        policy = set(map(id, self.policy.parameters()))
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in policy]
        return {
            "model": torch.optim.Adam(rest, lr=self.lr),
            "policy": torch.optim.Adam(self.policy.parameters(), lr=self.lr),
        }

    def update(
        self, model: WorldModel, batch: Batch, optimizers: dict[str, torch.optim.Optimizer]
    ) -> LossOutput:
        """Model stage (backward, clip, step), then the policy stage on detached latents, then
        the Polyak target update: the order TD-MPC2's official update uses."""
        opt, pi_opt = optimizers["model"], optimizers["policy"]
        terms, z0 = self.model_losses(model, batch)
        model_loss = sum(terms.values(), start=z0.new_zeros(()))
        if self.poison == "model":
            model_loss = model_loss * float("nan")
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(model_loss)
        world = [p for group in opt.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(world, self.grad_clip)
        opt.step()
        policy = self.policy_loss(z0.detach(), batch)
        if self.poison == "policy":
            policy = policy * float("nan")
        pi_opt.zero_grad(set_to_none=True)
        torch.autograd.backward(policy)
        nn.utils.clip_grad_norm_(list(self.policy.parameters()), self.grad_clip)
        pi_opt.step()
        self.after_step(model)
        terms["policy"] = policy
        return LossOutput(
            loss=(model_loss + policy).detach(),
            components={k: v.detach() for k, v in terms.items()},
        )


class ToyPlanner(Planner):
    """One-step random shooting: ``num_samples`` uniform actions (global torch RNG), or every
    discrete action; returns the one with the highest predicted reward, ``[B, A]`` (or ``[B]``)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.num_samples = int(ctx.hparam("num_samples"))
        self.action_dim, self.action_type = ctx.action_dim, ctx.action_type

    def forward(
        self,
        model: WorldModel,
        obs: Tensor | dict[str, Tensor],
        *,
        eval_mode: bool = False,
        t0: bool = False,
    ) -> Tensor:
        z = model.encode(obs)["latent"]
        batch, n = z.shape[0], self.num_samples
        if self.action_type == "discrete":
            cands = torch.arange(self.action_dim).repeat(batch)
            n = self.action_dim
        else:
            cands = torch.rand(batch * n, self.action_dim) * 2 - 1
        zz = z.repeat_interleave(n, dim=0)
        reward = model.decode(model.transition(State(latent=zz), cands, validate=False))
        best = reward.predictions["reward"].view(batch, n).argmax(dim=1)
        picked = cands.view(batch, n, -1)[torch.arange(batch), best]
        return picked.squeeze(-1) if self.action_type == "discrete" else picked


_COMPONENTS: list[tuple[str, str, type]] = [
    ("observation_encoder", f"{_PREFIX}.encoder", ToyEncoder),
    ("dynamics_model", f"{_PREFIX}.dynamics", ToyDynamics),
    ("decoder", f"{_PREFIX}.heads", ToyHeads),
    ("objective", f"{_PREFIX}.objective", ToyObjective),
    ("objective", f"{_PREFIX}.objective2", ToyTwoStageObjective),
    ("planner", f"{_PREFIX}.planner", ToyPlanner),
]


def _spec(two_stage: bool) -> dict[str, Any]:
    return {
        "slots": {
            "observation_encoder": {"impl": f"{_PREFIX}.encoder"},
            "action_conditioner": {"impl": "concat"},
            "dynamics_model": {"impl": f"{_PREFIX}.dynamics"},
            "decoder": {"impl": f"{_PREFIX}.heads"},
            "rollout_executor": {"impl": "open_loop"},
        },
        "objective": {"impl": f"{_PREFIX}.objective2" if two_stage else f"{_PREFIX}.objective"},
        "planner": {"impl": f"{_PREFIX}.planner"},
        "capabilities": ["latent_dynamics", "reward_pred", "continue_pred", "policy", "planning"],
        "composable": [],
        "maturity": "experimental",
        "io_contract": {
            "observation": {"obs": {"shape": ["*obs_shape"], "dtype": "float"}},
            "action": {"kind": "continuous", "dim": "action_dim", "low": -1.0, "high": 1.0},
            "state": {"latent": {"shape": ["latent_dim"], "dtype": "float32"}},
            "predictions": {"reward": {"shape": []}, "continue": {"shape": []}},
            "loss_components": ["consistency", "reward", "continue", "policy"],
        },
    }


def _model_class(two_stage: bool) -> type[SpecWorldModel]:
    class ToyWorldModel(SpecWorldModel):
        """The toy model (action kind follows ``config.action_type``)."""

        SPEC = _spec(two_stage)
        maturity = ModelMaturity.EXPERIMENTAL
        presets: ClassVar[dict[str, dict[str, Any]]] = {
            "ci": {},
            "small": {"latent_dim": 32, "hidden_dim": 64},
        }

        def io_contract(self) -> ModelIOContract:
            spec = dict(_spec(two_stage)["io_contract"])
            spec["action"] = {**spec["action"], "kind": self.config.action_type}
            return ModelIOContract.from_dict(spec)

    return ToyWorldModel


@contextmanager
def registered_toy_model(two_stage: bool = False) -> Iterator[type[SpecWorldModel]]:
    """Register the toy components and model type ``training_toy`` for a ``with`` block.

    Yields:
        the registered model class (build it with ``create_world_model("training_toy:ci", ...)``).
    """
    for kind, key, cls in _COMPONENTS:
        register_component(kind, key, params_model=None, override=True)(cls)
    model_cls = _model_class(two_stage)
    WorldModelRegistry.register(TOY_MODEL_TYPE, config_class=ToyConfig)(model_cls)
    try:
        yield model_cls
    finally:
        WorldModelRegistry.unregister(TOY_MODEL_TYPE)
        for kind, key, _ in _COMPONENTS:
            unregister_component(kind, key)


# -- a toy environment with dict observations -------------------------------------------------

#: Gymnasium id of the dict-observation Pendulum (the module part makes ``gym.make`` and
#: ``worldflux train --env`` import this module, which registers it)
DICT_ENV_ID = "worldflux.training.toy:DictPendulum-v1"


def make_dict_pendulum(**kwargs: Any) -> Any:
    """Pendulum-v1 with ``Dict`` observations: ``position`` ``[cos θ, sin θ]`` and the scalar
    ``velocity`` θ̇ (``[]``), for tests and examples of dict observations end to end."""
    # deferred: optional dependency (extra "train"); this module must import without it
    import gymnasium as gym
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    class DictPendulum(gym.ObservationWrapper):
        def __init__(self, env: Any) -> None:
            super().__init__(env)
            self.observation_space = gym.spaces.Dict(
                {
                    "position": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
                    "velocity": gym.spaces.Box(-8.0, 8.0, (), np.float32),
                }
            )

        def observation(self, observation: Any) -> dict[str, Any]:
            obs = np.asarray(observation, dtype=np.float32)
            return {"position": obs[:2], "velocity": obs[2:3].reshape(())}

    return DictPendulum(PendulumEnv(**kwargs))


def _register_dict_env() -> None:
    try:
        # deferred: optional dependency (extra "train"); without it there is nothing to register
        import gymnasium as gym
    except ImportError:  # pragma: no cover - the train extra is missing
        return
    if "DictPendulum-v1" not in gym.registry:
        gym.register("DictPendulum-v1", entry_point=make_dict_pendulum, max_episode_steps=200)


_register_dict_env()
