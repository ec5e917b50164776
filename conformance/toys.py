"""Tiny spec-declared models used by the suite's own meta-tests, docs and ``explain``.

``make_toy`` returns a :class:`~worldflux.core.model.SpecWorldModel` subclass (not registered)
whose slots are the ``wf_conformance_toy/*`` components below plus the generic ``concat``
conditioner and ``open_loop`` rollout; :func:`registered` registers it (with aliases and catalog
entries) for the duration of a ``with`` block. Importing this module registers the toy
components, nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.components import (
    BuildContext,
    Decoder,
    DynamicsModel,
    Objective,
    ObservationEncoder,
)
from worldflux.core.config import WorldModelConfig
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry, register_component
from worldflux.core.spec import ModelMaturity
from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import Batch, LossOutput, ModelOutput, State

__all__ = ["ToyConfig", "make_toy", "registered", "toy_spec", "trainable_count"]

PREFIX = "wf_conformance_toy"


class ToyConfig(WorldModelConfig):
    """Toy hyperparameters: ``latent_dim`` (state size) and ``hidden`` (MLP width)."""

    latent_dim: int = 8
    hidden: int = 16


@register_component("observation_encoder", f"{PREFIX}/encoder", override=True)
class ToyEncoder(ObservationEncoder):
    """``obs [B, obs_dim]`` -> ``{"latent": tanh(W obs) [B, latent_dim]}``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent = int(ctx.hparam("latent_dim"))
        self.net = nn.Linear(int(ctx.obs_shape[-1]), latent)
        ctx.dims["latent_dim"] = latent

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, Tensor)
        return State(latent=torch.tanh(self.net(obs.float())))


@register_component("observation_encoder", f"{PREFIX}/encoder_mlp", override=True)
class ToyMLPEncoder(ObservationEncoder):
    """A two-layer alternative encoder (for slot swaps)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent, hidden = int(ctx.hparam("latent_dim")), int(ctx.hparam("hidden"))
        self.net = nn.Sequential(
            nn.Linear(int(ctx.obs_shape[-1]), hidden), nn.ELU(), nn.Linear(hidden, latent)
        )
        ctx.dims["latent_dim"] = latent

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        assert isinstance(obs, Tensor)
        return State(latent=torch.tanh(self.net(obs.float())))


@register_component("dynamics_model", f"{PREFIX}/dynamics", override=True)
class ToyDynamics(DynamicsModel):
    """``latent' = tanh(MLP([latent, action]))`` plus N(0, 0.01) noise in train mode."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent, hidden = int(ctx.hparam("latent_dim")), int(ctx.hparam("hidden"))
        self.latent = latent
        self.net = nn.Sequential(
            nn.Linear(latent + ctx.action_dim, hidden), nn.Tanh(), nn.Linear(hidden, latent)
        )

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return State(latent=torch.zeros(batch_size, self.latent, device=device))

    def forward(self, state: State, action_input: Tensor) -> State:
        nxt = torch.tanh(self.net(action_input))
        if self.training:
            nxt = nxt + 0.01 * torch.randn_like(nxt)
        return State(latent=nxt)


@register_component("decoder", f"{PREFIX}/heads", override=True)
class ToyHeads(Decoder):
    """Predictions ``reward [B]``, ``continue [B]`` (probability), ``obs [B, obs_dim]``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        latent = int(ctx.hparam("latent_dim"))
        self.reward = nn.Linear(latent, 1)
        self.cont = nn.Linear(latent, 1)
        self.obs = nn.Linear(latent, int(ctx.obs_shape[-1]))

    def forward(self, state: State) -> ModelOutput:
        z = state["latent"]
        return ModelOutput(
            predictions={
                "reward": self.reward(z).squeeze(-1),
                "continue": torch.sigmoid(self.cont(z)).squeeze(-1),
                "obs": self.obs(z),
            },
            state=state,
        )


@register_component("objective", f"{PREFIX}/objective", override=True)
class ToyObjective(Objective):
    """Components ``dynamics`` (latent prediction), ``reward`` (reward + continue), ``recon``.

    Uses the model's slots for everything, on ``[B, T]`` batches with ``T >= 2``.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        obs, actions = batch["obs"], batch["actions"]
        b, t = int(obs.shape[0]), int(obs.shape[1])
        z = model.encode(obs.flatten(0, 1), validate=False)["latent"].view(b, t, -1)
        prev = State(latent=z[:, :-1].flatten(0, 1))
        nxt = model.transition(prev, actions[:, :-1].flatten(0, 1), validate=False)
        now = model.decode(prev).predictions
        after = model.decode(nxt).predictions
        recon = F.mse_loss(now["obs"], obs[:, :-1].flatten(0, 1).float())
        dynamics = F.mse_loss(nxt["latent"], z[:, 1:].flatten(0, 1).detach())
        alive = 1.0 - batch["terminated"][:, :-1].flatten(0, 1).float()
        reward = F.mse_loss(after["reward"], batch["rewards"][:, :-1].flatten(0, 1).float())
        reward = reward + F.binary_cross_entropy(after["continue"].clamp(1e-6, 1 - 1e-6), alive)
        components = {"dynamics": dynamics, "reward": reward, "recon": recon}
        return LossOutput(loss=dynamics + reward + recon, components=components)


