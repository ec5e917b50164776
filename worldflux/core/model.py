"""``WorldModel``, the one interface every model honours, and ``SpecWorldModel``, built from a spec.

The five slots are owned submodules; ``encode``, ``transition``, ``decode`` and ``rollout``
delegate to them and validate their inputs against the bound I/O contract, so a bad tensor gets a
:class:`ContractViolation` naming it instead of an error from deep inside torch.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from worldflux.core import composition
from worldflux.core.components import BuildContext
from worldflux.core.composition import build_component
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import (
    CapabilityError,
    ContractViolation,
    ShapeMismatchError,
)
from worldflux.core.registry import SLOTS
from worldflux.core.spec import Capability, ModelIOContract, ModelMaturity
from worldflux.core.types import Batch, LossOutput, ModelOutput, State, Trajectory

__all__ = ["WorldModel", "build_component"]


def _leading_dim(obs: Any) -> int | None:
    """The batch size of an observation tensor (or of a dict's first tensor)."""
    if isinstance(obs, Tensor) and obs.dim() > 0:
        return int(obs.shape[0])
    if isinstance(obs, Mapping):
        for value in obs.values():
            if isinstance(value, Tensor) and value.dim() > 0:
                return int(value.shape[0])
    return None


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
        self._bound_at: tuple[ModelIOContract, torch.dtype, ModelIOContract] | None = None
        for attr in SLOTS.values():
            setattr(self, attr, None)

    # -- contract -------------------------------------------------------------------------------
    def io_contract(self) -> ModelIOContract:
        """The model's declared I/O contract (symbolic). Override, or declare it in a spec."""
        return ModelIOContract()

    def bound_contract(self) -> ModelIOContract:
        """The contract with every symbol resolved from the config, at the model's precision
        (its ``float32`` tensors are float64 after ``model.double()``; cached)."""
        declared, dtype = self.declared_contract(), self._float_dtype()
        if dtype == torch.float32:
            return declared
        cached = self._bound_at
        if cached is None or cached[0] is not declared or cached[1] != dtype:
            cached = self._bound_at = (declared, dtype, declared.at_precision(dtype))
        return cached[2]

    def declared_contract(self) -> ModelIOContract:
        """The contract with every symbol resolved, with the spec's own dtypes (what checkpoint
        fingerprints hash, so a converted model's checkpoint loads into a fresh build)."""
        if self._bound is None:
            self._bound = self.io_contract().bind(
                self.config, self.config.obs_shape, self.config.action_dim
            )
        return self._bound

    def _checks(self) -> ModelIOContract | None:
        return self.bound_contract() if self.validate_inputs else None

    # -- the five delegations -------------------------------------------------------------------
    def _slot(self, slot: str) -> nn.Module:
        module: nn.Module | None = getattr(self, SLOTS[slot])
        if module is None:
            raise CapabilityError(
                f"{type(self).__name__} has no {slot} slot; override the method instead"
            )
        return module

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The carry before the first observation (``[B, ...]`` tensors, on the model's device
        unless ``device`` is given)."""
        dynamics: Any = self._slot("dynamics_model")
        where = torch.device(device) if device is not None else self._device()
        initial: State = dynamics.initial_state(batch_size, where, self._float_dtype())
        return initial

    def encode(
        self,
        obs: Tensor | dict[str, Tensor],
        state: State | None = None,
        action: Tensor | None = None,
        *,
        validate: bool = True,
    ) -> State:
        """Observation ``[B, *obs_shape]`` (optionally with previous state and action) -> State.

        Args:
            obs: ``[B, *obs_shape]`` (or a dict of modality tensors ``[B, ...]``).
            state: the carry ``[B, ...]`` before this observation (default: initial state).
            action: the action ``[B, A]`` (``[B]`` int64 when discrete) taken from ``state``.
            validate: check every input against the bound contract first (inputs are then
                moved to the model's device, floating ones cast to its dtype).

        Raises:
            ContractViolation: an input has the wrong type, rank, dtype, size or batch size.
        """
        contract = self._checks() if validate else None
        if contract is not None:
            if contract.observation:
                contract.validate_observation(obs)
            batch = _leading_dim(obs)
            if state is not None:
                # an empty State is the carry of models without one (their initial state)
                self._validate_state(contract, state, batch, allow_empty=True)
            if action is not None:
                contract.validate_action(action, lead=(batch,))
            obs, state, action = self._cast_inputs(obs, state, action)
        obs_state: State = self._slot("observation_encoder")(obs)
        dynamics: Any = self._slot("dynamics_model")
        if state is None:
            batch_size = obs_state.batch_size
            state = dynamics.initial_state(batch_size, obs_state.device, self._float_dtype())
        action_input = None if action is None else self._slot("action_conditioner")(state, action)
        observed: State = dynamics.observe(state, action_input, obs_state)
        return observed

    def transition(self, state: State, action: Tensor, *, validate: bool = True) -> State:
        """One latent step: State ``[B, ...]`` and action ``[B, A]`` (or ``[B]`` int64) -> State.

        Raises:
            ContractViolation: the state or action does not match the contract (or each other's
                batch size), when ``validate``.
        """
        contract = self._checks() if validate else None
        if contract is not None:
            batch = self._validate_state(contract, state, None)
            contract.validate_action(action, lead=(batch,))
            _, state, action = self._cast_inputs(None, state, action)
        action_input = self._slot("action_conditioner")(state, action)
        successor: State = self._slot("dynamics_model")(state, action_input)
        return successor

    def decode(self, state: State, *, validate: bool = True) -> ModelOutput:
        """State ``[B, ...]`` -> predictions (``reward [B]``, ``continue [B]``, ...).

        Raises:
            ContractViolation: the state does not match the contract, when ``validate``.
        """
        contract = self._checks() if validate else None
        if contract is not None:
            self._validate_state(contract, state, None)
            _, state, _ = self._cast_inputs(None, state, None)
        decoded: ModelOutput = self._slot("decoder")(state)
        return decoded

    def rollout(self, state: State, actions: Tensor, *, validate: bool = True) -> Trajectory:
        """Open-loop rollout of ``actions [B, H, A]`` (or ``[B, H]``): states ``[B, H+1, ...]``.

        Raises:
            ContractViolation: bad state or actions (``H`` must be at least 1), when ``validate``.
        """
        contract = self._checks() if validate else None
        if contract is not None:
            batch = self._validate_state(contract, state, None)
            contract.validate_action(
                actions, lead=(batch, None), name="actions", lead_names=("B", "H")
            )
            if actions.shape[1] < 1:
                raise ContractViolation(
                    f"actions: expected a horizon H >= 1, found shape {list(actions.shape)}"
                )
            _, state, actions = self._cast_inputs(None, state, actions)
        trajectory: Trajectory = self._slot("rollout_executor")(self, state, actions)
        return trajectory

    # -- input checks -------------------------------------------------------------------------
    @staticmethod
    def _validate_state(
        contract: ModelIOContract, state: Any, batch: int | None, allow_empty: bool = False
    ) -> int | None:
        """Check ``state`` against the contract; return its batch size (None when unknown)."""
        if not isinstance(state, State):
            if not isinstance(state, Mapping):
                raise ContractViolation(
                    f"state: expected a State (mapping of tensors), found {type(state).__name__}"
                )
            state = State(state)
        if contract.state and not (allow_empty and len(state) == 0):
            contract.validate_state(state, lead=(batch,))
        sizes = {k: int(v.shape[0]) for k, v in state.items() if v.dim() > 0}
        if batch is not None:
            wrong = {k: b for k, b in sizes.items() if b != batch}
            if wrong:
                raise ShapeMismatchError(
                    f"state: expected batch size {batch} (from obs), found {wrong}"
                )
        elif len(set(sizes.values())) > 1:
            raise ShapeMismatchError(f"state: tensors disagree on the batch size: {sizes}")
        return batch if batch is not None else next(iter(sizes.values()), None)

    def _device(self) -> torch.device:
        """Where the model's parameters (or buffers) live (cpu when it has none)."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def _float_dtype(self) -> torch.dtype:
        """The floating dtype of the model's parameters (float32 when it has none)."""
        for param in self.parameters():
            if param.is_floating_point():
                return param.dtype
        return torch.float32

    def _cast_inputs(
        self,
        obs: Tensor | dict[str, Tensor] | None,
        state: State | Mapping[str, Tensor] | None,
        action: Tensor | None,
    ) -> tuple[Any, Any, Any]:
        """Move inputs to the model's device and cast floating ones to its dtype (validated
        inputs only; usually a no-op)."""
        dtype, device = self._float_dtype(), self._device()

        def cast(t: Tensor) -> Tensor:
            if t.device != device:
                t = t.to(device)
            return t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t

        if isinstance(obs, Tensor):
            obs = cast(obs)
        elif isinstance(obs, Mapping):
            obs = {k: cast(v) for k, v in obs.items()}
        if state is not None:
            state = State({k: cast(v) for k, v in state.items()})
        if action is not None:
            action = cast(action)
        return obs, state, action

    @abstractmethod
    def loss(self, batch: Batch) -> LossOutput:
        """The training objective on a ``[B, T, ...]`` batch."""

    # -- composition (worldflux.core.composition) ------------------------------------------------
    def swap_component(
        self, slot: str, key_or_module: str | nn.Module, params: dict[str, Any] | None = None
    ) -> nn.Module:
        """Replace a composable slot by a registered implementation (key) or a module; see
        :func:`worldflux.core.composition.swap_component`.

        Raises:
            ConfigurationError: the swap is refused (the previous implementation is kept).
        """
        return composition.swap_component(self, slot, key_or_module, params)

    def check_composition(self) -> None:
        """Probe that the slots work together (:func:`worldflux.core.composition.probe`); a
        subclass extends it (``SpecWorldModel`` also asks its objective)."""
        composition.probe(self)

    @property
    def component_overrides(self) -> dict[str, dict[str, Any] | None]:
        """slot -> ``{"impl": key, "params": {...}}`` of every swap since construction
        (None for a module that is not a registered implementation: it cannot be saved)."""
        overrides: dict[str, dict[str, Any] | None] | None = self.__dict__.get(
            "_component_overrides"
        )
        if overrides is None:
            overrides = {}
            self.__dict__["_component_overrides"] = overrides
        return overrides

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
        # deferred: core.checkpoint imports this module (WorldModel)
        from worldflux.core.checkpoint import save_pretrained

        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu"
    ) -> WorldModel:
        """Rebuild a model saved by :meth:`save_pretrained`; never loads half a checkpoint."""
        # deferred: core.checkpoint imports this module (WorldModel)
        from worldflux.core.checkpoint import load_pretrained

        return load_pretrained(directory, expected=cls, device=device)

    def extra_repr(self) -> str:
        return f"model_type={self.model_type!r}, trainable_params={self.num_parameters():,}"


def __getattr__(name: str) -> Any:
    """``SpecWorldModel`` moved to :mod:`worldflux.core.spec_model`; code generated before the
    move imports it from here."""
    if name == "SpecWorldModel":
        # deferred: spec_model imports this module (WorldModel); resolving lazily breaks the cycle
        from worldflux.core.spec_model import SpecWorldModel

        return SpecWorldModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
