"""How actions are chosen while collecting experience.

* :class:`RandomActor`: uniform actions in the contract's range (or uniform discrete indices),
  from its own numpy generator (saved in checkpoints).
* :class:`PlannerActor`: ``model.plan(obs [1, *obs_shape], eval_mode=, t0=) -> [1, A]`` for models
  with the ``planning`` capability (TD-MPC2's MPPI).
* :class:`PolicyActor`: models exposing ``act(obs [1, *obs_shape], carry, *, is_first, eval_mode)
  -> (action [1, A] or [1], carry)`` (a recurrent policy such as DreamerV3's actor; a spec model
  acts when its objective has an ``act`` hook or its spec declares a behaviour, ``model.can_act``).
* :class:`GoalActor`: goal behaviours (``goal_cem``), toward the episode's goal observation.

:func:`make_actor` picks the planner, then a goal behaviour, then the policy, then random
actions; :func:`declared_behaviour` names the spec's behaviour for run records.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from worldflux.core.exceptions import CapabilityError
from worldflux.core.model import WorldModel
from worldflux.core.spec import Capability
from worldflux.training.envs import Obs

__all__ = [
    "Actor",
    "GoalActor",
    "PlannerActor",
    "PolicyActor",
    "RandomActor",
    "declared_behaviour",
    "give_goal",
    "make_actor",
]


class Actor(Protocol):
    """Chooses one action per step; ``reset`` at every episode start."""

    name: str

    def reset(self) -> None: ...

    def act(self, obs: Obs, is_first: bool, eval_mode: bool = False) -> np.ndarray: ...


class RandomActor:
    """Uniform random actions: ``[A]`` float32 in ``[low, high]`` or a discrete index ``[]``."""

    name = "random"

    def __init__(
        self,
        action_dim: int,
        action_type: str,
        low: float = -1.0,
        high: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.action_dim = action_dim
        self.action_type = action_type
        self.low, self.high = low, high
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Random actions carry nothing between steps."""

    def act(self, obs: Obs, is_first: bool, eval_mode: bool = False) -> np.ndarray:
        if self.action_type == "discrete":
            return np.asarray(self.rng.integers(self.action_dim), dtype=np.int64)
        return self.rng.uniform(self.low, self.high, size=self.action_dim).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def _obs_tensor(obs: Any, model: WorldModel, normalize_images: bool) -> Any:
    """``obs`` (an array, or a dict of arrays) as ``[1, ...]`` tensors on the model's device."""
    if isinstance(obs, dict):
        return {k: _obs_tensor(v, model, normalize_images) for k, v in obs.items()}
    tensor = torch.from_numpy(np.asarray(obs))[None]
    if tensor.dtype == torch.uint8 and normalize_images:
        tensor = tensor.float().div_(255.0)
    device = next(model.parameters()).device
    return tensor.to(device)


class PlannerActor:
    """Acts with ``model.plan``; resets the planner's warm start at each episode start."""

    name = "planner"

    def __init__(self, model: WorldModel, normalize_images: bool = True) -> None:
        self.model = model
        self.normalize_images = normalize_images

    def reset(self) -> None:
        planner = getattr(self.model, "planner", None)
        if planner is not None and callable(getattr(planner, "reset", None)):
            planner.reset()

    def act(self, obs: Obs, is_first: bool, eval_mode: bool = False) -> np.ndarray:
        with torch.no_grad():
            plan: Any = getattr(self.model, "plan")  # noqa: B009 - SpecWorldModel.plan
            tensor = _obs_tensor(obs, self.model, self.normalize_images)
            action: Tensor = plan(tensor, eval_mode=eval_mode, t0=is_first)
        return action[0].detach().cpu().numpy()


class PolicyActor:
    """Acts with ``model.act(obs, carry, is_first=, eval_mode=)``, carrying its state."""

    name = "policy"

    def __init__(self, model: WorldModel, normalize_images: bool = True) -> None:
        self.model = model
        self.normalize_images = normalize_images
        self.carry: Any = None

    def reset(self) -> None:
        self.carry = None

    def act(self, obs: Obs, is_first: bool, eval_mode: bool = False) -> np.ndarray:
        with torch.no_grad():
            act: Any = getattr(self.model, "act")  # noqa: B009 - optional policy protocol
            action: Tensor
            action, self.carry = act(
                _obs_tensor(obs, self.model, self.normalize_images),
                self.carry,
                is_first=is_first,
                eval_mode=eval_mode,
            )
        return action[0].detach().cpu().numpy()


class GoalActor:
    """Acts with a goal behaviour (``goal_cem``): ``model.act(obs, None, is_first=, eval_mode=,
    goal=)`` toward the goal observation of the episode, which the loop hands over at every reset
    (:meth:`set_goal`, from the environment's ``info["goal"]``). Without a goal it is not
    :attr:`ready`: the loop then acts randomly."""

    name = "goal"

    def __init__(self, model: WorldModel, normalize_images: bool = True) -> None:
        self.model = model
        self.normalize_images = normalize_images
        self.goal: Obs | None = None

    @property
    def ready(self) -> bool:
        """A goal is known for this episode."""
        return self.goal is not None

    def set_goal(self, goal: Obs | None) -> None:
        self.goal = goal

    def reset(self) -> None:
        behaviour = getattr(self.model, "behaviour", None)
        if behaviour is not None:
            behaviour.reset()

    def act(self, obs: Obs, is_first: bool, eval_mode: bool = False) -> np.ndarray:
        if self.goal is None:
            raise CapabilityError("the goal behaviour has no goal: the environment gave none")
        with torch.no_grad():
            act: Any = getattr(self.model, "act")  # noqa: B009 - SpecWorldModel.act
            action: Tensor
            action, _ = act(
                _obs_tensor(obs, self.model, self.normalize_images),
                None,
                is_first=is_first,
                eval_mode=eval_mode,
                goal=_obs_tensor(self.goal, self.model, self.normalize_images),
            )
        return action[0].detach().cpu().numpy()


def give_goal(actor: Any, goal: Obs | None) -> None:
    """Hand an episode's goal observation to an actor that plans toward goals."""
    set_goal = getattr(actor, "set_goal", None)
    if callable(set_goal):
        set_goal(goal)


def declared_behaviour(model: WorldModel) -> str | None:
    """The registered key of the behaviour a spec model acts with (``actor_critic``, ``mppi``,
    ...): a swapped-in one (``--behaviour``), else the spec's; None without one."""
    swapped = model.component_overrides.get("behaviour")
    if swapped:
        return str(swapped["impl"])
    spec: dict[str, Any] = getattr(type(model), "SPEC", None) or {}
    entry = spec.get("behaviour") or spec.get("planner")
    return None if not entry else str(entry["impl"])


def make_actor(
    model: WorldModel, normalize_images: bool = True
) -> PlannerActor | PolicyActor | GoalActor | None:
    """The model's own actor: its planner (capability ``planning``), a goal behaviour (which
    acts once the environment gives a goal), else its ``act`` policy, else None (the loop then
    acts randomly throughout)."""
    if Capability.PLANNING in model.capabilities and getattr(model, "planner", None) is not None:
        return PlannerActor(model, normalize_images)
    if getattr(getattr(model, "behaviour", None), "needs_goal", False):
        return GoalActor(model, normalize_images)
    if callable(getattr(model, "act", None)) and getattr(model, "can_act", True):
        return PolicyActor(model, normalize_images)
    return None
