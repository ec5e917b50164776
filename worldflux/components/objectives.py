"""``generic``: a world-model objective through the slots (reconstruction + reward + continue +
latent dynamics), usable by any spec built from the generic components.

For a batch ``[B, T, ...]`` it filters observations through the model (``encode`` with the
previous state and action; the state is reset where ``is_first``), giving posterior states
``s_t`` (a dynamics model with ``observe_sequence(model, obs [B, T, ...], prev_actions, keep
[B, T])`` gives them all at once, e.g. the SSM's parallel scan); then, through the slots:

- ``reconstruction``: MSE of ``decode(s_t)["obs"]`` against ``obs[:, t]``;
- ``reward``: MSE of ``decode(transition(s_t, a_t))["reward"]`` against ``rewards[:, t]``;
- ``continue``: BCE of that prediction's ``continue`` against ``1 - terminated[:, t]``;
- ``dynamics``: MSE of ``transition(s_t, a_t)`` against the (stop-gradient) posterior ``s_{t+1}``;
  with ``rollout_steps`` K > 1 also of the open-loop ``transition^k(s_t, a_t..a_{t+k-1})``
  against ``s_{t+k}`` for k = 2..K, weighted ``rollout_discount ** (k - 1)`` (PlaNet's latent
  overshooting, TD-MPC2's multi-step consistency: a model trained on one step only is never
  shown its own open-loop errors). A target across an episode start (``is_first``) is skipped.

A component is produced when its coefficient is > 0 and the decoder predicts what it needs, so a
spec's ``loss_components`` lists exactly those names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.nn import functional as F

from worldflux.components._common import state_features
from worldflux.core.components import BuildContext, Objective
from worldflux.core.exceptions import ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.types import Batch, LossOutput, State

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["GenericObjective", "GenericObjectiveParams", "filtered_states"]


class GenericObjectiveParams(BaseModel):
    """Params of ``generic``: one coefficient per component (0 drops it) and the learning rate."""

    model_config = ConfigDict(extra="forbid")

    reconstruction_coef: float = Field(1.0, ge=0.0, description="weight of the reconstruction MSE")
    reward_coef: float = Field(1.0, ge=0.0, description="weight of the reward MSE")
    continue_coef: float = Field(1.0, ge=0.0, description="weight of the continue BCE")
    dynamics_coef: float = Field(1.0, ge=0.0, description="weight of the latent dynamics MSE")
    rollout_steps: int = Field(
        1,
        ge=1,
        description="open-loop steps K of the dynamics term (1: one step from each posterior; "
        "K > 1: also K-step rollouts, PlaNet's latent overshooting)",
    )
    rollout_discount: float = Field(
        1.0, gt=0.0, le=1.0, description="weight of the k-step term: rollout_discount ** (k - 1)"
    )
    lr: float = Field(3e-4, gt=0.0, description="Adam learning rate")


def _reset(state: State, keep: Tensor) -> State:
    """Zero every state tensor of the samples where ``keep`` (``[B]`` float) is 0."""
    return State(
        {k: v * keep.view(-1, *([1] * (v.dim() - 1))).to(v.dtype) for k, v in state.items()}
    )


def filtered_states(model: WorldModel, batch: Batch) -> list[State]:
    """The posterior state after each observation of a ``[B, T, ...]`` batch: ``encode`` with
    the previous state and action, the state reset where ``is_first`` (one scan instead when
    the dynamics model has ``observe_sequence``). Returns T states ``[B, ...]``."""
    obs, actions = batch["obs"], batch["actions"]
    is_first = batch.get("is_first")
    scan = getattr(model.dynamics_model, "observe_sequence", None)
    if callable(scan) and isinstance(obs, Tensor):  # the whole sequence at once (SSM scan)
        keep = torch.ones(actions.shape[:2], device=actions.device)
        if is_first is not None:
            keep = 1.0 - is_first.float()
        keep[:, 0] = 1.0
        shifted = torch.cat([actions[:, :1], actions[:, :-1]], 1)
        mask = keep.view(*keep.shape, *([1] * (shifted.dim() - 2))).to(shifted.dtype)
        posteriors: list[State] = scan(model, obs, shifted * mask, keep)
        return posteriors
    states: list[State] = []
    state: State | None = None
    for t in range(batch.seq_len):
        obs_t = {k: v[:, t] for k, v in obs.items()} if isinstance(obs, dict) else obs[:, t]
        action = None
        if state is not None:
            action = actions[:, t - 1]
            if is_first is not None and len(state):
                keep = 1.0 - is_first[:, t].float()
                state = _reset(state, keep)
                action = action * keep.view(-1, *([1] * (action.dim() - 1))).to(action.dtype)
        state = model.encode(obs_t, state, action, validate=False)
        states.append(state)
    return states


@register_component("objective", "generic", params_model=GenericObjectiveParams)
class GenericObjective(Objective):
    """Reconstruction + reward + continue + latent dynamics, computed through the model's slots."""

    def __init__(self, ctx: BuildContext, params: GenericObjectiveParams) -> None:
        super().__init__()
        self.params = params

    def _posteriors(self, model: WorldModel, batch: Batch) -> list[State]:
        return filtered_states(model, batch)

    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        p = self.params
        if batch.seq_len < 1:
            raise ContractViolation("batch: expected a sequence of at least 1 step, found 0")
        posteriors = self._posteriors(model, batch)
        terms: dict[str, list[Tensor]] = {}

        def add(name: str, value: Tensor) -> None:
            terms.setdefault(name, []).append(value)

        obs = batch["obs"]
        for t, state in enumerate(posteriors):
            decoded = model.decode(state).predictions
            if p.reconstruction_coef > 0 and "obs" in decoded and not isinstance(obs, dict):
                add("reconstruction", F.mse_loss(decoded["obs"], obs[:, t].float()))
            prior = model.transition(state, batch["actions"][:, t], validate=False)
            predicted = model.decode(prior).predictions
            if p.reward_coef > 0 and "reward" in predicted:
                add("reward", F.mse_loss(predicted["reward"], batch["rewards"][:, t].float()))
            if p.continue_coef > 0 and "continue" in predicted:
                target = 1.0 - batch["terminated"][:, t].float()
                prob = predicted["continue"].clamp(1e-6, 1.0 - 1e-6)
                add("continue", F.binary_cross_entropy(prob, target))
            if p.dynamics_coef > 0:
                for term in self._rollout_terms(model, batch, posteriors, t, prior):
                    add("dynamics", term)
        coefs = {
            "reconstruction": p.reconstruction_coef,
            "reward": p.reward_coef,
            "continue": p.continue_coef,
            "dynamics": p.dynamics_coef,
        }
        components = {name: torch.stack(values).mean() for name, values in terms.items()}
        if p.dynamics_coef > 0 and "dynamics" not in components:  # T == 1: nothing to predict
            components["dynamics"] = next(iter(components.values()), torch.zeros(())) * 0.0
        loss = sum((coefs[name] * value for name, value in components.items()), torch.zeros(()))
        metrics: dict[str, Any] = {f"loss/{k}": float(v.detach()) for k, v in components.items()}
        return LossOutput(loss=loss, components=components, metrics=metrics)

    def _rollout_terms(
        self, model: WorldModel, batch: Batch, posteriors: list[State], t: int, prior: State
    ) -> list[Tensor]:
        """The dynamics terms from posterior ``t``: the k-step open-loop state (``prior`` is
        k = 1) against the stop-gradient posterior ``t + k``, for k = 1..``rollout_steps``
        inside the sequence, each a masked mean over samples (0 across an episode start)
        weighted ``rollout_discount ** (k - 1)``."""
        p, terms = self.params, []
        is_first = batch.get("is_first")
        inside = torch.ones(batch["actions"].shape[0], device=batch["actions"].device)
        for k in range(1, min(p.rollout_steps, len(posteriors) - 1 - t) + 1):
            if k > 1:
                prior = model.transition(prior, batch["actions"][:, t + k - 1], validate=False)
            if is_first is not None:
                inside = inside * (1.0 - is_first[:, t + k].float())
            target = state_features(posteriors[t + k]).detach()
            per_sample = (state_features(prior) - target).pow(2).mean(-1)
            mean = (per_sample * inside).sum() / inside.sum().clamp_min(1.0)
            terms.append(p.rollout_discount ** (k - 1) * mean)
        return terms

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        """One Adam over every trainable parameter, at ``lr``."""
        return {"model": torch.optim.Adam(self.param_groups(model), lr=self.params.lr)}
