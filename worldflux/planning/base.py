"""Shared machinery of the sampling planners (MPPI, CEM): latent functions and the search loop.

A planner sees a model through :class:`LatentFunctions`:

* ``encode(obs) -> State [B, ...]`` (``model.encode``);
* ``step(state [N, ...], action [N, A]) -> (state', reward [N])`` (``model.transition`` then
  ``model.decode(...).predictions["reward"]``), so any five-slot model can be planned with;
* optional hooks on the decoder, used when present (TD-MPC2's ``tdmpc2.heads`` has them all):
  ``planning_context() -> context manager`` entered for the whole search (e.g. faster numerics);
  ``planning_policy(latent [N, L]) -> action [N, A]`` (a policy prior that seeds
  ``num_pi_trajs`` trajectories) and ``planning_value(latent [N, L], action [N, A]) -> [N]``
  (a terminal value bootstrap); and an optional ``discount`` attribute.

Search (per observation, batched over B): sample ``num_samples`` action sequences
``[H, A]`` from N(mean, std) clipped to the action bounds (plus the policy trajectories), score
them with Σ_t γ^t r_t + γ^H·V(z_H, π(z_H)), keep the ``num_elites`` best, refit mean and std
(clamped to ``[min_std, max_std]``), repeat ``iterations`` times; warm-start from the previous
mean shifted by one step unless ``t0``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldflux.core.components import BuildContext, Planner
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.types import State

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["LatentFunctions", "SamplingPlanner", "SamplingPlannerParams"]


class SamplingPlannerParams(BaseModel):
    """Settings shared by MPPI and CEM (official TD-MPC2 defaults)."""

    model_config = ConfigDict(extra="forbid")

    iterations: int = Field(6, ge=1, description="refinement iterations")
    extra_iterations_large_action: int = Field(
        2, ge=0, description="added when action_dim >= 20 (official heuristic)"
    )
    num_samples: int = Field(512, ge=2, description="action sequences per iteration")
    num_elites: int = Field(64, ge=1, description="best sequences kept")
    num_pi_trajs: int = Field(24, ge=0, description="sequences from the policy prior")
    horizon: int | None = Field(None, ge=1, description="default: the config's horizon")
    temperature: float = Field(0.5, gt=0.0, description="MPPI score temperature")
    min_std: float = Field(0.05, gt=0.0)
    max_std: float = Field(2.0, gt=0.0)
    action_low: float = -1.0
    action_high: float = 1.0
    discount: float | None = Field(None, gt=0.0, le=1.0, description="default: model's")


class LatentFunctions:
    """Tensor-level view of a model for planning (see the module docstring)."""

    def __init__(self, model: WorldModel) -> None:
        self.model = model
        decoder = model.decoder_module  # optional hooks, read with getattr: any decoder
        self.policy: Callable[[Tensor], Tensor] | None = getattr(decoder, "planning_policy", None)
        self.value: Callable[[Tensor, Tensor], Tensor] | None = getattr(
            decoder, "planning_value", None
        )
        self.discount: float | None = getattr(decoder, "discount", None)
        context = getattr(decoder, "planning_context", None)
        self.context: Callable[[], AbstractContextManager[Any]] = context or nullcontext

    def encode(self, obs: Tensor | dict[str, Tensor]) -> State:
        return self.model.encode(obs)

    def step(self, state: State, action: Tensor) -> tuple[State, Tensor]:
        nxt = self.model.transition(state, action, validate=False)
        reward = self.model.decode(nxt, validate=False).predictions.get("reward")
        if reward is None:
            reward = action.new_zeros(action.shape[0])
        return nxt, reward.reshape(action.shape[0])


def _repeat(state: State, n: int) -> State:
    """Each of the B states repeated n times, sample-major within a batch entry: ``[B*n, ...]``."""
    return State({k: v.repeat_interleave(n, dim=0) for k, v in state.items()})


class SamplingPlanner(Planner):
    """Base of MPPI and CEM: the sampling loop; subclasses choose the elite weights and the
    returned action. ``forward(model, obs [B, *obs_shape])`` returns actions ``[B, A]``."""

    def __init__(self, ctx: BuildContext, params: SamplingPlannerParams) -> None:
        super().__init__()
        if params.num_elites > params.num_samples:
            raise ConfigurationError(
                f"{type(self).__name__}: num_elites ({params.num_elites}) must be <= "
                f"num_samples ({params.num_samples})"
            )
        if params.num_pi_trajs >= params.num_samples:
            raise ConfigurationError(
                f"{type(self).__name__}: num_pi_trajs ({params.num_pi_trajs}) must be < "
                f"num_samples ({params.num_samples})"
            )
        if params.min_std > params.max_std or params.action_low >= params.action_high:
            raise ConfigurationError(
                f"{type(self).__name__}: need min_std <= max_std and action_low < action_high"
            )
        self.params = params
        self.action_dim = ctx.action_dim
        #: Discrete actions are planned in their continuous relaxation: a sampled vector
        #: ``[A]`` of scores in the action bounds stands for the index of its largest entry.
        self.discrete = ctx.action_type == "discrete"
        self.horizon = int(params.horizon or ctx.hparam("horizon", 3))
        self.iterations = params.iterations + params.extra_iterations_large_action * int(
            ctx.action_dim >= 20
        )
        self._prev_mean: Tensor | None = None

    def reset(self) -> None:
        """Forget the warm start (call at the start of an episode, or pass ``t0=True``)."""
        self._prev_mean = None

    def env_action(self, action: Tensor) -> Tensor:
        """What the model is given for a planned ``[N, A]`` vector: itself, or for discrete
        actions the index ``[N]`` of its largest score."""
        return action.argmax(-1) if self.discrete else action

    # -- hooks for subclasses ------------------------------------------------------------------
    def elite_weights(self, elite_value: Tensor) -> Tensor:
        """Normalised weights ``[B, E]`` of the elites from their values ``[B, E]``."""
        raise NotImplementedError

    def select(
        self, elite_actions: Tensor, weights: Tensor, mean: Tensor, std: Tensor, eval_mode: bool
    ) -> Tensor:
        """The first action ``[B, A]`` from elites ``[H, B, E, A]``, weights ``[B, E]`` and the
        final ``mean`` / ``std`` ``[H, B, A]``."""
        raise NotImplementedError

    # -- the loop --------------------------------------------------------------------------------
    def _value(self, fns: LatentFunctions, state: State, actions: Tensor, gamma: float) -> Tensor:
        """Σ_t γ^t r_t + γ^H·V(z_H, π(z_H)) for ``actions [H, N, A]`` from ``state [N, ...]``."""
        total: Tensor | float = 0.0
        discount = 1.0
        for t in range(actions.shape[0]):
            state, reward = fns.step(state, self.env_action(actions[t]))
            total = total + discount * reward
            discount *= gamma
        if fns.value is not None and fns.policy is not None:
            latent = state["latent"]
            total = total + discount * fns.value(latent, fns.policy(latent))
        assert isinstance(total, Tensor)
        return total

    @torch.no_grad()
    def forward(
        self,
        model: WorldModel,
        obs: Tensor | dict[str, Tensor],
        *,
        eval_mode: bool = False,
        t0: bool = False,
    ) -> Tensor:
        """Plan from observations ``[B, *obs_shape]``; returns actions ``[B, A]`` in bounds."""
        fns = LatentFunctions(model)
        with fns.context():
            return self._search(fns, obs, eval_mode, t0)

    def _search(
        self, fns: LatentFunctions, obs: Tensor | dict[str, Tensor], eval_mode: bool, t0: bool
    ) -> Tensor:
        p = self.params
        gamma = float(p.discount or fns.discount or 0.99)
        start = fns.encode(obs)
        batch = start.batch_size
        horizon, adim = self.horizon, self.action_dim
        ref = next(iter(start.values()))
        num_pi = p.num_pi_trajs if fns.policy is not None else 0
        actions = ref.new_empty(horizon, batch, p.num_samples, adim)
        if num_pi > 0:
            assert fns.policy is not None
            state = _repeat(start, num_pi)
            for t in range(horizon):
                act = fns.policy(state["latent"])
                actions[t, :, :num_pi] = act.view(batch, num_pi, adim)
                if t < horizon - 1:
                    state, _ = fns.step(state, act)
        samples = _repeat(start, p.num_samples)
        mean = ref.new_zeros(horizon, batch, adim)
        std = ref.new_full((horizon, batch, adim), p.max_std)
        prev = self._prev_mean
        if not t0 and prev is not None and prev.shape == mean.shape:
            prev = prev.to(mean)
            mean[:-1] = prev[1:]
        elite_actions, weights = actions[:, :, : p.num_elites], ref.new_empty(0)
        for _ in range(self.iterations):
            noise = torch.randn(horizon, batch, p.num_samples - num_pi, adim, device=ref.device)
            sampled = mean.unsqueeze(2) + std.unsqueeze(2) * noise.to(ref.dtype)
            actions[:, :, num_pi:] = sampled.clamp(p.action_low, p.action_high)
            flat = actions.view(horizon, batch * p.num_samples, adim)
            value = self._value(fns, samples, flat, gamma).nan_to_num(0).view(batch, -1)
            elite_value, elite_idx = torch.topk(value, p.num_elites, dim=1)
            gather = elite_idx.view(1, batch, p.num_elites, 1).expand(horizon, -1, -1, adim)
            elite_actions = torch.gather(actions, 2, gather)  # [H, B, E, A]
            weights = self.elite_weights(elite_value)  # [B, E]
            w = weights.view(1, batch, p.num_elites, 1)
            norm = weights.sum(1).view(1, batch, 1) + 1e-9
            mean = (w * elite_actions).sum(2) / norm
            var = (w * (elite_actions - mean.unsqueeze(2)) ** 2).sum(2) / norm
            std = var.sqrt().clamp(p.min_std, p.max_std)
        self._prev_mean = mean.clone()
        action = self.select(elite_actions, weights, mean, std, eval_mode)
        return self.env_action(action.clamp(p.action_low, p.action_high))
