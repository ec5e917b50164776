"""Typed access to a model's slots: :func:`slot_as`.

``WorldModel``'s slot attributes are typed ``nn.Module | None`` (a slot may hold any fitting
``nn.Module``: :func:`~worldflux.core.composition.swap_component` takes modules that are not
registered implementations). Code that calls family-specific methods of a slot (JEPA's
``update_target``, TD-MPC2's Q heads) asks for the class it needs instead of casting to ``Any``::

    encoder = slot_as(model, "observation_encoder", JEPAEncoder)
    encoder.update_target(decay)  # typed; a swapped-in other encoder is a ConfigurationError
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from torch import nn

from worldflux.core.exceptions import ConfigurationError, did_you_mean
from worldflux.core.registry import COMPONENT_KINDS, SLOTS

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["slot_as"]

M = TypeVar("M", bound=nn.Module)


def slot_as(model: WorldModel, slot: str, kind: type[M]) -> M:
    """The module in ``slot`` of ``model``, checked to be an instance of ``kind``.

    Args:
        model: the world model.
        slot: one of the five slots (``observation_encoder``, ``action_conditioner``,
            ``dynamics_model``, ``decoder``, ``rollout_executor``), or ``objective`` /
            ``behaviour`` (the attributes of that name, as spec models hold them).
        kind: the class the caller needs: a slot base class (e.g.
            :class:`~worldflux.core.components.ObservationEncoder`) where the base interface
            suffices, a concrete implementation where its own methods are called.

    Returns:
        the module, typed as ``kind``.

    Raises:
        ConfigurationError: ``slot`` is not a slot name; or the slot is empty or holds
            something that is not a ``kind`` (e.g. another implementation put there by
            ``swap_component``): the message names the model, the slot, the expected class and
            the class found.
    """
    if slot not in COMPONENT_KINDS:
        raise ConfigurationError(f"unknown slot {slot!r}" + did_you_mean(slot, COMPONENT_KINDS))
    module = getattr(model, SLOTS.get(slot, slot), None)
    if isinstance(module, kind):
        return module
    found = "nothing (None)" if module is None else _qualified(type(module))
    raise ConfigurationError(
        f"{type(model).__name__}: the {slot} slot must hold a {_qualified(kind)}, found {found}"
    )


def _qualified(cls: type) -> str:
    return f"{cls.__qualname__} ({cls.__module__})"
