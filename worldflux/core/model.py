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

from worldflux.core.components import BuildContext, Objective, Planner
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import (
    CapabilityError,
    ConfigurationError,
    ContractViolation,
    ShapeMismatchError,
    WorldFluxError,
    did_you_mean,
)
from worldflux.core.registry import SLOTS, get_component
from worldflux.core.spec import Capability, ModelIOContract, ModelMaturity, TensorSpec
from worldflux.core.types import Batch, LossOutput, ModelOutput, State, Trajectory

__all__ = ["SpecWorldModel", "WorldModel", "build_component"]


def _leading_dim(obs: Any) -> int | None:
    """The batch size of an observation tensor (or of a dict's first tensor)."""
    if isinstance(obs, Tensor) and obs.dim() > 0:
        return int(obs.shape[0])
    if isinstance(obs, Mapping):
        for value in obs.values():
            if isinstance(value, Tensor) and value.dim() > 0:
                return int(value.shape[0])
    return None


def _cast_batch(batch: Batch, dtype: torch.dtype, device: torch.device) -> Batch:
    """``batch`` on ``device`` with floating tensors in ``dtype`` (itself when nothing moves)."""

    def needs(value: Any) -> bool:
        if isinstance(value, Tensor):
            wrong_dtype = value.is_floating_point() and value.dtype != dtype
            return wrong_dtype or value.device != device
        return isinstance(value, Mapping) and any(needs(v) for v in value.values())

    if any(needs(v) for v in batch.values()):
        return batch.to(device=device, dtype=dtype)
    return batch


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
    module.component_params = dict(params or {})  # type: ignore[assignment]
    return module


