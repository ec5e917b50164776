"""``SpecWorldModel``: a :class:`~worldflux.core.model.WorldModel` built from a spec.

Generated classes (``generated/models/<type>.py``) subclass it and set ``SPEC``: a dict with keys
``slots`` (slot -> ``{impl, params}``), ``objective``, optional ``behaviour`` (``{impl, params}``;
how the model acts), ``io_contract``, ``capabilities``, ``composable``, ``maturity``. Code
generated before the behaviour slot names the behaviour ``planner``; both keys are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from worldflux.core.components import Behaviour, BuildContext, Objective, Planner
from worldflux.core.composition import build_component
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import CapabilityError, ConfigurationError
from worldflux.core.model import WorldModel
from worldflux.core.registry import SLOTS, WorldModelRegistry
from worldflux.core.spec import Capability, ModelIOContract
from worldflux.core.types import Batch, LossOutput

__all__ = ["SpecWorldModel"]


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


class SpecWorldModel(WorldModel):
    """A WorldModel whose slots, objective, behaviour and contract come from a spec."""

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
            self._build_part("objective", objective, self.config.objective)  # type: ignore[assignment]
            if objective
            else None
        )
        behaviour = spec.get("behaviour") or spec.get("planner")
        self.behaviour: Behaviour | None = (
            self._build_part("behaviour", behaviour, self.config.behaviour)  # type: ignore[assignment]
            if behaviour
            else None
        )
        if self.behaviour is not None:
            self.behaviour.bind(self)
        for kind, declared in (("objective", objective), ("behaviour", behaviour)):
            if getattr(self.config, kind) and not declared:
                raise ConfigurationError(
                    f"{type(self).__name__}: config {kind} overrides "
                    f"{sorted(getattr(self.config, kind))} given, but the spec declares no {kind}"
                )

    def _build_part(
        self, kind: str, entry: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> torch.nn.Module:
        """The spec's objective or behaviour with the config's param ``overrides`` on top (the
        implementation's params model validates both: an unknown name gets a "did you mean").

        Raises:
            ConfigurationError: an unknown or invalid param.
        """
        params = {**(entry.get("params") or {}), **overrides}
        return build_component(kind, entry["impl"], params, self._ctx)

    @property
    def planner(self) -> Planner | None:
        """The behaviour when it is a planner (MPPI, CEM), else None."""
        return self.behaviour if isinstance(self.behaviour, Planner) else None

    def __setattr__(self, name: str, value: Any) -> None:
        # ``model.planner = X`` (the wave-1 attribute) sets the behaviour; nn.Module's own
        # __setattr__ would otherwise register X as a second submodule named "planner"
        super().__setattr__("behaviour" if name == "planner" else name, value)

    @classmethod
    def _config_class(cls) -> type[WorldModelConfig]:
        if cls.model_type and WorldModelRegistry.is_registered(cls.model_type):
            return WorldModelRegistry.get_config_class(cls.model_type)
        return WorldModelConfig

    def check_composition(self) -> None:
        """The base probe, then the objective's and the behaviour's own ``check_model(model)``."""
        super().check_composition()
        for part in (self.objective, self.behaviour):
            check = getattr(part, "check_model", None)
            if callable(check):
                check(self)

    def io_contract(self) -> ModelIOContract:
        """The spec's contract, refined by each slot implementation in slot order (see
        :meth:`~worldflux.core.components.SlotModule.refine_contract`); a learning behaviour adds
        its loss terms to ``loss_components``."""
        contract = ModelIOContract.from_dict(type(self).SPEC.get("io_contract", {}))
        for attr in SLOTS.values():
            refine = getattr(getattr(self, attr, None), "refine_contract", None)
            if callable(refine):
                contract = refine(contract)
        behaviour = self.behaviour
        if behaviour is not None and behaviour.learns:
            extra = tuple(t for t in behaviour.loss_terms if t not in contract.loss_components)
            contract = dataclasses.replace(
                contract, loss_components=(*contract.loss_components, *extra)
            )
        return contract

    def loss(self, batch: Batch | dict[str, Any]) -> LossOutput:
        """The spec's objective on a ``[B, T, ...]`` batch (validated against the contract;
        tensors are then moved to the model's device, floating ones cast to its dtype), plus the
        behaviour's own terms when it learns (they reach only the behaviour's parameters)."""
        if self.objective is None:
            raise CapabilityError(f"{type(self).__name__} declares no objective")
        if not isinstance(batch, Batch):
            batch = Batch(batch)
        contract = self._checks()
        if contract is not None:
            contract.validate_batch(batch)
            batch = _cast_batch(batch, self._float_dtype(), self._device())
        out: LossOutput = self.objective(self, batch)
        behaviour = self.behaviour
        if behaviour is not None and behaviour.learns:
            extra = behaviour.loss(self, batch)
            clash = sorted(set(extra.components) & set(out.components))
            if clash:
                raise ConfigurationError(
                    f"{type(self).__name__}: behaviour {type(behaviour).__name__} loss terms "
                    f"{clash} clash with the objective's"
                )
            out = LossOutput(
                loss=out.loss + extra.loss,
                components={**out.components, **extra.components},
                metrics={**out.metrics, **extra.metrics},
            )
        return out

    @property
    def can_act(self) -> bool:
        """Whether :meth:`act` works without a goal: the objective owns an acting policy
        (``act`` hook), or the behaviour acts on observations alone."""
        if callable(getattr(self.objective, "act", None)):
            return True
        return self.behaviour is not None and not self.behaviour.needs_goal

    def act(
        self,
        obs: Tensor | dict[str, Tensor],
        carry: Any = None,
        *,
        is_first: bool = False,
        eval_mode: bool = False,
        goal: Tensor | dict[str, Tensor] | None = None,
    ) -> tuple[Tensor, Any]:
        """One acting step: observations ``[B, *obs_shape]`` and the carry of the previous call
        (None at the start) -> ``(action [B, A] or [B], carry)``. The objective's own policy acts
        when it has one (DreamerV3's actor), else the spec's behaviour (``goal``: a goal
        observation ``[B, *obs_shape]`` for goal planners).

        Raises:
            CapabilityError: no acting policy or behaviour, or a goal planner without a goal.
        """
        own = getattr(self.objective, "act", None)
        if callable(own) and goal is None:
            result: tuple[Tensor, Any] = own(
                self, obs, carry, is_first=is_first, eval_mode=eval_mode
            )
            return result
        behaviour = self.behaviour
        if behaviour is None:
            raise CapabilityError(
                f"{type(self).__name__} cannot act: its spec declares no behaviour and its "
                "objective defines no act()"
            )
        if behaviour.needs_goal and goal is None:
            raise CapabilityError(
                f"{type(self).__name__}: behaviour {type(behaviour).__name__} plans toward a "
                "goal; pass act(obs, carry, goal=goal_obs)"
            )
        return behaviour.act(self, obs, carry, is_first=is_first, eval_mode=eval_mode, goal=goal)

    def plan(
        self, obs: Tensor | dict[str, Tensor], *, eval_mode: bool = False, t0: bool = False
    ) -> Tensor:
        """Choose actions ``[B, A]`` for observations ``[B, *obs_shape]`` (capability PLANNING)."""
        planner = self.planner
        if planner is None:
            raise CapabilityError(f"{type(self).__name__} has no planner (capability 'planning')")
        actions: Tensor = planner(self, obs, eval_mode=eval_mode, t0=t0)
        return actions
