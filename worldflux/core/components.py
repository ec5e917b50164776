"""Slot base classes: the contract between the core and every slot implementation.

Each implementation is an ``nn.Module`` subclass of its slot's base, registered with
:func:`worldflux.core.registry.register_component`, and built as ``cls(ctx, params)`` where
``ctx`` is a :class:`BuildContext` and ``params`` the validated params model (or ``{}``).
See docs/slot-interfaces.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from worldflux.core.types import Batch, LossOutput, ModelOutput, State, Trajectory

if TYPE_CHECKING:
    from worldflux.core.config import WorldModelConfig
    from worldflux.core.model import WorldModel
    from worldflux.core.spec import ModelIOContract

__all__ = [
    "ActionConditioner",
    "Behaviour",
    "BuildContext",
    "Decoder",
    "DynamicsModel",
    "Objective",
    "ObservationEncoder",
    "Planner",
    "RolloutExecutor",
    "SlotModule",
]


@dataclass
class BuildContext:
    """What a slot implementation sees when it is built.

    Attributes:
        config: the model's typed config (every hyperparameter, plus obs_shape / action_dim /
            action_type).
        dims: a scratchpad that slots built earlier fill for later ones (build order:
            observation_encoder, action_conditioner, dynamics_model, decoder, rollout_executor,
            objective, planner); e.g. an encoder sets ``dims["embed_dim"]``.
    """

    config: WorldModelConfig
    dims: dict[str, Any] = field(default_factory=dict)

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.config.obs_shape)

    @property
    def action_dim(self) -> int:
        return int(self.config.action_dim)

    @property
    def action_type(self) -> str:
        return str(self.config.action_type)

    def hparam(self, name: str, default: Any = None) -> Any:
        """A config field, or ``default`` when the config has no such field."""
        return getattr(self.config, name, default)


class SlotModule(nn.Module):
    """Base of every slot implementation. ``slot`` names the slot the class fills."""

    slot: str = ""
    #: Methods that ``worldflux.training.compile.compile_model`` may replace, on an instance, by
    #: ``torch.compile(method, dynamic=False)``: small per-step cells (opt-in per class).
    compile_regions: ClassVar[tuple[str, ...]] = ()

    def refine_contract(self, contract: ModelIOContract) -> ModelIOContract:
        """The model's I/O contract as this implementation serves it (default: unchanged).

        An implementation whose inputs or outputs depend on its config refines the spec's
        declared contract here, e.g. DreamerV3's encoder and decoder replace the one ``obs``
        tensor with the modalities of a dict observation (config ``obs_keys``).
        """
        return contract

    def extra_repr(self) -> str:
        return f"slot={self.slot!r}"


class ObservationEncoder(SlotModule):
    """Raw observations ``[B, *obs_shape]`` (or a dict of modalities) -> observation State."""

    slot = "observation_encoder"

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        raise NotImplementedError("ObservationEncoder.forward(obs) -> State")


class ActionConditioner(SlotModule):
    """Fuse the action (and the state, if needed) into the dynamics input ``[B, D]``."""

    slot = "action_conditioner"

    def forward(self, state: State, action: Tensor) -> Tensor:
        raise NotImplementedError("ActionConditioner.forward(state, action) -> Tensor [B, D]")


class DynamicsModel(SlotModule):
    """Latent dynamics: a prior (imagination) step and a posterior (observation) step."""

    slot = "dynamics_model"

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """The carry before the first observation (default: an empty State)."""
        return State()

    def forward(self, state: State, action_input: Tensor) -> State:
        raise NotImplementedError("DynamicsModel.forward(state, action_input) -> State")

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        """Posterior step; default: the observation state itself (models without a carry).

        ``action_input=None`` means a zero action, as at ``is_first``.
        """
        return obs_state


class Decoder(SlotModule):
    """State -> predictions (``reward [B]``, ``continue [B]``, ``obs [B, *obs_shape]``, ...)."""

    slot = "decoder"

    def forward(self, state: State) -> ModelOutput:
        raise NotImplementedError("Decoder.forward(state) -> ModelOutput")


class RolloutExecutor(SlotModule):
    """Multi-step open-loop rollout through ``model.transition`` and ``model.decode``."""

    slot = "rollout_executor"

    def forward(self, model: WorldModel, state: State, actions: Tensor) -> Trajectory:
        raise NotImplementedError("RolloutExecutor.forward(model, state, actions) -> Trajectory")


class Objective(nn.Module):
    """A training objective. May own modules (e.g. DreamerV3's actor and critic)."""

    slot = "objective"
    #: Methods that ``worldflux.training.compile.compile_model`` may replace, on an instance, by
    #: ``torch.compile(method, dynamic=False)``: small per-step cells (opt-in per class).
    compile_regions: ClassVar[tuple[str, ...]] = ()

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        raise NotImplementedError("Objective.forward(model, batch) -> LossOutput")

    def param_groups(self, model: WorldModel) -> list[dict[str, Any]]:
        """Optimiser parameter groups (default: one group of every trainable parameter)."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        """The optimisers the Trainer steps (default: one Adam over ``param_groups``)."""
        return {"model": torch.optim.Adam(self.param_groups(model), lr=3e-4)}

    def after_step(self, model: WorldModel) -> None:
        """Called after every optimiser step (EMA / Polyak target updates)."""

    def check_model(self, model: WorldModel) -> None:
        """Raise ConfigurationError when ``model``'s slots cannot serve this objective.

        Called after every ``swap_component``: an objective that needs more than the five-slot
        interface (e.g. Q heads on the decoder) says so here, so an incompatible swap is refused.
        """


class Behaviour(nn.Module):
    """How a model acts: the spec's ``behaviour`` (a planner, a learned policy, a goal planner).

    ``act(model, obs [B, *obs_shape], carry, *, is_first, eval_mode, goal) -> (action, carry)``
    gives actions ``[B, A]`` inside the contract's bounds (or ``[B]`` int64 indices) and the carry
    for the next call (None at an episode start). A behaviour that ``learns`` adds its own loss
    terms (``loss_terms``) to the model's loss, computed so that no gradient reaches the world
    model's parameters. A behaviour that ``needs_goal`` acts only when given a goal observation.
    """

    slot = "behaviour"
    #: Methods that ``worldflux.training.compile.compile_model`` may replace, on an instance, by
    #: ``torch.compile(method, dynamic=False)``: small per-step cells (opt-in per class).
    compile_regions: ClassVar[tuple[str, ...]] = ()
    #: Has trainable parameters and a loss (:meth:`loss`), trained with the world model.
    learns: ClassVar[bool] = False
    #: Acts toward a goal observation (``act(..., goal=obs)``); without one it cannot act.
    needs_goal: ClassVar[bool] = False
    #: The loss components :meth:`loss` returns (added to the model's ``loss_components``).
    loss_terms: ClassVar[tuple[str, ...]] = ()

    def act(
        self,
        model: WorldModel,
        obs: Tensor | dict[str, Tensor],
        carry: Any = None,
        *,
        is_first: bool = False,
        eval_mode: bool = False,
        goal: Tensor | dict[str, Tensor] | None = None,
    ) -> tuple[Tensor, Any]:
        raise NotImplementedError("Behaviour.act(model, obs, carry, *, is_first, eval_mode, goal)")

    def loss(self, model: WorldModel, batch: Batch) -> LossOutput:
        """The behaviour's own loss on a ``[B, T, ...]`` batch (learned behaviours only)."""
        raise NotImplementedError(f"{type(self).__name__} does not learn")

    def bind(self, model: WorldModel) -> None:
        """Finish building once the model's slots exist (e.g. size heads from its state)."""

    def reset(self) -> None:
        """Forget per-episode state (a planner's warm start)."""

    def after_step(self, model: WorldModel) -> None:
        """Called after every optimiser step (slow targets of learned behaviours)."""

    def check_model(self, model: WorldModel) -> None:
        """Raise CapabilityError when ``model`` cannot serve this behaviour (e.g. no reward)."""


class Planner(Behaviour):
    """A behaviour that searches over action sequences for one observation batch
    (``forward(model, obs, *, eval_mode, t0) -> action [B, A]``); it carries nothing between
    calls except its warm start, which ``reset`` (or ``is_first``) clears."""

    def forward(
        self,
        model: WorldModel,
        obs: Tensor | dict[str, Tensor],
        *,
        eval_mode: bool = False,
        t0: bool = False,
    ) -> Tensor:
        raise NotImplementedError("Planner.forward(model, obs, *, eval_mode, t0) -> action")

    def act(
        self,
        model: WorldModel,
        obs: Tensor | dict[str, Tensor],
        carry: Any = None,
        *,
        is_first: bool = False,
        eval_mode: bool = False,
        goal: Tensor | dict[str, Tensor] | None = None,
    ) -> tuple[Tensor, Any]:
        """One planning step: ``(self(model, obs, eval_mode=, t0=is_first), None)``."""
        action: Tensor = self(model, obs, eval_mode=eval_mode, t0=is_first)
        return action, None
