"""TD-MPC2 slot implementations: ``tdmpc2.encoder``, ``tdmpc2.dynamics`` and ``tdmpc2.heads``.

State layout: ``{"latent": z [B, latent_dim], "transition_input": [B, latent_dim + A]}``.
``latent`` is SimNorm'd; ``transition_input`` holds the ``[z_{t-1}, a_{t-1}]`` features of the
transition that produced the state, so that ``decode`` can predict that transition's reward
(TD-MPC2's reward is ``r(z_{t-1}, a_{t-1})``). A state that no transition produced (an encoded
observation without a previous state and action) holds zeros there: a real ``[z, a]`` never is all
zeros because SimNorm makes every group of ``z`` sum to 1, so its reward is reported as 0. The
action conditioner is the generic ``concat`` (``[z, a]``).

Dict observations (config ``obs_keys``, entries ``"name:dims"`` of vector keys such as
``["position:2", "velocity:"]``): the encoder's input is every key flattened and concatenated in
sorted key order (:func:`concat_modalities`), the one state encoder the official code applies to
its ``state`` modality; the contract then takes one observation tensor per key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from worldflux.core.components import BuildContext, Decoder, DynamicsModel, ObservationEncoder
from worldflux.core.exceptions import ConfigurationError, ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.spec import ModelIOContract, TensorSpec
from worldflux.core.types import ModelOutput, State
from worldflux.families.tdmpc2.hparams import TDMPC2HParams, hparams_from
from worldflux.families.tdmpc2.layers import QEnsemble, normed_mlp, q_ensemble_forward
from worldflux.families.tdmpc2.math import (
    PolicySample,
    TwoHot,
    fast_mish,
    scale_log_std,
    squashed_gaussian,
)

__all__ = [
    "TRANSITION_INPUT",
    "TDMPC2Dynamics",
    "TDMPC2Encoder",
    "TDMPC2Heads",
    "concat_modalities",
    "obs_layout",
]

#: State key of the ``[z_t, a_t]`` features a dynamics step consumed.
TRANSITION_INPUT = "transition_input"


def obs_layout(ctx: BuildContext) -> dict[str, tuple[int, ...]] | None:
    """The dict-observation layout of config ``obs_keys`` (key -> per-sample shape, sorted),
    or None for one observation tensor.

    Raises:
        ConfigurationError: an entry is not ``name:dims`` with at most one positive dim.
    """
    entries = ctx.hparam("obs_keys") or []
    layout: dict[str, tuple[int, ...]] = {}
    for entry in entries:
        name, sep, dims = str(entry).partition(":")
        try:
            shape = tuple(int(d) for d in dims.split("x")) if dims else ()
        except ValueError:
            shape = (-1,)
        if not sep or not name or len(shape) > 1 or any(d < 1 for d in shape) or name in layout:
            raise ConfigurationError(
                "tdmpc2 config obs_keys: expected unique vector entries 'name:dims' such as "
                f"'position:2' or 'velocity:', found {entry!r}"
            )
        layout[name] = shape
    return {k: layout[k] for k in sorted(layout)} if layout else None


def concat_modalities(obs: Mapping[str, Tensor], lead: int) -> Tensor:
    """Dict observations ``{key: [*lead_shape, *shape]}`` -> ``[*lead_shape, D]``: every key
    flattened, concatenated in sorted key order (``lead`` leading dims)."""
    parts = [obs[k].reshape(*obs[k].shape[:lead], -1) for k in sorted(obs)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def _obs_dim(ctx: BuildContext) -> int:
    layout = obs_layout(ctx)
    if layout is not None:
        return sum(math.prod(shape) for shape in layout.values())
    if len(ctx.obs_shape) != 1:
        raise ConfigurationError(
            f"tdmpc2.encoder: expected a vector observation shape (D,), found {ctx.obs_shape}"
        )
    return int(ctx.obs_shape[0])


@register_component("observation_encoder", "tdmpc2.encoder")
class TDMPC2Encoder(ObservationEncoder):
    """State encoder: obs ``[B, obs_dim]`` -> ``{"latent": z [B, latent_dim]}``.

    ``max(num_enc_layers − 1, 1)`` NormedLinear (Mish) layers of width ``enc_dim``, then a
    NormedLinear to ``latent_dim`` ending in SimNorm (softmax over groups of ``simnorm_dim``).
    With config ``obs_keys`` the input is a dict, its keys concatenated (module docstring).
    Sets ``ctx.dims["latent_dim"]``.
    """

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        hp = hparams_from(ctx.config)
        self.layout = obs_layout(ctx)
        hidden = [hp.enc_dim] * max(hp.num_enc_layers - 1, 1)
        self.net = normed_mlp(
            _obs_dim(ctx), hidden, hp.latent_dim, final_act="simnorm", simnorm_dim=hp.simnorm_dim
        )
        ctx.dims["latent_dim"] = hp.latent_dim

    def refine_contract(self, contract: ModelIOContract) -> ModelIOContract:
        """With ``obs_keys`` the one ``obs`` tensor becomes one ``[B, *shape]`` tensor per key,
        with the declared ``obs`` dtype."""
        if self.layout is None:
            return contract
        base = contract.observation.get("obs")
        dtype = base.dtype if base is not None else "float32"
        observation = {k: TensorSpec(shape=s, dtype=dtype) for k, s in self.layout.items()}
        return replace(contract, observation=observation)

    def forward(self, obs: Tensor | dict[str, Tensor]) -> State:
        if isinstance(obs, dict):
            if self.layout is not None:
                first = sorted(self.layout)[0]
                lead = obs[first].dim() - len(self.layout[first])
                return State(latent=self.net(concat_modalities(obs, lead)))
            if len(obs) != 1:
                raise ContractViolation(
                    f"obs: tdmpc2.encoder takes one vector modality, found keys {sorted(obs)}"
                )
            obs = next(iter(obs.values()))
        return State(latent=self.net(obs))

    def latent(self, obs: Tensor) -> Tensor:
        """``obs [..., obs_dim] -> z [..., latent_dim]`` (any leading dims)."""
        z: Tensor = self.net(obs)
        return z


@register_component("dynamics_model", "tdmpc2.dynamics")
class TDMPC2Dynamics(DynamicsModel):
    """Latent dynamics: ``[z, a] -> M -> M -> latent`` (Mish, Mish, LayerNorm + SimNorm).

    No residual and no recurrent carry: ``observe`` returns the encoded observation, with the
    ``[z, a]`` of the previous state and action as its ``transition_input`` (zeros without one).
    """

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        hp = hparams_from(ctx.config)
        in_dim = hp.latent_dim + ctx.action_dim
        self.net = normed_mlp(
            in_dim, [hp.mlp_dim] * 2, hp.latent_dim, final_act="simnorm", simnorm_dim=hp.simnorm_dim
        )
        self.input_dim = in_dim
        ctx.dims["dynamics_input_dim"] = in_dim

    def forward(self, state: State, action_input: Tensor) -> State:
        return State({"latent": self.net(action_input), TRANSITION_INPUT: action_input})

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        z = obs_state["latent"]
        if action_input is None:
            action_input = z.new_zeros(*z.shape[:-1], self.input_dim)
        return State({"latent": z, TRANSITION_INPUT: action_input})


@register_component("decoder", "tdmpc2.heads")
class TDMPC2Heads(Decoder):
    """Reward head, Q ensemble (+ target copy) and policy prior of TD-MPC2.

    * ``reward``: ``[z, a] -> M -> M -> num_bins`` logits (two-hot in symlog space), last layer
      zero-initialised.
    * ``q``: :class:`QEnsemble` of ``num_q`` heads (dropout on layer 0, zero last layer), one
      batched op; ``target_q`` is its Polyak copy, held as buffers (not trainable, saved).
    * ``pi``: ``z -> M -> M -> 2A``: pre-tanh mean and raw log-std of a squashed Gaussian.

    ``forward(state)`` predicts ``reward [B]`` (the reward of the transition that produced the
    state, from its ``transition_input``; 0 for a state that no transition produced) and
    ``continue [B]`` (1: the official model has no termination head when not episodic).
    """

    def __init__(self, ctx: BuildContext, params: Any) -> None:
        super().__init__()
        hp = hparams_from(ctx.config)
        self.hp: TDMPC2HParams = hp
        self.action_dim = ctx.action_dim
        self.latent_dim = hp.latent_dim
        za = hp.latent_dim + ctx.action_dim
        self.two_hot = TwoHot(hp.num_bins, hp.vmin, hp.vmax)
        self.discount = hp.discount
        self.reward = normed_mlp(za, [hp.mlp_dim] * 2, hp.num_bins, zero_last=True)
        self.pi = normed_mlp(hp.latent_dim, [hp.mlp_dim] * 2, 2 * ctx.action_dim)
        self.q = QEnsemble(hp.num_q, za, hp.mlp_dim, hp.num_bins, dropout=hp.dropout)
        self.target_q = QEnsemble(
            hp.num_q, za, hp.mlp_dim, hp.num_bins, dropout=0.0, trainable=False
        )
        self.sync_target()

    # -- decoder interface ------------------------------------------------------------------
    def forward(self, state: State) -> ModelOutput:
        z = state["latent"]
        if TRANSITION_INPUT in state:
            za = state[TRANSITION_INPUT]
            reward = self.two_hot.decode(self.reward(za)).squeeze(-1)
            reward = torch.where(za.abs().sum(-1) > 0, reward, torch.zeros_like(reward))
        else:
            reward = z.new_zeros(z.shape[:-1])
        return ModelOutput(
            predictions={"reward": reward, "continue": torch.ones_like(reward)}, state=state
        )

    # -- heads on raw tensors (any leading dims) --------------------------------------------
    def reward_logits(self, za: Tensor) -> Tensor:
        """``[z, a] [..., L+A] -> [..., num_bins]``."""
        logits: Tensor = self.reward(za)
        return logits

    def reward_value(self, za: Tensor) -> Tensor:
        """``[z, a] [..., L+A] -> reward [..., 1]`` (decoded two-hot)."""
        return self.two_hot.decode(self.reward(za))

    def q_logits(
        self, za: Tensor, heads: Tensor | None = None, *, target: bool = False, detach: bool = False
    ) -> Tensor:
        """Q logits ``[K, ..., num_bins]`` of all heads or of ``heads`` (int64 ``[K]``).

        ``target`` uses the Polyak copy (always without dropout); ``detach`` uses the online
        weights without gradient to them (the official ``_detach_Qs``).
        """
        if target:
            return q_ensemble_forward(self.target_q.tensors(), za, heads=heads)
        logits: Tensor = self.q(za, heads, detach=detach)
        return logits

    def q_value(
        self,
        za: Tensor,
        heads: Tensor,
        reduce: str = "avg",
        *,
        target: bool = False,
        detach: bool = False,
    ) -> Tensor:
        """Q ``[..., 1]`` of the two ``heads``: their mean (``"avg"``) or minimum (``"min"``)."""
        q = self.two_hot.decode(self.q_logits(za, heads, target=target, detach=detach))
        if reduce == "min":
            return q.min(0).values
        return q.sum(0) / q.shape[0]

    def random_heads(self, generator: torch.Generator | None = None) -> Tensor:
        """Two distinct random Q-head indices (int64 ``[2]``), as official ``randperm[:2]``."""
        return torch.randperm(self.hp.num_q, generator=generator)[:2]

    def policy_params(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``z [..., L]`` -> (pre-tanh mean, scaled log-std), each ``[..., A]``."""
        mean, raw = self.pi(z).chunk(2, dim=-1)
        return mean, scale_log_std(raw, self.hp.log_std_min, self.hp.log_std_max)

    def policy(self, z: Tensor, eps: Tensor | None = None) -> PolicySample:
        """Sample the policy prior at ``z [..., L]``; ``eps`` (``[..., A]``) defaults to N(0, 1)."""
        mean, log_std = self.policy_params(z)
        if eps is None:
            eps = torch.randn_like(mean)
        return squashed_gaussian(mean, log_std, eps)

    # -- planning hooks (worldflux.planning) -------------------------------------------------
    def planning_context(self) -> AbstractContextManager[None]:
        """Numerics planning may use: the fast Mish formula (see :func:`fast_mish`)."""
        return fast_mish()

    def planning_policy(self, latent: Tensor) -> Tensor:
        """A policy-prior action sample ``[N, A]`` at ``latent [N, L]``."""
        return self.policy(latent).action

    def planning_value(self, latent: Tensor, action: Tensor) -> Tensor:
        """Q ``[N]``: mean of two random online heads (only those two are evaluated), without
        dropout whatever the module mode (the official agent acts in eval mode)."""
        za = torch.cat([latent, action], dim=-1)
        logits = q_ensemble_forward(self.q.tensors(), za, heads=self.random_heads())
        return (self.two_hot.decode(logits).sum(0) / 2).squeeze(-1)

    # -- target network ---------------------------------------------------------------------
    @torch.no_grad()
    def sync_target(self) -> None:
        """Copy the online Q weights into the target copy."""
        for online, target in zip(self.q.tensors(), self.target_q.tensors(), strict=True):
            target.copy_(online)

    @torch.no_grad()
    def polyak_update(self, tau: float) -> None:
        """target ← target + tau·(online − target) (official ``lerp_``)."""
        for online, target in zip(self.q.tensors(), self.target_q.tensors(), strict=True):
            target.lerp_(online, tau)