def toy_spec(*, discrete: bool = False, maturity: str = "reference") -> dict[str, Any]:
    """The SPEC of the good toy (edit a copy to make a broken one)."""
    return {
        "model_type": "",
        "maturity": maturity,
        "slots": {
            "observation_encoder": {"impl": f"{PREFIX}/encoder"},
            "action_conditioner": {"impl": "concat"},
            "dynamics_model": {"impl": f"{PREFIX}/dynamics"},
            "decoder": {"impl": f"{PREFIX}/heads"},
            "rollout_executor": {"impl": "open_loop"},
        },
        "objective": {"impl": f"{PREFIX}/objective"},
        "capabilities": ["latent_dynamics", "reward_pred", "continue_pred", "obs_decoder"],
        "composable": ["observation_encoder"],
        "io_contract": {
            "observation": {"obs": {"shape": ["*obs_shape"], "dtype": "float32"}},
            "action": {
                "kind": "discrete" if discrete else "continuous",
                "dim": "action_dim",
                "low": -1.0,
                "high": 1.0,
            },
            "state": {"latent": {"shape": ["latent_dim"], "dtype": "float32"}},
            "predictions": {
                "reward": {"shape": []},
                "continue": {"shape": []},
                "obs": {"shape": ["*obs_shape"]},
            },
            "loss_components": ["dynamics", "reward", "recon"],
        },
        "default_env": {
            "obs_shape": [4],
            "action_dim": 3 if discrete else 2,
            "action_type": "discrete" if discrete else "continuous",
        },
        "presets": {},
        "preset_params": {},
        "aliases": {},
        "conformance": {"seq_lens": [2, 3, 4]},
    }


def make_toy(
    name: str = "wf_toy",
    *,
    discrete: bool = False,
    maturity: str = "reference",
    spec: dict[str, Any] | None = None,
    base: type[SpecWorldModel] = SpecWorldModel,
    presets: dict[str, dict[str, Any]] | None = None,
    aliases: dict[str, str] | None = None,
) -> type[SpecWorldModel]:
    """A new (unregistered) toy class named ``name``; ``base`` may override methods to break it."""
    full = (
        copy.deepcopy(spec) if spec is not None else toy_spec(discrete=discrete, maturity=maturity)
    )
    full["model_type"] = name
    full["presets"] = (
        presets if presets is not None else {"ci": {}, "big": {"latent_dim": 64, "hidden": 128}}
    )
    full["aliases"] = aliases if aliases is not None else {f"{name}-ci": "ci"}
    env = full.get("default_env", {})
    overrides = {k: (tuple(v) if k == "obs_shape" else v) for k, v in env.items()}
    preset_table = {p: {**overrides, **o} for p, o in full["presets"].items()}
    return type(
        f"Toy_{name}",
        (base,),
        {
            "SPEC": full,
            "presets": preset_table,
            "maturity": ModelMaturity.parse(full.get("maturity", maturity)),
            "__module__": __name__,
        },
    )


def _config_class(env: dict[str, Any]) -> type[ToyConfig]:
    """A ToyConfig subclass whose env defaults are the spec's ``default_env``."""
    annotations = {
        "obs_shape": tuple[int, ...],
        "action_dim": int,
        "action_type": Literal["continuous", "discrete"],
    }
    namespace: dict[str, Any] = {"__annotations__": annotations, "__module__": __name__}
    namespace["obs_shape"] = tuple(env.get("obs_shape", (4,)))
    namespace["action_dim"] = int(env.get("action_dim", 2))
    namespace["action_type"] = env.get("action_type", "continuous")
    return type("ToyEnvConfig", (ToyConfig,), namespace)


def trainable_count(cls: type[SpecWorldModel], preset: str, **env: Any) -> int:
    """Trainable parameters of ``cls`` at ``preset`` (built on the meta device; registered)."""
    config_cls = WorldModelRegistry.get_config_class(cls.model_type)
    values = {**cls.presets[preset], **{k: v for k, v in env.items() if v is not None}}
    with torch.device("meta"):
        model = cls(config_cls(model_type=cls.model_type, **values))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextmanager
def registered(cls: type[SpecWorldModel]) -> Iterator[type[SpecWorldModel]]:
    """Register ``cls`` (config class, aliases, catalog entries) inside the block only."""
    spec = cls.SPEC
    model_type = spec["model_type"]
    config_cls = _config_class(spec.get("default_env", {}))
    WorldModelRegistry.register(model_type, config_class=config_cls)(cls)
    try:
        for alias, preset in (spec.get("aliases") or {}).items():
            WorldModelRegistry.register_alias(alias, f"{model_type}:{preset}")
        for preset in cls.presets:
            WorldModelRegistry.register_catalog_entry(
                f"{model_type}:{preset}",
                {"type": model_type, "maturity": spec.get("maturity", "experimental")},
            )
        yield cls
    finally:
        WorldModelRegistry.unregister(model_type)
