"""``WorldModel``, the one interface every model honours, and ``SpecWorldModel``, built from a spec.

The five slots are owned submodules; ``encode``, ``transition``, ``decode`` and ``rollout``
delegate to them and validate their inputs against the bound I/O contract, so a bad tensor gets a
:class:`ContractViolation` naming it instead of an error from deep inside torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from worldflux.core.components import BuildContext, Objective, Planner
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import CapabilityError, ConfigurationError, did_you_mean
from worldflux.core.registry import SLOTS, get_component
from worldflux.core.spec import Capability, ModelIOContract, ModelMaturity
from worldflux.core.types import Batch, LossOutput, ModelOutput, State, Trajectory

__all__ = ["SpecWorldModel", "WorldModel", "build_component"]


def build_component(
    kind: str, key: str, params: dict[str, Any] | None, ctx: BuildContext
) -> nn.Module:
    """Build the implementation registered as ``key`` for ``kind`` with validated ``params``."""
    entry = get_component(kind, key)
    validated = entry.validate_params(params)
    module = entry.cls(ctx, validated)
    if not isinstance(module, nn.Module):
        raise ConfigurationError(
            f"{kind} {key!r} built a {type(module).__name__}, expected an nn.Module"
        )
    module.component_key = key  # type: ignore[assignment]
    return module


class WorldModel(nn.Module, ABC):
    """Base class of every world model.

    Attributes:
        config: the typed config the model was built from.
        capabilities: what the model can do beyond the five-slot interface.
        composable_support: the slots that :meth:`swap_component` may replace.
        observation_encoder, action_conditioner, dynamics_model, decoder_module, rollout_executor:
            the five slots (``nn.Module`` or None).
    """

    model_type: ClassVar[str] = ""
    maturity: ClassVar[ModelMaturity] = ModelMaturity.EXPERIMENTAL
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    observation_encoder: nn.Module | None
    action_conditioner: nn.Module | None
    dynamics_model: nn.Module | None
    decoder_module: nn.Module | None
    rollout_executor: nn.Module | None

    def __init__(self, config: WorldModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else WorldModelConfig()
        self.capabilities: set[Capability] = set()
        self.composable_support: set[str] = set()
        self.validate_inputs = True
        self._bound: ModelIOContract | None = None
        for attr in SLOTS.values():
            setattr(self, attr, None)

    # -- contract -------------------------------------------------------------------------------
    def io_contract(self) -> ModelIOContract:
        """The model's declared I/O contract (symbolic). Override, or declare it in a spec."""
        return ModelIOContract()

    def bound_contract(self) -> ModelIOContract:
        """The contract with every symbol resolved from the config (cached)."""
        if self._bound is None:
            self._bound = self.io_contract().bind(
                self.config, self.config.obs_shape, self.config.action_dim
            )
        return self._bound

    def _checks(self) -> ModelIOContract | None:
        return self.bound_contract() if self.validate_inputs else None

    # -- the five delegations -------------------------------------------------------------------
    def _slot(self, slot: str) -> nn.Module:
        module = getattr(self, SLOTS[slot])
        if module is None:
            raise CapabilityError(
                f"{type(self).__name__} has no {slot} slot; override the method instead"
            )
        return module

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The carry before the first observation (``[B, ...]`` tensors)."""
        dynamics: Any = self._slot("dynamics_model")
        return dynamics.initial_state(batch_size, torch.device(device or "cpu"), torch.float32)

    def encode(
        self,
        obs: Tensor | dict[str, Tensor],
        state: State | None = None,
        action: Tensor | None = None,
        *,
        validate: bool = True,
    ) -> State:
        """Observation ``[B, *obs_shape]`` (optionally with previous state and action) -> State."""
        contract = self._checks() if validate else None
        if contract is not None and contract.observation:
            contract.validate_observation(obs)
            if action is not None:
                contract.validate_action(action)
        obs_state: State = self._slot("observation_encoder")(obs)
        dynamics: Any = self._slot("dynamics_model")
        if state is None:
            batch = obs_state.batch_size
            state = dynamics.initial_state(batch, obs_state.device, torch.float32)
        action_input = None if action is None else self._slot("action_conditioner")(state, action)
        return dynamics.observe(state, action_input, obs_state)

    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        """One latent step: State ``[B, ...]`` and action ``[B, A]`` (or ``[B]`` int64) -> State."""
        contract = self._checks() if validate else None
        if contract is not None:
            contract.validate_action(action)
        action_input = self._slot("action_conditioner")(state, action)
        return self._slot("dynamics_model")(state, action_input)

    def decode(self, state: State) -> ModelOutput:
        """State ``[B, ...]`` -> predictions (``reward [B]``, ``continue [B]``, ...)."""
        return self._slot("decoder")(state)

    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        """Open-loop rollout of ``actions [B, H, A]`` (or ``[B, H]``): states ``[B, H+1, ...]``."""
        contract = self._checks() if validate else None
        if contract is not None:
            contract.validate_action(actions, lead=(state.batch_size or None, None), name="actions")
        return self._slot("rollout_executor")(self, state, actions)

    @abstractmethod
    def loss(self, batch: Batch) -> LossOutput:
        """The training objective on a ``[B, T, ...]`` batch."""

    # -- composition ----------------------------------------------------------------------------
    def swap_component(
        self, slot: str, key_or_module: str | nn.Module, params: dict[str, Any] | None = None
    ) -> nn.Module:
        """Replace a composable slot by a registered implementation (key) or a module.

        Returns:
            the new slot module.

        Raises:
            ConfigurationError: unknown slot, or a slot the model does not declare composable.
        """
        if slot not in SLOTS:
            raise ConfigurationError(f"unknown slot {slot!r}" + did_you_mean(slot, SLOTS))
        if slot not in self.composable_support:
            raise ConfigurationError(
                f"{type(self).__name__} does not support swapping {slot!r}; composable slots: "
                f"{sorted(self.composable_support)}"
            )
        if isinstance(key_or_module, str):
            module = build_component(slot, key_or_module, params, self._build_context())
        else:
            module = key_or_module
        setattr(self, SLOTS[slot], module)
        return module

    def _build_context(self) -> BuildContext:
        ctx = getattr(self, "_ctx", None)
        return ctx if ctx is not None else BuildContext(self.config)

    def slot_modules(self) -> dict[str, nn.Module | None]:
        """slot name -> module."""
        return {slot: getattr(self, attr) for slot, attr in SLOTS.items()}

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Parameter count (``requires_grad`` ones only by default)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write weights (safetensors), config and metadata to ``directory`` atomically."""
        from worldflux.core.checkpoint import save_pretrained

        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu"
    ) -> WorldModel:
        """Rebuild a model saved by :meth:`save_pretrained`; never loads half a checkpoint."""
        from worldflux.core.checkpoint import load_pretrained

        return load_pretrained(directory, expected=cls, device=device)

    def extra_repr(self) -> str:
        return f"model_type={self.model_type!r}, trainable_params={self.num_parameters():,}"


