"""``dreamerv3.objective``: the official DreamerV3 loss (``agent.Agent.loss``, ``imag_loss``,
``repl_loss``) with the actor, the critic and its slow EMA copy, and the official optimiser.

Batch convention (docs/slot-interfaces.md): ``actions[:, t]`` is taken after ``obs[:, t]``;
``rewards[:, t]`` / ``terminated[:, t]`` result from it. The official code attaches the reward and
the terminal flag to the observation they arrive with, so position ``t`` is trained on
``rewards[:, t-1]`` / ``terminated[:, t-1]``; at ``is_first`` positions the official targets are
reward 0 and "not terminal", and position 0 of a chunk that does not start an episode has no
target (masked out). The previous action of position 0 is zero (the carry starts at zero).

Loss terms (each a mean over its entries, scaled by ``loss_scales`` and summed):
``dyn`` / ``rep`` (KL summed over the 32 latents, then clipped below at ``free_nats``), ``rec``
(per observation key), ``rew``, ``con``, ``policy`` (REINFORCE on normalised advantages with
entropy bonus), ``value`` (two-hot on lambda-returns + slow-critic regulariser) and ``repval``
(value on replay states, bootstrapped from the imagination returns).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from worldflux.behaviour.actor_critic import imagination_metrics, imagination_terms, slow_update
from worldflux.core.components import BuildContext, Objective
from worldflux.core.exceptions import ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.types import Batch, LossOutput, State
from worldflux.families.dreamerv3.decoder import DreamerDecoder, feat_of
from worldflux.families.dreamerv3.hparams import hp
from worldflux.families.dreamerv3.optim import DreamerOptimizer
from worldflux.families.dreamerv3.rssm import RSSM
from worldflux.nn.dists import UnimixCategorical, binary_loss, categorical_kl
from worldflux.nn.heads import PolicyHead, TwoHotHead
from worldflux.nn.returns import PercentileNorm, lambda_return

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["LOSS_TERMS", "DreamerObjective", "DreamerObjectiveParams", "observe_sequence"]

#: The loss components, in the order they are reported.
LOSS_TERMS = ("dyn", "rep", "rec", "rew", "con", "policy", "value", "repval")


class DreamerObjectiveParams(BaseModel):
    """Objective settings (official ``configs.yaml`` ``agent`` defaults)."""

    model_config = ConfigDict(extra="forbid")

    loss_scales: dict[str, float] = Field(
        default_factory=lambda: {
            "rec": 1.0,
            "rew": 1.0,
            "con": 1.0,
            "dyn": 1.0,
            "rep": 0.1,
            "policy": 1.0,
            "value": 1.0,
            "repval": 0.3,
        }
    )
    free_nats: float = 1.0
    imag_length: int = Field(15, ge=1)
    horizon: int = Field(333, ge=1)
    contdisc: bool = True
    lam: float = 0.95
    actent: float = 3e-4
    slowreg: float = 1.0
    slow_rate: float = 0.02
    slow_every: int = Field(1, ge=1)
    retnorm_rate: float = 0.01
    retnorm_limit: float = 1.0
    perclo: float = 5.0
    perchi: float = 95.0
    reward_grad: bool = True
    repval_loss: bool = True
    repval_grad: bool = True
    lr: float = 4e-5
    agc: float = 0.3
    eps: float = 1e-20
    beta1: float = 0.9
    beta2: float = 0.999
    warmup: int = Field(1000, ge=0)


def _slots(model: WorldModel) -> tuple[Any, Any, RSSM, DreamerDecoder]:
    dyn = model.dynamics_model
    dec = model.decoder_module
    if not isinstance(dyn, RSSM) or not isinstance(dec, DreamerDecoder):
        raise ContractViolation(
            "dreamerv3.objective needs the dreamerv3.rssm dynamics and dreamerv3.decoder slots, "
            f"found {type(dyn).__name__} and {type(dec).__name__}"
        )
    return model.observation_encoder, model.action_conditioner, dyn, dec


@register_component("objective", "dreamerv3.objective", params_model=DreamerObjectiveParams)
class DreamerObjective(Objective):
    """World-model + actor-critic loss. Owns ``pol`` (actor), ``val`` (critic), ``slowval`` (EMA
    copy of the critic, not trainable) and ``retnorm`` (return percentiles)."""

    slow_count: Tensor
    #: The loss resets the carry and masks targets at ``is_first``, so the training loop may
    #: sample replay windows across episode boundaries, as the official replay does. Windows
    #: confined to one episode would never contain an episode shorter than the window: the
    #: early failures a policy must learn to avoid would be invisible to the world model.
    crosses_episodes = True
    #: Observed steps before an open-loop evaluation (``worldflux eval``'s default --context): the
    #: RSSM filter starts from zeros and needs several observations to settle (the official
    #: report also observes a context before imagining). On Pendulum, context 1 vs 8 is the
    #: difference between 1.19 and 0.53 at horizon 1 (docs/evaluation.md).
    eval_context = 8
    #: One imagined step, the imagination and replay-value losses (docs/compile.md).
    compile_regions = ("_imagine_step", "_imag_terms", "_repl_loss")

    def __init__(self, ctx: BuildContext, params: DreamerObjectiveParams) -> None:
        super().__init__()
        self.p = params
        feat = int(ctx.dims.get("feat_dim", int(hp(ctx, "deter")) + 32 * int(hp(ctx, "classes"))))
        units = int(hp(ctx, "units"))
        self.discrete = ctx.action_type == "discrete"
        self.action_dim = ctx.action_dim
        self.pol = PolicyHead(
            feat,
            int(hp(ctx, "policy_layers")),
            units,
            ctx.action_dim,
            self.discrete,
            minstd=float(hp(ctx, "minstd")),
            maxstd=float(hp(ctx, "maxstd")),
            unimix=float(hp(ctx, "unimix")),
        )
        self.val = TwoHotHead(feat, int(hp(ctx, "value_layers")), units, int(hp(ctx, "bins")))
        self.slowval = copy.deepcopy(self.val)
        for param in self.slowval.parameters():
            param.requires_grad_(False)
        self.retnorm = PercentileNorm(
            params.retnorm_rate, params.retnorm_limit, params.perclo, params.perchi
        )
        self.register_buffer("slow_count", torch.zeros((), dtype=torch.int64))

    # -- optimiser hooks --------------------------------------------------------------------------
    def make_optimizers(self, model: WorldModel) -> dict[str, torch.optim.Optimizer]:
        """One official optimiser over every trainable parameter (world model, actor, critic)."""
        p = self.p
        opt = DreamerOptimizer(
            self.param_groups(model),
            lr=p.lr,
            agc=p.agc,
            eps=p.eps,
            beta1=p.beta1,
            beta2=p.beta2,
            warmup=p.warmup,
        )
        return {"model": opt}

    # -- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act(
        self,
        model: WorldModel,
        obs: Tensor | dict[str, Tensor],
        carry: tuple[State, Tensor] | None,
        *,
        is_first: bool,
        eval_mode: bool = False,
    ) -> tuple[Tensor, tuple[State, Tensor]]:
        """One environment step of the official ``Agent.policy``: a posterior step on ``obs``
        from the carry (reset to zeros, with a zero previous action, at ``is_first`` or without a
        carry), then an action from the actor on ``[deter, stoch]``.

        Args:
            obs: ``[B, *obs_shape]`` (validated against the model's contract).
            carry: ``(State [B, ...], previous action)`` from the last call, or None.
            is_first: the observation starts an episode.
            eval_mode: take the actor's mode (mean / most likely action) instead of a sample; the
                official agent samples in every mode.

        Returns:
            ``(action, carry)``: action ``[B, A]`` float clipped to the contract's bounds, or
            ``[B]`` int64 indices for discrete actions.
        """
        state, prev = (None, None) if carry is None or is_first else carry
        state = model.encode(obs, state, prev)
        dist = self.pol(feat_of(state))
        if isinstance(dist, UnimixCategorical):
            choice = dist.logprobs if eval_mode else dist.sample()
            action = choice.argmax(-1)
        else:
            bounds = model.bound_contract().action
            sample = dist.mean if eval_mode else dist.sample()
            action = sample.clamp(bounds.low, bounds.high)
        return action, (state, action)

    @torch.no_grad()
    def after_step(self, model: WorldModel) -> None:
        """Slow critic EMA: ``slow = rate * val + (1 - rate) * slow`` every ``slow_every`` steps."""
        if int(self.slow_count) % self.p.slow_every == 0:
            slow_update(self.val, self.slowval, self.p.slow_rate)
        self.slow_count += 1

    # -- the loss ---------------------------------------------------------------------------------
    def forward(self, model: WorldModel, batch: Batch) -> LossOutput:
        _, _, dyn, dec = _slots(model)
        p = self.p
        obs = batch["obs"]
        actions: Tensor = batch["actions"]
        is_first = batch["is_first"].bool()
        b, t = is_first.shape
        losses: dict[str, Tensor] = {}

        # -- world model: observe the sequence through the slots
        deter, stoch, post = observe_sequence(model, obs, actions, is_first)
        prior = dyn.prior_logits(deter)
        post_lp, prior_lp = dyn.logprobs(post), dyn.logprobs(prior)
        dyn_kl = categorical_kl(post_lp.detach(), prior_lp).sum(-1)
        rep_kl = categorical_kl(post_lp, prior_lp.detach()).sum(-1)
        losses["dyn"] = torch.clamp(dyn_kl, min=p.free_nats).mean()
        losses["rep"] = torch.clamp(rep_kl, min=p.free_nats).mean()

        recon = dec.reconstruct(deter.flatten(0, 1), stoch.flatten(0, 1))
        obs_dict = {k: v.flatten(0, 1) for k, v in dec.as_obs_dict(obs).items()}
        rec_terms = dec.rec_losses(recon, obs_dict)
        losses["rec"] = sum((v.mean() for v in rec_terms.values()), deter.new_zeros(()))

        # official-aligned targets: position t carries rewards/terminated of step t-1
        reward, term, last, valid = self._aligned_targets(batch, is_first)
        feat = torch.cat([deter, stoch.flatten(-2)], -1)  # [B, T, F]
        rew_feat = feat if p.reward_grad else feat.detach()
        rew_loss = dec.rew.dist(rew_feat).loss(reward)
        losses["rew"] = (rew_loss * valid).sum() / valid.sum().clamp(min=1.0)
        con_target = 1.0 - term.float()
        if p.contdisc:
            con_target = con_target * (1 - 1 / p.horizon)
        con_loss = binary_loss(dec.con(feat), con_target)
        losses["con"] = (con_loss * valid).sum() / valid.sum().clamp(min=1.0)

        # -- imagination from every posterior state
        start = State(deter=deter.detach().flatten(0, 1), stoch=stoch.detach().flatten(0, 1))
        imgfeat, imgact = self._imagine(model, start, p.imag_length)
        pol_loss, val_loss, ret0, metrics = self._imag_loss(dec, imgfeat, imgact)
        losses["policy"] = pol_loss
        losses["value"] = val_loss

        # -- replay value
        if p.repval_loss:
            rfeat = feat if p.repval_grad else feat.detach()
            losses["repval"] = self._repl_loss(rfeat, last, term, reward, ret0.reshape(b, t))
        else:
            losses["repval"] = torch.zeros((), device=feat.device)

        scales = p.loss_scales
        total = sum(
            (losses[k] * float(scales.get(k, 1.0)) for k in LOSS_TERMS), deter.new_zeros(())
        )
        metrics.update(
            {f"kl/{k}": float(v.detach().mean()) for k, v in (("dyn", dyn_kl), ("rep", rep_kl))}
        )
        return LossOutput(loss=total, components=losses, metrics=metrics)

    @staticmethod
    def _aligned_targets(batch: Batch, is_first: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """reward / terminal / last ``[B, T]`` in the official alignment plus the validity mask."""
        rewards = batch["rewards"].float()
        terminated = batch["terminated"].bool()
        truncated = batch["truncated"].bool()
        zero = torch.zeros_like(rewards[:, :1])
        reward = torch.cat([zero, rewards[:, :-1]], 1)
        term = torch.cat([zero.bool(), terminated[:, :-1]], 1)
        last = torch.cat([zero.bool(), (terminated | truncated)[:, :-1]], 1)
        reward = torch.where(is_first, 0.0, reward)
        term = term & ~is_first
        valid = torch.ones_like(rewards)
        valid[:, 0] = is_first[:, 0].float()
        return reward, term, last, valid

    def _imagine(self, model: WorldModel, start: State, horizon: int) -> tuple[Tensor, Tensor]:
        """Roll the policy ``horizon`` steps from ``start`` through the action-conditioner and
        dynamics slots. Returns features ``[N, H+1, F]`` and actions ``[N, H+1, A]`` (no grad)."""
        cond, dyn = model.action_conditioner, model.dynamics_model
        assert cond is not None and dyn is not None
        feats, acts = [], []
        state = start
        with torch.no_grad():
            for _ in range(horizon):
                f, action, state = self._imagine_step(cond, dyn, state)
                feats.append(f)
                acts.append(action)
            f = feat_of(state)
            feats.append(f)
            acts.append(self.pol(f).sample())
        return torch.stack(feats, 1), torch.stack(acts, 1)

    def _imagine_step(self, cond: Any, dyn: Any, state: State) -> tuple[Tensor, Tensor, State]:
        """One imagined step (a compile region): the features of ``state``, the actor's sampled
        action and the prior state it leads to."""
        f = feat_of(state)
        action = self.pol(f).sample()
        return f, action, dyn(state, cond(state, action))

    def _imag_loss(
        self, dec: DreamerDecoder, feat: Tensor, act: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        """Policy and value losses on an imagined trajectory ``feat [N, H+1, F]`` (the shared
        :func:`~worldflux.behaviour.actor_critic.imagination_losses`, on DreamerV3's reward and
        continue heads). Returns (policy loss, value loss, lambda-return at the start ``[N]``,
        metrics)."""
        pol_loss, val_loss, ret0, stats = self._imag_terms(dec, feat, act)
        return pol_loss, val_loss, ret0, imagination_metrics(stats)

    def _imag_terms(
        self, dec: DreamerDecoder, feat: Tensor, act: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`_imag_loss` with the metrics as a tensor ``[4]`` (a compile region)."""
        p = self.p
        with torch.no_grad():
            rew = dec.rew.dist(feat).pred()
            con = torch.sigmoid(dec.con(feat))
        return imagination_terms(
            self.pol,
            self.val,
            self.slowval,
            self.retnorm,
            feat,
            act,
            rew,
            con,
            disc=1.0 if p.contdisc else 1 - 1 / p.horizon,
            lam=p.lam,
            actent=p.actent,
            slowreg=p.slowreg,
            update_norm=self.training,
        )

    def _repl_loss(
        self, feat: Tensor, last: Tensor, term: Tensor, rew: Tensor, boot: Tensor
    ) -> Tensor:
        """Critic loss on replay features ``[B, T, F]``, bootstrapped from imagination returns."""
        p = self.p
        disc = 1 - 1 / p.horizon
        ret = lambda_return(last, term, rew, boot.detach(), disc, p.lam)
        val_dist = self.val.dist(feat)
        with torch.no_grad():
            slowpred = self.slowval.dist(feat).pred()
        tar = torch.cat([ret, torch.zeros_like(ret[:, -1:])], 1).detach()
        weight = (1.0 - last.float())[:, :-1]
        per = (val_dist.loss(tar) + p.slowreg * val_dist.loss(slowpred))[:, :-1]
        return (weight * per).mean()


def observe_sequence(
    model: WorldModel, obs: Tensor | dict[str, Tensor], actions: Tensor, is_first: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Posterior states of a ``[B, T]`` sequence through the encoder, conditioner and RSSM slots.

    The carry starts at zero; at ``is_first`` positions the carry and the previous action are
    reset to zero (official ``nn.mask``). The previous action of position 0 is zero.

    Returns:
        deter ``[B, T, D]``, stoch ``[B, T, S, K]`` (straight-through samples) and the raw
        posterior logits ``[B, T, S, K]``.
    """
    enc, cond, dyn, _ = _slots(model)
    embed = enc(obs)["embed"]  # [B, T, E]
    b, t = is_first.shape
    act_in = cond(State(), actions.flatten(0, 1)).reshape(b, t, -1)
    prev = torch.cat([torch.zeros_like(act_in[:, :1]), act_in[:, :-1]], 1)
    state = dyn.initial_state(b, embed.device, embed.dtype)
    deters, stochs, posts = [], [], []
    for i in range(t):
        keep = ~is_first[:, i, None]
        carry = State(
            deter=torch.where(keep, state["deter"], 0.0),
            stoch=torch.where(keep[..., None], state["stoch"], 0.0),
        )
        state, logit = dyn.obs_step(carry, torch.where(keep, prev[:, i], 0.0), embed[:, i])
        deters.append(state["deter"])
        stochs.append(state["stoch"])
        posts.append(logit)
    return torch.stack(deters, 1), torch.stack(stochs, 1), torch.stack(posts, 1)
