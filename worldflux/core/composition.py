"""Slot composition: swapping a slot's implementation and probing that the slots work together.

:func:`swap_component` and :func:`probe` are what ``WorldModel.swap_component`` and
``WorldModel.check_composition`` run; :func:`build_component` builds a registered implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from worldflux.core.components import BuildContext
from worldflux.core.exceptions import (
    ConfigurationError,
    ContractViolation,
    WorldFluxError,
    did_you_mean,
)
from worldflux.core.registry import SLOTS, get_component
from worldflux.core.spec import TensorSpec

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["build_component", "probe", "swap_component"]


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


def swap_component(
    model: WorldModel,
    slot: str,
    key_or_module: str | nn.Module,
    params: dict[str, Any] | None = None,
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
    if slot == BEHAVIOUR:
        return _swap_behaviour(model, key_or_module, params)
    if slot not in SLOTS:
        raise ConfigurationError(f"unknown slot {slot!r}" + did_you_mean(slot, [*SLOTS, BEHAVIOUR]))
    if slot not in model.composable_support:
        raise ConfigurationError(
            f"{type(model).__name__} does not support swapping {slot!r}; composable slots: "
            f"{sorted(model.composable_support)}"
        )
    if isinstance(key_or_module, str):
        try:
            module = build_component(slot, key_or_module, params, model._build_context())
        except WorldFluxError:
            raise
        except Exception as error:  # the implementation cannot be built for this model
            raise ConfigurationError(
                f"{type(model).__name__}: {slot}={key_or_module} cannot be built for this "
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
    module = module.to(model._device())
    dtype = model._float_dtype()
    if any(p.is_floating_point() and p.dtype != dtype for p in module.parameters()):
        module = module.to(dtype)
    previous = getattr(model, SLOTS[slot])
    setattr(model, SLOTS[slot], module)
    model._bound = None  # the contract may depend on the slot (refine_contract)
    try:
        model.check_composition()
    except Exception as error:
        setattr(model, SLOTS[slot], previous)
        model._bound = None
        label = key_or_module if isinstance(key_or_module, str) else type(module).__name__
        reason = (
            error.message
            if isinstance(error, ConfigurationError)
            else (f"{type(error).__name__}: {error}")
        )
        raise ConfigurationError(
            f"{type(model).__name__}: {slot}={label} cannot serve this model ({reason}); "
            "the previous implementation was kept"
        ) from None
    key = getattr(module, "component_key", None)
    if isinstance(key, str):
        model.component_overrides[slot] = {
            "impl": key,
            "params": dict(getattr(module, "component_params", None) or {}),
        }
    else:
        model.component_overrides[slot] = None
    return module


#: the pseudo-slot of :func:`swap_component` that replaces a spec model's behaviour
BEHAVIOUR = "behaviour"


def _swap_behaviour(
    model: WorldModel, key_or_module: str | nn.Module, params: dict[str, Any] | None
) -> nn.Module:
    """Replace a spec model's behaviour (``swap_component(model, "behaviour", key)``): built,
    bound and checked against the model (``check_model``), recorded for checkpoints; refused
    (the previous one kept) when it cannot serve the model."""
    if not hasattr(model, "behaviour"):
        raise ConfigurationError(f"{type(model).__name__} has no behaviour to replace")
    if not isinstance(key_or_module, str):
        raise ConfigurationError("swap_component('behaviour', ...): expected a registry key")
    previous = getattr(model, BEHAVIOUR)
    try:
        behaviour = build_component(BEHAVIOUR, key_or_module, params, model._build_context())
        behaviour = behaviour.to(model._device())
        setattr(model, BEHAVIOUR, behaviour)
        model._bound = None  # a learned behaviour adds loss components
        bind = getattr(behaviour, "bind", None)
        if callable(bind):
            bind(model)
            behaviour.to(device=model._device(), dtype=model._float_dtype())
        check = getattr(behaviour, "check_model", None)
        if callable(check):
            check(model)
    except WorldFluxError as error:
        setattr(model, BEHAVIOUR, previous)
        model._bound = None
        raise ConfigurationError(
            f"{type(model).__name__}: behaviour={key_or_module} cannot serve this model "
            f"({error.message}); the previous behaviour was kept"
        ) from None
    model.component_overrides[BEHAVIOUR] = {"impl": key_or_module, "params": dict(params or {})}
    return behaviour


def probe_observation(model: WorldModel) -> Tensor | dict[str, Tensor]:
    """A fixed observation batch ``[2, ...]`` of the model's bound contract (no RNG)."""
    contract = model.bound_contract()
    device = model._device()
    if contract.single_modality:
        return _probe_tensor(contract.observation["obs"], device)
    return {k: _probe_tensor(v, device) for k, v in contract.observation.items()}


def probe(model: WorldModel) -> None:
    """Probe that the slots work together: one encode / transition / decode / rollout step
    on fixed inputs built from the bound contract (``[2, ...]``), outputs checked against it.

    Called by :meth:`swap_component`, so an implementation that cannot serve this model is
    refused at swap time with a ConfigurationError instead of failing later. Global RNG state
    is preserved; no gradients are recorded.
    """
    contract = model.bound_contract()
    if not contract.observation:
        return
    device = model._device()
    obs = probe_observation(model)
    if contract.action.kind == "discrete":
        action = torch.zeros(2, dtype=torch.int64, device=device)
    else:
        low, high = contract.action.low, contract.action.high
        action = torch.full((2, int(contract.action.dim)), (low + high) / 2, device=device)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        state = model.encode(obs)
        contract.validate_state(state, (2,))
        after = model.transition(state, action)
        contract.validate_state(after, (2,), name="transition(...)")
        contract.validate_predictions(model.decode(after).predictions, (2,))
        trajectory = model.rollout(state, action.unsqueeze(1))
        if tuple(trajectory.rewards.shape) != (2, 1):
            found = list(trajectory.rewards.shape)
            raise ContractViolation(f"rollout rewards: expected shape [2, 1], found {found}")
