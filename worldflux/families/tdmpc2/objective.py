"""``tdmpc2.objective``: the official TD-MPC2 update (``TDMPC2._update`` / ``update_pi``).

Batch convention (docs/slot-interfaces.md): ``obs [B, T, obs_dim]`` with ``T = H + 1``,
``actions [B, T, A]``, ``rewards [B, T]``, ``terminated [B, T]`` and ``truncated [B, T]``;
``actions[:, t]`` leads from ``obs[:, t]`` to ``obs[:, t+1]`` and ``rewards[:, t]`` /
``terminated[:, t]`` result from it, so the last step's action, reward and flags are unused.
Truncation is *not* termination: only ``terminated`` cuts the bootstrap. As in the official
replay buffer, each row must be ``T`` consecutive steps of one episode (``is_first`` is not
used). Internally the update runs time-major ``[H, B, ...]`` as the official code does.

Terms (ρ = 0.5, H = T − 1):
  * consistency = (1/H)·Σ_t ρ^t·MSE(z_{t+1}, sg(enc(o_{t+1}))), with z_0 = enc(o_0) and
    z_{t+1} = d(z_t, a_t);
  * reward = (1/H)·Σ_t ρ^t·CE(R(z_t, a_t), r_t) (two-hot, symlog bins);
  * value = (1/(H·NQ))·Σ_t Σ_q ρ^t·CE(Q_q(z_t, a_t), y_t), with the TD target
    y_t = r_t + γ·(1 − term_t)·min(Q̄_i, Q̄_j)(z'_{t}, π(z'_{t})), z' = enc(o_{t+1}) and two random
    *target* heads i, j;
  * policy = mean_t ρ^t·mean_B −(1e-4·scaled_entropy + Q_avg(z_t, π(z_t)) / S) on the detached
    rollout latents (t = 0..H), S a running 5th–95th percentile range (EMA τ, floor 1).

Training API (what a trainer uses):
  * ``objective.make_optimizers(model)`` -> ``{"model": Adam, "policy": Adam}`` (official: lr 3e-4,
    encoder lr × 0.3, policy Adam eps 1e-5);
  * ``objective.update(model, batch, optimizers)`` runs one full official update (world-model step,
    then the policy step with the post-step Q weights, then the Polyak update) and returns floats;
  * or, with a generic loop: ``out = model.loss(batch)`` (world-model total + policy loss: their
    gradients reach disjoint parameters), ``out.loss.backward()``, clip (the official norm is
    ``params.grad_clip_norm`` = 20 per optimiser), step every optimiser, then
    ``objective.after_step(model)`` (Polyak τ = 0.01 on the target Qs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.components import (
    ActionConditioner,
    BuildContext,
    DynamicsModel,
    Objective,
    ObservationEncoder,
)
from worldflux.core.exceptions import ConfigurationError, ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.tdmpc2.draws import Draws, TorchDraws
from worldflux.families.tdmpc2.math import RunningScale
from worldflux.families.tdmpc2.slots import TRANSITION_INPUT, TDMPC2Heads, concat_modalities

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["RunningScale", "TDMPC2Objective", "TDMPC2ObjectiveParams", "WorldModelTerms"]


class TDMPC2ObjectiveParams(BaseModel):
    """Loss coefficients and optimiser settings (official config.yaml defaults)."""

    model_config = ConfigDict(extra="forbid")

    consistency_coef: float = Field(20.0, ge=0.0)
    reward_coef: float = Field(0.1, ge=0.0)
    value_coef: float = Field(0.1, ge=0.0)
    rho: float = Field(0.5, gt=0.0, le=1.0)
    entropy_coef: float = Field(1e-4, ge=0.0)
    lr: float = Field(3e-4, gt=0.0)
    enc_lr_scale: float = Field(0.3, gt=0.0)
    grad_clip_norm: float = Field(20.0, gt=0.0)
    tau: float = Field(0.01, gt=0.0, le=1.0)
    pi_adam_eps: float = Field(1e-5, gt=0.0)
    discount: float | None = Field(
        None, gt=0.0, le=1.0, description="override; default: from the config's episode_length"
    )


@dataclass
class WorldModelTerms:
    """The world-model part of one update. Scalars unless stated; time-major tensors."""

    consistency: Tensor
    reward: Tensor
    value: Tensor
    total: Tensor
    zs: Tensor  #: [H+1, B, L] rollout latents (z_0 = encoding)
    td_targets: Tensor  #: [H, B, 1]


def _heads_of(model: WorldModel) -> TDMPC2Heads:
    heads = model.decoder_module
    if not isinstance(heads, TDMPC2Heads):
        raise ConfigurationError(
            "tdmpc2.objective needs the tdmpc2.heads decoder (reward, Q ensemble, policy), found "
            f"{type(heads).__name__}"
        )
    return heads


def _float(t: Tensor) -> float:
    return float(t.detach())


@register_component("objective", "tdmpc2.objective", params_model=TDMPC2ObjectiveParams)
class TDMPC2Objective(Objective):
    """The TD-MPC2 objective (see the module docstring for the terms and the training API)."""

    def __init__(self, ctx: BuildContext, params: TDMPC2ObjectiveParams) -> None:
        super().__init__()
        self.params = params
        self.scale = RunningScale(params.tau)
        self._discount_override = params.discount

    # -- pieces ----------------------------------------------------------------------------
    def discount(self, model: WorldModel) -> float:
        """γ: the override, or the official heuristic from the config's episode length."""
        if self._discount_override is not None:
            return float(self._discount_override)
        return float(_heads_of(model).discount)

    @staticmethod
    def _encode(model: WorldModel, obs: Tensor) -> Tensor:
        """``obs [..., obs_dim] -> z [..., L]`` through the observation-encoder slot."""
        encoder = slot_as(model, "observation_encoder", ObservationEncoder)
        lead = obs.shape[:-1]
        z: Tensor = encoder(obs.reshape(-1, obs.shape[-1]))["latent"]
        return z.reshape(*lead, z.shape[-1])

    @staticmethod
    def _za(model: WorldModel, z: Tensor, a: Tensor) -> Tensor:
        """``[z, a]`` features through the action-conditioner slot (any leading dims)."""
        conditioner = slot_as(model, "action_conditioner", ActionConditioner)
        lead = z.shape[:-1]
        za: Tensor = conditioner(
            State(latent=z.reshape(-1, z.shape[-1])), a.reshape(-1, a.shape[-1])
        )
        return za.reshape(*lead, za.shape[-1])

    @staticmethod
    def _time_major(batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """obs ``[T, B, D]``, actions ``[H, B, A]``, rewards and terminated ``[H, B, 1]``."""
        obs = batch["obs"]
        if isinstance(obs, dict):  # dict observations (config obs_keys): the encoder's input
            obs = concat_modalities(obs, lead=2)
        if obs.dim() != 3 or obs.shape[1] < 2:
            raise ContractViolation(
                f"batch['obs']: expected [B, T, obs_dim] with T >= 2, found {list(obs.shape)}"
            )
        steps = obs.shape[1] - 1
        actions = batch["actions"]
        if actions.dim() != 3 or actions.shape[1] < steps:
            raise ContractViolation(
                f"batch['actions']: expected [B, T>={steps}, A], found {list(actions.shape)}"
            )
        rewards = batch["rewards"][:, :steps].to(obs.dtype)
        if "terminated" in batch:
            terminated = batch["terminated"][:, :steps].to(obs.dtype)
        else:
            terminated = torch.zeros_like(rewards)
        return (
            obs.transpose(0, 1),
            actions[:, :steps].to(obs.dtype).transpose(0, 1),
            rewards.transpose(0, 1).unsqueeze(-1),
            terminated.transpose(0, 1).unsqueeze(-1),
        )

    def world_model_terms(
        self,
        model: WorldModel,
        obs: Tensor,
        actions: Tensor,
        rewards: Tensor,
        terminated: Tensor,
        draws: Draws,
    ) -> WorldModelTerms:
        """Consistency, reward and value losses (official ``_update`` up to ``backward``).

        Args:
            obs: ``[H+1, B, obs_dim]``; actions ``[H, B, A]``; rewards, terminated ``[H, B, 1]``.
            draws: the source of the TD-target ε and head indices.
        """
        heads = _heads_of(model)
        dynamics = slot_as(model, "dynamics_model", DynamicsModel)
        conditioner = slot_as(model, "action_conditioner", ActionConditioner)
        p = self.params
        horizon = actions.shape[0]
        gamma = self.discount(model)
        with torch.no_grad():
            next_z = self._encode(model, obs[1:])
            eps = draws.normal((*next_z.shape[:-1], heads.action_dim), next_z)
            sample = heads.policy(next_z, eps)
            idx = draws.heads(heads.hp.num_q, next_z.device)
            q_next = heads.q_value(self._za(model, next_z, sample.action), idx, "min", target=True)
            td_targets = rewards + gamma * (1 - terminated) * q_next
        z = self._encode(model, obs[0])
        zs = [z]
        inputs = []
        consistency = obs.new_zeros(())
        for t in range(horizon):
            state = State(latent=z)
            nxt = dynamics(state, conditioner(state, actions[t]))
            z = nxt["latent"]
            consistency = consistency + F.mse_loss(z, next_z[t]) * p.rho**t
            zs.append(z)
            inputs.append(nxt[TRANSITION_INPUT])
        za = torch.stack(inputs)  # [H, B, L+A]
        q_logits = heads.q_logits(za)  # [NQ, H, B, NB]
        reward_logits = heads.reward_logits(za)  # [H, B, NB]
        weights = p.rho ** torch.arange(horizon, dtype=obs.dtype, device=obs.device)
        reward_ce = heads.two_hot.soft_ce(reward_logits, rewards.squeeze(-1)).mean(-1)  # [H]
        value_ce = heads.two_hot.soft_ce(q_logits, td_targets.squeeze(-1)).mean(-1)  # [NQ, H]
        consistency = consistency / horizon
        reward_loss = (reward_ce * weights).sum() / horizon
        value_loss = (value_ce * weights).sum() / (horizon * q_logits.shape[0])
        total = (
            p.consistency_coef * consistency
            + p.reward_coef * reward_loss
            + p.value_coef * value_loss
        )
        return WorldModelTerms(
            consistency, reward_loss, value_loss, total, torch.stack(zs), td_targets
        )

    def policy_terms(
        self, model: WorldModel, zs: Tensor, draws: Draws
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The policy loss on detached latents ``zs [H+1, B, L]`` (updates the running scale).

        Gradients reach only the policy: the Q heads are evaluated with detached weights.
        Returns the loss and ``entropy``, ``scaled_entropy`` ``[H+1, B, 1]`` and ``scale``.
        """
        heads = _heads_of(model)
        zs = zs.detach()
        eps = draws.normal((*zs.shape[:-1], heads.action_dim), zs)
        sample = heads.policy(zs, eps)
        idx = draws.heads(heads.hp.num_q, zs.device)
        qs = heads.q_value(self._za(model, zs, sample.action), idx, "avg", detach=True)
        self.scale.update(qs[0])
        qs = qs / self.scale.value
        weights = self.params.rho ** torch.arange(len(qs), dtype=zs.dtype, device=zs.device)
        per_step = (-(self.params.entropy_coef * sample.scaled_entropy + qs)).mean(dim=(1, 2))
        loss = (per_step * weights).mean()
        info = {
            "entropy": sample.entropy,
            "scaled_entropy": sample.scaled_entropy,
            "scale": self.scale.value.clone(),
        }
        return loss, info

    # -- Objective interface -----------------------------------------------------------------
    def forward(self, model: WorldModel, batch: Batch, draws: Draws | None = None) -> LossOutput:
        """World-model total + policy loss on a ``[B, T, ...]`` batch.

        The policy loss uses the *pre-step* Q weights here (one backward for both); use
        :meth:`update` for the exact official ordering. Components: consistency, reward, value,
        policy (unweighted terms); ``loss`` = 20·consistency + 0.1·reward + 0.1·value + policy.
        """
        draws = draws if draws is not None else TorchDraws()
        obs, actions, rewards, terminated = self._time_major(batch)
        terms = self.world_model_terms(model, obs, actions, rewards, terminated, draws)
        pi_loss, info = self.policy_terms(model, terms.zs, draws)
        return LossOutput(
            loss=terms.total + pi_loss,
            components={
                "consistency": terms.consistency,
                "reward": terms.reward,
                "value": terms.value,
                "policy": pi_loss,
            },
            metrics={
                "world_model_loss": _float(terms.total),
                "pi_scale": _float(info["scale"][0]),
                "pi_entropy": _float(info["entropy"].mean()),
            },
        )

    def _policy_parameters(self, model: WorldModel) -> list[nn.Parameter]:
        return [p for p in _heads_of(model).pi.parameters() if p.requires_grad]

    def _split_parameters(self, model: WorldModel) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(world-model parameters, policy parameters), both trainable only."""
        policy = self._policy_parameters(model)
        skip = {id(p) for p in policy}
        world = [p for p in model.parameters() if p.requires_grad and id(p) not in skip]
        return world, policy

    def param_groups(self, model: WorldModel) -> list[dict[str, Any]]:
        """World-model groups: the encoder (lr × ``enc_lr_scale``) and every other trainable
        parameter except the policy (which has its own optimiser, see :meth:`make_optimizers`)."""
        encoder = slot_as(model, "observation_encoder", ObservationEncoder)
        enc = [p for p in encoder.parameters() if p.requires_grad]
        skip = {id(p) for p in enc} | {id(p) for p in self._policy_parameters(model)}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in skip]
        return [
            {"params": enc, "lr": self.params.lr * self.params.enc_lr_scale},
            {"params": rest, "lr": self.params.lr},
        ]

    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        """``{"model": Adam(param_groups), "policy": Adam(pi, eps=1e-5)}``, both lr 3e-4."""
        return {
            "model": torch.optim.Adam(self.param_groups(model), lr=self.params.lr),
            "policy": torch.optim.Adam(
                self._policy_parameters(model), lr=self.params.lr, eps=self.params.pi_adam_eps
            ),
        }

    def after_step(self, model: WorldModel) -> None:
        """Polyak update of the target Q heads (τ = 0.01)."""
        _heads_of(model).polyak_update(self.params.tau)

    def check_model(self, model: WorldModel) -> None:
        """Refuse a slot swap that leaves the model without the ``tdmpc2.heads`` decoder."""
        _heads_of(model)

    def update(
        self,
        model: WorldModel,
        batch: Batch | dict[str, Any],
        optimizers: dict[str, torch.optim.Optimizer],
        draws: Draws | None = None,
    ) -> dict[str, float]:
        """One official TD-MPC2 update (``TDMPC2._update``) on a ``[B, T, ...]`` batch.

        World-model backward, clip 20, ``optimizers["model"]`` step; then the policy loss with the
        post-step Q weights, clip 20, ``optimizers["policy"]`` step; then the Polyak update. The
        model runs in train mode (Q dropout active) and returns to its previous mode.

        Returns:
            floats: consistency_loss, reward_loss, value_loss, total_loss, grad_norm, pi_loss,
            pi_grad_norm, pi_entropy, pi_scaled_entropy, pi_scale.
        """
        return self.update_with_terms(model, batch, optimizers, draws)[0]

    def update_with_terms(
        self,
        model: WorldModel,
        batch: Batch | dict[str, Any],
        optimizers: dict[str, torch.optim.Optimizer],
        draws: Draws | None = None,
    ) -> tuple[dict[str, float], WorldModelTerms]:
        """:meth:`update`, also returning the world-model terms (TD targets, latents)."""
        draws = draws if draws is not None else TorchDraws()
        batch = batch if isinstance(batch, Batch) else Batch(batch)
        was_training = model.training
        obs, actions, rewards, terminated = self._time_major(batch)
        world, policy = self._split_parameters(model)
        try:
            # The official code computes the TD targets in eval mode and the rest in train mode;
            # only the Q dropout depends on the mode and the target heads never use it, so train
            # mode throughout is numerically the same.
            model.train()
            terms = self.world_model_terms(model, obs, actions, rewards, terminated, draws)
            opt, pi_opt = optimizers["model"], optimizers["policy"]
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(terms.total)
            grad_norm = torch.nn.utils.clip_grad_norm_(world, self.params.grad_clip_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            pi_loss, info = self.policy_terms(model, terms.zs, draws)
            pi_opt.zero_grad(set_to_none=True)
            torch.autograd.backward(pi_loss)
            pi_grad_norm = torch.nn.utils.clip_grad_norm_(policy, self.params.grad_clip_norm)
            pi_opt.step()
            pi_opt.zero_grad(set_to_none=True)
            self.after_step(model)
        finally:
            model.train(was_training)
        metrics = {
            "consistency_loss": _float(terms.consistency),
            "reward_loss": _float(terms.reward),
            "value_loss": _float(terms.value),
            "total_loss": _float(terms.total),
            "grad_norm": _float(grad_norm),
            "pi_loss": _float(pi_loss),
            "pi_grad_norm": _float(pi_grad_norm),
            "pi_entropy": _float(info["entropy"].mean()),
            "pi_scaled_entropy": _float(info["scaled_entropy"].mean()),
            "pi_scale": _float(info["scale"][0]),
        }
        return metrics, terms