def _probe_tensor(spec: TensorSpec, device: torch.device) -> Tensor:
    """A fixed, finite ``[2, *shape]`` input inside the spec's bounds (no RNG)."""
    shape = (2, *(int(d) for d in spec.shape))
    dtype = spec.torch_dtype
    if dtype == torch.bool:
        return torch.zeros(shape, dtype=dtype, device=device)
    if not dtype.is_floating_point:
        return torch.full(shape, int(spec.low or 0), dtype=dtype, device=device)
    values = torch.linspace(-1.0, 1.0, max(1, int(torch.tensor(shape).prod())), device=device)
    values = values.reshape(shape).to(dtype)
    if spec.low is not None or spec.high is not None:
        values = values.clamp(spec.low, spec.high)
    return values


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

    # -- composition ----------------------------------------------------------------------------
    def swap_component(
        self, slot: str, key_or_module: str | nn.Module, params: dict[str, Any] | None = None
    ) -> nn.Module:
        """Replace a composable slot by a registered implementation (key) or a module.

        The new module is moved to the model's device and dtype. Swaps by key (and modules built
        by :func:`build_component`) are recorded in :attr:`component_overrides`, so
        ``save_pretrained`` / ``from_pretrained`` rebuild the swapped model.

        Returns:
            the new slot module.

        Raises:
            ConfigurationError: unknown slot, a slot the model does not declare composable, an
                unknown key or bad params, an implementation that cannot be built for this model
                or cannot serve it, or a module that is not a fitting ``nn.Module``.
        """
        if slot not in SLOTS:
            raise ConfigurationError(f"unknown slot {slot!r}" + did_you_mean(slot, SLOTS))
        if slot not in self.composable_support:
            raise ConfigurationError(
                f"{type(self).__name__} does not support swapping {slot!r}; composable slots: "
                f"{sorted(self.composable_support)}"
            )
        if isinstance(key_or_module, str):
            try:
                module = build_component(slot, key_or_module, params, self._build_context())
            except WorldFluxError:
                raise
            except Exception as error:  # the implementation cannot be built for this model
                raise ConfigurationError(
                    f"{type(self).__name__}: {slot}={key_or_module} cannot be built for this "
                    f"model ({type(error).__name__}: {error}); the previous implementation was kept"
                ) from None
        elif isinstance(key_or_module, nn.Module):
            if params is not None:
                raise ConfigurationError(
                    f"swap_component({slot!r}, <module>): params apply to registry keys only"
                )
            module = key_or_module
            declared = getattr(module, "slot", slot)
            if declared != slot:
                raise ConfigurationError(
                    f"swap_component({slot!r}): {type(module).__name__} is a {declared!r} "
                    f"implementation, expected a {slot!r} one"
                )
        else:
            raise ConfigurationError(
                f"swap_component({slot!r}): expected a registry key or an nn.Module, "
                f"found {type(key_or_module).__name__}"
            )
        module = module.to(self._device())
        dtype = self._float_dtype()
        if any(p.is_floating_point() and p.dtype != dtype for p in module.parameters()):
            module = module.to(dtype)
        previous = getattr(self, SLOTS[slot])
        setattr(self, SLOTS[slot], module)
        self._bound = None  # the contract may depend on the slot (refine_contract)
        try:
            self.check_composition()
        except Exception as error:
            setattr(self, SLOTS[slot], previous)
            self._bound = None
            label = key_or_module if isinstance(key_or_module, str) else type(module).__name__
            reason = (
                error.message
                if isinstance(error, ConfigurationError)
                else (f"{type(error).__name__}: {error}")
            )
            raise ConfigurationError(
                f"{type(self).__name__}: {slot}={label} cannot serve this model ({reason}); "
                "the previous implementation was kept"
            ) from None
        key = getattr(module, "component_key", None)
        if isinstance(key, str):
            self.component_overrides[slot] = {
                "impl": key,
                "params": dict(getattr(module, "component_params", None) or {}),
            }
        else:
            self.component_overrides[slot] = None
        return module

    def check_composition(self) -> None:
        """Probe that the slots work together: one encode / transition / decode / rollout step
        on fixed inputs built from the bound contract (``[2, ...]``), outputs checked against it.

        Called by :meth:`swap_component`, so an implementation that cannot serve this model is
        refused at swap time with a ConfigurationError instead of failing later. Global RNG state
        is preserved; no gradients are recorded. Subclasses extend it (``SpecWorldModel`` also
        asks its objective).
        """
        contract = self.bound_contract()
        if not contract.observation:
            return
        device = self._device()
        obs: Any
        if contract.single_modality:
            obs = _probe_tensor(contract.observation["obs"], device)
        else:
            obs = {k: _probe_tensor(v, device) for k, v in contract.observation.items()}
        if contract.action.kind == "discrete":
            action = torch.zeros(2, dtype=torch.int64, device=device)
        else:
            low, high = contract.action.low, contract.action.high
            action = torch.full((2, int(contract.action.dim)), (low + high) / 2, device=device)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            state = self.encode(obs)
            contract.validate_state(state, (2,))
            after = self.transition(state, action)
            contract.validate_state(after, (2,), name="transition(...)")
            contract.validate_predictions(self.decode(after).predictions, (2,))
            trajectory = self.rollout(state, action.unsqueeze(1))
            if tuple(trajectory.rewards.shape) != (2, 1):
                found = list(trajectory.rewards.shape)
                raise ContractViolation(f"rollout rewards: expected shape [2, 1], found {found}")

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
        slots = spec.get("slots") or {}
        missing = [slot for slot in SLOTS if slot not in slots]
        if missing:
            raise ConfigurationError(
                f"{type(self).__name__}.SPEC['slots'] lacks {missing}; every model declares all "
                f"five slots ({', '.join(SLOTS)})"
            )
        for slot, attr in SLOTS.items():
            entry = slots[slot]
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

    def check_composition(self) -> None:
        """The base probe, then the objective's and the planner's own ``check_model(model)``."""
        super().check_composition()
        for part in (self.objective, self.planner):
            check = getattr(part, "check_model", None)
            if callable(check):
                check(self)

    def io_contract(self) -> ModelIOContract:
        """The spec's contract, refined by each slot implementation in slot order (see
        :meth:`~worldflux.core.components.SlotModule.refine_contract`)."""
        contract = ModelIOContract.from_dict(type(self).SPEC.get("io_contract", {}))
        for attr in SLOTS.values():
            refine = getattr(getattr(self, attr, None), "refine_contract", None)
            if callable(refine):
                contract = refine(contract)
        return contract

    def loss(self, batch: Batch | dict[str, Any]) -> LossOutput:
        """The spec's objective on a ``[B, T, ...]`` batch (validated against the contract;
        tensors are then moved to the model's device, floating ones cast to its dtype)."""
        if self.objective is None:
            raise CapabilityError(f"{type(self).__name__} declares no objective")
        if not isinstance(batch, Batch):
            batch = Batch(batch)
        contract = self._checks()
        if contract is not None:
            contract.validate_batch(batch)
            batch = _cast_batch(batch, self._float_dtype(), self._device())
        out: LossOutput = self.objective(self, batch)
        return out

    @property
    def can_act(self) -> bool:
        """Whether :meth:`act` works: the objective owns an acting policy (``act`` hook)."""
        return callable(getattr(self.objective, "act", None))

    def act(
        self,
        obs: Tensor | dict[str, Tensor],
        carry: Any = None,
        *,
        is_first: bool = False,
        eval_mode: bool = False,
    ) -> tuple[Tensor, Any]:
        """One acting step of the model's own policy (capability POLICY, e.g. DreamerV3's actor):
        observations ``[B, *obs_shape]`` and the carry of the previous call (None at the start)
        -> ``(action [B, A] or [B], carry)``.

        Raises:
            CapabilityError: the model's objective has no acting policy (see :attr:`can_act`).
        """
        act = getattr(self.objective, "act", None)
        if not callable(act):
            raise CapabilityError(
                f"{type(self).__name__} has no acting policy: its objective defines no act(); "
                "use plan() for models with a planner"
            )
        result: tuple[Tensor, Any] = act(self, obs, carry, is_first=is_first, eval_mode=eval_mode)
        return result

    def plan(
        self, obs: Tensor | dict[str, Tensor], *, eval_mode: bool = False, t0: bool = False
    ) -> Tensor:
        """Choose actions ``[B, A]`` for observations ``[B, *obs_shape]`` (capability PLANNING)."""
        if self.planner is None:
            raise CapabilityError(f"{type(self).__name__} has no planner (capability 'planning')")
        actions: Tensor = self.planner(self, obs, eval_mode=eval_mode, t0=t0)
        return actions
