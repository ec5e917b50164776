"""``dreamerv3.rssm``: the block-GRU RSSM of the official ``rssm.RSSM``, and ``dreamerv3.action``.

State: ``deter [B, D]`` and ``stoch [B, S, K]`` (one-hot samples). Core step from
``(deter, stoch, action)``:

1. ``dynin0(deter)``, ``dynin1(stoch_flat)``, ``dynin2(action)``, each Dense/RMSNorm/SiLU to
   ``hidden``, concatenated to ``[B, 3H]``;
2. per block ``g`` the input ``[deter_g, that 3H vector]``; ``dynhid0`` (block-diagonal, out ``D``),
   RMSNorm over all ``D``, SiLU;
3. ``dyngru`` (block-diagonal, out ``3D``): per block reset / candidate / update gates;
   ``deter' = u * tanh(sigmoid(r) * c) + (1 - u) * deter`` with ``u = sigmoid(update - 1)``.

The whole core runs in a block-major ``[G, B, D/G]`` layout, so each block layer is one batched
matmul. The prior is 2 hidden layers on ``deter'``; the posterior 1 hidden layer on
``[deter', tokens]``. Distributions mix 1% uniform (``unimix``); samples are straight-through
one-hots.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.components import ActionConditioner, BuildContext, DynamicsModel
from worldflux.core.exceptions import ContractViolation
from worldflux.core.registry import register_component
from worldflux.core.types import State
from worldflux.families.dreamerv3.hparams import hp
from worldflux.nn.dists import onehot_from_probs, softmax, unimix_logprobs
from worldflux.nn.nets import BlockLinear, Dense, RMSNorm, tanh

__all__ = ["RSSM", "DreamerActionConditioner"]


@register_component("action_conditioner", "dreamerv3.action")
class DreamerActionConditioner(ActionConditioner):
    """Action -> RSSM action input ``[B, A]``.

    Continuous ``[B, A]``: ``a / stop_grad(max(1, |a|))``. Discrete: int64 ``[B]`` indices (or
    one-hot floats ``[B, A]``) -> one-hot ``[B, A]``. Sets ``ctx.dims["action_input_dim"]``.
    """

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.action_dim = ctx.action_dim
        self.discrete = ctx.action_type == "discrete"
        ctx.dims["action_input_dim"] = self.action_dim

    def forward(self, state: State, action: Tensor) -> Tensor:
        if self.discrete:
            if action.is_floating_point() and action.dim() >= 1:
                if action.shape[-1] != self.action_dim:
                    raise ContractViolation(
                        f"action: expected one-hot [..., {self.action_dim}], "
                        f"found {list(action.shape)}"
                    )
                return action
            return F.one_hot(action.long(), self.action_dim).float()
        if not action.is_floating_point():
            action = action.float()
        return action / torch.clamp(action.abs(), min=1.0).detach()


class NormDense(nn.Module):
    """Dense, RMSNorm, SiLU: ``[..., in] -> [..., out]`` (official ``X`` + ``Xnorm`` pair)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = Dense(in_dim, out_dim)
        self.norm = RMSNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(self.norm(self.linear(x)))