class SpecWorldModel(WorldModel):
    """A WorldModel whose slots, objective, planner and contract come from a spec.

    Generated classes (``generated/models/<type>.py``) subclass it and set ``SPEC``: a dict with
    keys ``slots`` (slot -> ``{impl, params}``), ``objective`` and optional ``planner``
    (``{impl, params}``), ``io_contract``, ``capabilities``, ``composable``, ``maturity``.
    """

    SPEC: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: WorldModelConfig | None = None) -> None:
        config_class = type(self)._config_class()
        super().__init__(config if config is not None else config_class())
        spec = type(self).SPEC
        self.capabilities = {Capability(c) for c in spec.get("capabilities", ())}
        self.composable_support = set(spec.get("composable", ()))
        self._ctx = BuildContext(self.config)
        for slot, attr in SLOTS.items():
            entry = spec["slots"][slot]
            setattr(
                self, attr, build_component(slot, entry["impl"], entry.get("params"), self._ctx)
            )
        objective = spec.get("objective")
        self.objective: Objective | None = (
            build_component("objective", objective["impl"], objective.get("params"), self._ctx)  # type: ignore[assignment]
            if objective
            else None
        )
        planner = spec.get("planner")
        self.planner: Planner | None = (
            build_component("planner", planner["impl"], planner.get("params"), self._ctx)  # type: ignore[assignment]
            if planner
            else None
        )

    @classmethod
    def _config_class(cls) -> type[WorldModelConfig]:
        from worldflux.core.registry import WorldModelRegistry

        if cls.model_type and WorldModelRegistry.is_registered(cls.model_type):
            return WorldModelRegistry.get_config_class(cls.model_type)
        return WorldModelConfig

    def io_contract(self) -> ModelIOContract:
        return ModelIOContract.from_dict(type(self).SPEC.get("io_contract", {}))

    def loss(self, batch: Batch | dict[str, Any]) -> LossOutput:
        """The spec's objective on a ``[B, T, ...]`` batch (validated against the contract)."""
        if self.objective is None:
            raise CapabilityError(f"{type(self).__name__} declares no objective")
        if not isinstance(batch, Batch):
            batch = Batch(batch)
        contract = self._checks()
        if contract is not None:
            contract.validate_batch(batch)
        return self.objective(self, batch)

    def plan(
        self, obs: Tensor | dict[str, Tensor], *, eval_mode: bool = False, t0: bool = False
    ) -> Tensor:
        """Choose actions ``[B, A]`` for observations ``[B, *obs_shape]`` (capability PLANNING)."""
        if self.planner is None:
            raise CapabilityError(f"{type(self).__name__} has no planner (capability 'planning')")
        return self.planner(self, obs, eval_mode=eval_mode, t0=t0)
