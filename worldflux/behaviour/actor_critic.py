"""``actor_critic``: a Dreamer-style actor-critic trained in the imagination of ANY world model.

One implementation serves every family: :func:`imagination_losses` is the DreamerV3 policy/value
loss (REINFORCE on lambda-returns normalised by their 5-95 percentile range, entropy bonus, a
two-hot critic regularised toward its slow EMA copy); ``dreamerv3.objective`` calls it for its own
actor, and :class:`ImaginationActorCritic` wraps it as a behaviour for models that expose only the
five-slot interface:

* features: the state's ``latent``, else every state tensor flattened and concatenated in key
  order (``components._common.state_features``; ``feat [N, F]``, F from the declared contract);
* imagination: from up to ``starts`` filtered replay states (``encode`` along each window with
  the previous state and action, as the behaviour sees states when it acts), ``imag_length``
  steps of ``model.transition(state, actor(feat))``; rewards and continues from
  ``model.decode(state).predictions`` (``continue`` defaults to 1 when the model has none);
* gradients: imagination runs under ``no_grad`` and the losses see only detached features, so
  the world model's parameters receive no gradient from the behaviour (conformance checks it).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldflux.behaviour.imagination_loss import (
    IMAGINATION_METRICS,
    critic_loss,
    imagination_losses,
    imagination_metrics,
    imagination_terms,
)
from worldflux.components._common import Size, resolve_size, state_features
from worldflux.components.objectives import filtered_states
from worldflux.core.components import Behaviour, BuildContext
from worldflux.core.composition import probe_observation
from worldflux.core.exceptions import CapabilityError
from worldflux.core.registry import register_component
from worldflux.core.types import Batch, LossOutput, State
from worldflux.nn.dists import BoundedNormal, UnimixCategorical
from worldflux.nn.heads import PolicyHead, TwoHotHead
from worldflux.nn.returns import PercentileNorm, lambda_return

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = [
    "IMAGINATION_METRICS",
    "ActorCriticParams",
    "ImaginationActorCritic",
    "imagination_losses",
    "imagination_metrics",
    "imagination_terms",
    "slow_update",
]


@contextmanager
def frozen(params: list[torch.nn.Parameter]) -> Iterator[None]:
    """Parameters that a graph built inside does not train (``requires_grad`` off, then back):
    gradients flow through their modules to the inputs, never into them."""
    flags = [p.requires_grad for p in params]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(params, flags, strict=True):
            param.requires_grad_(flag)


@torch.no_grad()
def slow_update(val: TwoHotHead, slowval: TwoHotHead, rate: float) -> None:
    """``slow = rate * val + (1 - rate) * slow`` (the slow critic's EMA)."""
    for src, dst in zip(val.parameters(), slowval.parameters(), strict=True):
        dst.mul_(1 - rate).add_(src, alpha=rate)


class ActorCriticParams(BaseModel):
    """Settings of the imagination actor-critic (DreamerV3's defaults where they exist)."""

    model_config = ConfigDict(extra="forbid")

    imag_length: int = Field(15, ge=1, description="imagined steps per start state")
    starts: int = Field(256, ge=1, description="most replay frames imagination starts from")
    horizon: float = Field(333.0, gt=1.0, description="discount = 1 - 1 / horizon")
    lam: float = Field(0.95, ge=0.0, le=1.0)
    actent: float = Field(3e-4, ge=0.0, description="entropy bonus")
    slowreg: float = Field(1.0, ge=0.0)
    slow_rate: float = Field(0.02, gt=0.0, le=1.0)
    retnorm_rate: float = Field(0.01, gt=0.0, le=1.0)
    retnorm_limit: float = Field(1.0, gt=0.0)
    layers: int = Field(2, ge=1)
    units: Size = Field(64, description="hidden width (an int or a config symbol)")
    bins: int = Field(255, ge=3)
    minstd: float = Field(0.1, gt=0.0)
    maxstd: float = Field(1.0, gt=0.0)
    unimix: float = Field(0.01, ge=0.0, lt=1.0)
    gradient: str = Field(
        "auto",
        pattern="^(auto|dynamics|reinforce)$",
        description="actor gradient: 'dynamics' backpropagates the lambda-returns through the "
        "frozen world model (Dreamer V1/V2 for continuous control), 'reinforce' is DreamerV3's "
        "score function; 'auto': dynamics for continuous actions, reinforce for discrete ones "
        "or where the model's rollout has no gradient path (e.g. sampled tokens)",
    )
    policy_scale: float = Field(1.0, ge=0.0)
    value_scale: float = Field(1.0, ge=0.0)


@register_component("behaviour", "actor_critic", params_model=ActorCriticParams)
class ImaginationActorCritic(Behaviour):
    """An actor ``pol`` and a two-hot critic ``val`` (with its slow copy ``slowval``) on the
    model's state features, trained on imagined rollouts (loss terms ``policy``, ``value``)."""

    learns = True
    loss_terms = ("policy", "value")
    #: State the loss updates in train mode (the return percentiles, as DreamerV3's loss does).
    loss_side_effects = ("retnorm.lo", "retnorm.hi")
    slow_count: Tensor

    def __init__(self, ctx: BuildContext, params: ActorCriticParams) -> None:
        super().__init__()
        self.p = params
        self.discrete = ctx.action_type == "discrete"
        self.action_dim = ctx.action_dim
        self.units = resolve_size(ctx, params.units, "actor_critic.units")
        self.feat_dim = 0
        self.pol: PolicyHead | None = None
        self.val: TwoHotHead | None = None
        self.slowval: TwoHotHead | None = None
        self.retnorm = PercentileNorm(params.retnorm_rate, params.retnorm_limit)

    def bind(self, model: WorldModel) -> None:
        """Build the heads for the model's feature size (from the declared state shapes)."""
        state = model.declared_contract().state
        parts = [state["latent"]] if "latent" in state else list(state.values())
        feat = sum(math.prod(int(d) for d in spec.shape) for spec in parts)
        self.feat_dim = feat
        p = self.p
        self.pol = PolicyHead(
            feat,
            p.layers,
            self.units,
            self.action_dim,
            self.discrete,
            minstd=p.minstd,
            maxstd=p.maxstd,
            unimix=p.unimix,
        )
        self.val = TwoHotHead(feat, p.layers, self.units, p.bins)
        self.slowval = copy.deepcopy(self.val)
        for param in self.slowval.parameters():
            param.requires_grad_(False)

    def _heads(self) -> tuple[PolicyHead, TwoHotHead, TwoHotHead]:
        if self.pol is None or self.val is None or self.slowval is None:
            raise CapabilityError("actor_critic: bind(model) was not called (no heads yet)")
        return self.pol, self.val, self.slowval

    def check_model(self, model: WorldModel) -> None:
        """The model predicts rewards (``decode(state).predictions['reward']``) and its state
        features still have the size the heads were built for."""
        contract = model.declared_contract()
        if "reward" not in contract.predictions:
            raise CapabilityError(
                f"actor_critic needs a reward prediction; {type(model).__name__} declares "
                f"predictions {sorted(contract.predictions)}"
            )
        with torch.no_grad(), torch.random.fork_rng():
            feat = state_features(model.encode(probe_observation(model))).float()
        if feat.shape[-1] != self.feat_dim:
            raise CapabilityError(
                f"actor_critic: state features have size {feat.shape[-1]}, the heads were built "
                f"for {self.feat_dim}"
            )

    # -- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
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
        """``encode(obs)`` (carrying the previous state and action for recurrent encoders),
        then the actor's sample (its mode in eval mode). Returns ``(action, (state, action))``."""
        pol, _, _ = self._heads()
        state, prev = (None, None) if carry is None or is_first else carry
        state = model.encode(obs, state, prev) if state is not None else model.encode(obs)
        dist = pol(state_features(state).to(_param_dtype(pol)))
        action = self._env_action(model, dist, eval_mode)
        return action, (state, action)

    def _env_action(
        self, model: WorldModel, dist: BoundedNormal | UnimixCategorical, eval_mode: bool
    ) -> Tensor:
        if isinstance(dist, UnimixCategorical):
            choice = dist.logprobs if eval_mode else dist.sample()
            return choice.argmax(-1)
        bounds = model.bound_contract().action
        sample = dist.mean if eval_mode else dist.sample()
        return sample.clamp(bounds.low, bounds.high)

    def after_step(self, model: WorldModel) -> None:
        """The slow critic follows the critic after every optimiser step."""
        _, val, slowval = self._heads()
        slow_update(val, slowval, self.p.slow_rate)

    # -- learning -------------------------------------------------------------------------------
    def loss(self, model: WorldModel, batch: Batch) -> LossOutput:
        """Policy and value losses on ``imag_length``-step rollouts from up to ``starts`` of the
        batch's filtered states (``encode`` along each ``[B, T]`` window with the previous state
        and action, as when acting; evenly spaced, so no random draw)."""
        pol, val, slowval = self._heads()
        p = self.p
        with torch.no_grad():
            start = _start_states(filtered_states(model, batch), p.starts)
        out = None
        if p.gradient == "dynamics" or (p.gradient == "auto" and not self.discrete):
            out = self._dynamics_loss(model, start)
        if out is None:  # REINFORCE (DreamerV3), or no gradient path through the rollout
            with torch.no_grad():
                feat, act, rew, con = self._imagine(model, pol, start)
            policy_loss, value_loss, _, metrics = imagination_losses(
                pol,
                val,
                slowval,
                self.retnorm,
                feat,
                act,
                rew,
                con,
                disc=1.0 - 1.0 / p.horizon,
                lam=p.lam,
                actent=p.actent,
                slowreg=p.slowreg,
                update_norm=self.training,
            )
        else:
            policy_loss, value_loss, metrics = out
        policy_loss = policy_loss * p.policy_scale
        value_loss = value_loss * p.value_scale
        return LossOutput(
            loss=policy_loss + value_loss,
            components={"policy": policy_loss, "value": value_loss},
            metrics=metrics,
        )

    def _dynamics_loss(
        self, model: WorldModel, start: State
    ) -> tuple[Tensor, Tensor, dict[str, float]] | None:
        """The actor maximises the normalised lambda-returns by backpropagating them through
        the world model's rollout and the critic, both frozen (no gradient reaches them); None
        when the returns do not depend on the actions differentiably."""
        pol, val, slowval = self._heads()
        p = self.p
        own = {id(param) for param in self.parameters()}
        world = [param for param in model.parameters() if id(param) not in own]
        with frozen([*world, *val.parameters()]), torch.enable_grad():
            feat, _, rew, con = self._imagine(model, pol, start, differentiable=True)
            value = val.dist(feat).pred()
            disc = 1.0 - 1.0 / p.horizon
            ret = lambda_return(torch.zeros_like(con), 1 - con, rew, value, disc, p.lam)
        if not ret.requires_grad:
            return None
        if self.training:
            self.retnorm.update(ret)
        _, scale = self.retnorm.stats()
        weight = (torch.cumprod(disc * con, 1) / disc).detach()[:, :-1]
        ent = pol(feat.detach()).entropy()[:, :-1]
        policy_loss = -(weight * (ret / scale + p.actent * ent)).mean()
        flat = feat.detach()
        with torch.no_grad():
            slowpred = slowval.dist(flat).pred()
        value_loss = critic_loss(val.dist(flat), slowpred, ret.detach(), weight, p.slowreg)
        metrics = {
            "imag/ret": float(ret.detach().mean()),
            "imag/entropy": float(ent.detach().mean()),
            "imag/retscale": float(scale),
        }
        return policy_loss, value_loss, metrics

    def _imagine(
        self, model: WorldModel, pol: PolicyHead, state: State, differentiable: bool = False
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(feat [N, H+1, F], act [N, H+1, A], rew [N, H+1], con [N, H+1])``; with
        ``differentiable`` the actions are reparameterised samples, clipped to the bounds, so the
        rollout is a function of the actor's parameters."""
        dtype = _param_dtype(pol)
        feats, acts, rews, cons = [], [], [], []
        for step in range(self.p.imag_length + 1):
            f = state_features(state).to(dtype)
            dist = pol(f)
            sample = dist.sample()
            feats.append(f)
            acts.append(sample)
            if step > 0:
                predictions = model.decode(state, validate=False).predictions
                rews.append(predictions["reward"].to(dtype))
                cont = predictions.get("continue")
                cons.append(torch.ones_like(rews[-1]) if cont is None else cont.to(dtype))
            else:
                rews.append(torch.zeros(f.shape[0], dtype=dtype, device=f.device))
                cons.append(torch.ones(f.shape[0], dtype=dtype, device=f.device))
            if step < self.p.imag_length:
                if self.discrete:
                    action = sample.argmax(-1)
                else:
                    action = sample.clamp(-1.0, 1.0) if differentiable else sample.detach()
                state = model.transition(state, action, validate=False)
        return (
            torch.stack(feats, 1),
            torch.stack(acts, 1),
            torch.stack(rews, 1),
            torch.stack(cons, 1),
        )


def _param_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _start_states(states: list[State], most: int) -> State:
    """Up to ``most`` evenly spaced states of the ``T`` filtered states ``[B, ...]`` as one
    ``[N, ...]`` State (no random draw)."""
    stacked = {key: torch.stack([s[key] for s in states], 1).flatten(0, 1) for key in states[0]}
    count = next(iter(stacked.values())).shape[0]
    if count <= most:
        return State(stacked)
    index = torch.linspace(0, count - 1, most).round().long()
    return State({key: value[index.to(value.device)] for key, value in stacked.items()})