@register_component("dynamics_model", "dreamerv3.rssm")
class RSSM(DynamicsModel):
    """Recurrent state-space model with a block-diagonal GRU.

    ``forward(state, action_input)`` is one prior (imagination) step with a sampled stoch;
    ``observe(state, action_input, obs_state)`` one posterior step. ``initial_state`` is zeros.
    """

    #: One prior / posterior step each (``worldflux train --compile``, docs/compile.md).
    compile_regions = ("img_step", "obs_step")

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.deter = int(hp(ctx, "deter"))
        self.hidden = int(hp(ctx, "hidden"))
        self.stoch = int(hp(ctx, "stoch"))
        self.classes = int(hp(ctx, "classes"))
        self.blocks = int(hp(ctx, "blocks"))
        self.unimix = float(hp(ctx, "unimix"))
        if self.deter % self.blocks:
            raise ContractViolation(
                f"dreamerv3 config: deter {self.deter} must be divisible by blocks {self.blocks}"
            )
        act_dim = int(ctx.dims.get("action_input_dim", ctx.action_dim))
        embed = int(ctx.dims.get("embed_dim", hp(ctx, "units")))
        d, h, g, sk = self.deter, self.hidden, self.blocks, self.stoch * self.classes
        self.embed_dim = embed
        self.dynin0 = NormDense(d, h)
        self.dynin1 = NormDense(sk, h)
        self.dynin2 = NormDense(act_dim, h)
        hid_layers = int(hp(ctx, "dynlayers"))
        self.dynhid = nn.ModuleList()
        self.dynhidnorm = nn.ModuleList()
        for i in range(hid_layers):
            width = (d + g * 3 * h) if i == 0 else d
            self.dynhid.append(BlockLinear(width, d, g))
            self.dynhidnorm.append(RMSNorm(d))
        self.dyngru = BlockLinear(d, 3 * d, g)
        self.prior = nn.ModuleList(
            NormDense(d if i == 0 else h, h) for i in range(int(hp(ctx, "imglayers")))
        )
        self.priorlogit = Dense(h, sk)
        self.obs = nn.ModuleList(
            NormDense(d + embed if i == 0 else h, h) for i in range(int(hp(ctx, "obslayers")))
        )
        self.obslogit = Dense(h, sk)
        ctx.dims["deter"] = d
        ctx.dims["stoch_flat"] = sk
        ctx.dims["feat_dim"] = d + sk

    # -- state ------------------------------------------------------------------------------------
    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zero carry: ``deter [B, D]``, ``stoch [B, S, K]``."""
        dtype = dtype or torch.float32
        return State(
            deter=torch.zeros(batch_size, self.deter, device=device, dtype=dtype),
            stoch=torch.zeros(batch_size, self.stoch, self.classes, device=device, dtype=dtype),
        )

    # -- pieces -----------------------------------------------------------------------------------
    def _block_layer(self, x: Tensor, layer: int, shared: Tensor | None = None) -> Tensor:
        """Block-linear layer, RMSNorm over all D features and SiLU: ``[G, B, I] -> [G, B, D/G]``
        (block-major in and out).

        With ``shared [B, S]``, every block's input is ``[x_g, shared]`` (the official layout of
        the first layer): the shared rows of each block's kernel are applied to the broadcast
        ``shared`` instead of copying it into every block's input.
        """
        lin = cast(BlockLinear, self.dynhid[layer])
        norm = cast(RMSNorm, self.dynhidnorm[layer])
        g = self.blocks
        bias = lin.bias.view(g, 1, -1)
        if shared is None:
            x = torch.baddbmm(bias, x, lin.kernel)
        else:
            own = x.shape[-1]
            wide = shared.unsqueeze(0).expand(g, *shared.shape)
            partial = torch.baddbmm(bias, wide, lin.kernel[:, own:])
            x = torch.baddbmm(partial, x, lin.kernel[:, :own])
        x = F.rms_norm(x.transpose(0, 1), (g, x.shape[-1]), norm.scale.view(g, -1), norm.eps)
        return F.silu(x).transpose(0, 1)

    def core(self, deter: Tensor, stoch: Tensor, action: Tensor) -> Tensor:
        """One GRU step: ``deter [B, D]``, ``stoch [B, S, K]``, ``action [B, A]`` -> ``[B, D]``."""
        b, g = deter.shape[0], self.blocks
        dg = self.deter // g
        dtype = self.dyngru.kernel.dtype
        deter, stoch, action = deter.to(dtype), stoch.to(dtype), action.to(dtype)
        x0 = self.dynin0(deter)
        x1 = self.dynin1(stoch.reshape(b, -1))
        x2 = self.dynin2(action)
        shared = torch.cat([x0, x1, x2], -1)  # [B, 3H], the input every block also reads
        deter_g = deter.view(b, g, dg).transpose(0, 1)  # [G, B, D/G]
        x = self._block_layer(deter_g, 0, shared)
        for i in range(1, len(self.dynhid)):
            x = self._block_layer(x, i)  # [G, B, D/G]
        gates = torch.baddbmm(self.dyngru.bias.view(g, 1, 3 * dg), x, self.dyngru.kernel)
        # per block [reset | cand | update]; the sigmoids run on the two gate slices only
        reset = torch.sigmoid(gates[..., :dg])
        update = torch.sigmoid(gates[..., 2 * dg :] - 1.0)
        cand = tanh(reset * gates[..., dg : 2 * dg])
        new = torch.lerp(deter_g, cand, update)  # update * cand + (1 - update) * deter
        return new.transpose(0, 1).reshape(b, self.deter)

    def prior_logits(self, deter: Tensor) -> Tensor:
        """Raw prior logits ``[..., S, K]`` from ``deter [..., D]``."""
        x = deter
        for layer in self.prior:
            x = layer(x)
        return torch.unflatten(self.priorlogit(x), -1, (self.stoch, self.classes))

    def post_logits(self, deter: Tensor, embed: Tensor) -> Tensor:
        """Raw posterior logits ``[..., S, K]`` from ``[deter, embed]``."""
        x = torch.cat([deter, embed], -1)
        for layer in self.obs:
            x = layer(x)
        return torch.unflatten(self.obslogit(x), -1, (self.stoch, self.classes))

    def logprobs(self, logits: Tensor) -> Tensor:
        """Unimix-mixed log-probabilities ``[..., S, K]`` of raw logits."""
        return unimix_logprobs(logits, self.unimix)

    def sample(self, logits: Tensor) -> Tensor:
        """Straight-through one-hot sample ``[..., S, K]`` from raw logits (unimix-mixed)."""
        probs = softmax(logits)
        if self.unimix:
            probs = torch.add(probs * (1.0 - self.unimix), self.unimix / self.classes)
        return onehot_from_probs(probs)

    def img_step(self, state: State, action_input: Tensor) -> tuple[State, Tensor]:
        """Prior step: (new State, raw prior logits ``[B, S, K]``)."""
        deter = self.core(state["deter"], state["stoch"], action_input)
        logits = self.prior_logits(deter)
        return State(deter=deter, stoch=self.sample(logits)), logits

    def obs_step(
        self, state: State, action_input: Tensor | None, embed: Tensor
    ) -> tuple[State, Tensor]:
        """Posterior step: (new State, raw posterior logits ``[B, S, K]``)."""
        deter_prev = state["deter"]
        if action_input is None:
            action_input = deter_prev.new_zeros(deter_prev.shape[0], self.dynin2.linear.in_dim)
        deter = self.core(deter_prev, state["stoch"], action_input)
        logits = self.post_logits(deter, embed)
        return State(deter=deter, stoch=self.sample(logits)), logits

    # -- slot interface ---------------------------------------------------------------------------
    def forward(self, state: State, action_input: Tensor) -> State:
        """One imagination step: ``State [B, ...]``, ``action_input [B, A]`` -> ``State``."""
        return self.img_step(state, action_input)[0]

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        """One posterior step from the previous state, action and ``obs_state["embed"]``."""
        return self.obs_step(state, action_input, obs_state["embed"])[0]
