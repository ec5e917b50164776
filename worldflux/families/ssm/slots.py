"""A selective state-space dynamics (Mamba's S6 layer, small and on CPU).

State ``{"latent": y [B, D], "h": h [B, D, N]}`` (``D = state_dim`` channels, ``N = ssm_state``
states per channel). One step from input ``u [B, D]``:

* selectivity (what makes it Mamba, not S4): the step ``dt = softplus(W_dt u + b_dt) [B, D]``, the
  input matrix ``B = W_B u [B, N]`` and the readout ``C = W_C u [B, N]`` depend on the input;
* zero-order-hold discretisation of ``A = -exp(A_log) [D, N]`` (S4D-real init ``A = -(1..N)``,
  so ``exp(dt A)`` lies in (0, 1): stable): ``h' = exp(dt A) * h + dt * B * u``;
* readout with skip, normalised: ``y = LN(sum_n C_n h'_n + D_skip * u)``; the decoder reads
  ``y``.

Inputs: a posterior step (``observe``) gets ``u = W_x x + B_a a`` (the encoded observation and
the previous action), a prior step (``forward``, imagination) ``u = W_y y + B_a a``: the model's
own readout stands in for the observation it does not have. For training,
:meth:`SelectiveSSM.observe_sequence` computes every posterior of a ``[B, T]`` batch with the
parallel scan of :mod:`.scan` (the generic objective uses it when present); a rollout steps the
same recurrence one ``transition`` at a time; both agree to float rounding.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.components.conditioners import action_features
from worldflux.core.components import ActionConditioner, BuildContext, DynamicsModel
from worldflux.core.registry import register_component
from worldflux.core.types import State
from worldflux.families.shared.hparams import family_hparam, require_dims
from worldflux.families.ssm.scan import parallel_scan

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["SSMActionInput", "SelectiveSSM", "hp"]


def hp(ctx: BuildContext, name: str) -> Any:
    """The config value ``name``, else its default in the ssm spec."""
    return family_hparam(ctx, "ssm", name)


@register_component("action_conditioner", "ssm.action")
class SSMActionInput(ActionConditioner):
    """action ``[B, A]`` (or ``[B]`` int64) -> SSM input part ``B_a a`` ``[B, state_dim]`` (no
    bias: a zero action adds nothing, as at an episode start)."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        self.action_dim, self.action_type = ctx.action_dim, ctx.action_type
        self.proj = nn.Linear(self.action_dim, int(hp(ctx, "state_dim")), bias=False)
        ctx.dims["ssm.action"] = int(hp(ctx, "state_dim"))

    def forward(self, state: State, action: Tensor) -> Tensor:
        embedded: Tensor = self.proj(action_features(action, self.action_dim, self.action_type))
        return embedded


@register_component("dynamics_model", "ssm.selective")
class SelectiveSSM(DynamicsModel):
    """The selective scan step (see the module docstring). Reads ``ctx.dims["latent_dim"]`` (the
    encoder's output size) and then sets it to ``state_dim`` for the decoder, which reads ``y``."""

    def __init__(self, ctx: BuildContext, params: object) -> None:
        super().__init__()
        require_dims(ctx, "ssm.selective", "latent_dim", built_by="the observation encoder")
        require_dims(ctx, "ssm.selective", "ssm.action", built_by="ssm.action")
        d, n = int(hp(ctx, "state_dim")), int(hp(ctx, "ssm_state"))
        self.channels, self.states = d, n
        self.obs_in = nn.Linear(int(ctx.dims["latent_dim"]), d)
        self.readout_in = nn.Linear(d, d)
        self.dt_proj = nn.Linear(d, d)
        self.b_proj = nn.Linear(d, n, bias=False)
        self.c_proj = nn.Linear(d, n, bias=False)
        self.a_log = nn.Parameter(torch.log(torch.arange(1, n + 1).float()).repeat(d, 1))
        self.skip = nn.Parameter(torch.ones(d))
        # Mamba's dt init: softplus(bias) log-uniform in [dt_min, dt_max]
        lo, hi = math.log(float(hp(ctx, "dt_min"))), math.log(float(hp(ctx, "dt_max")))
        dt = torch.exp(lo + torch.rand(d) * (hi - lo))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            self.dt_proj.weight.mul_(0.1)
        ctx.dims["latent_dim"] = d

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        d, n = self.channels, self.states
        return State(
            latent=torch.zeros(batch_size, d, device=device, dtype=dtype),
            h=torch.zeros(batch_size, d, n, device=device, dtype=dtype),
        )

    def coefficients(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For inputs ``u [..., D]``: decay ``exp(dt A) [..., D, N]``, drive ``dt B u [..., D,
        N]`` and readout ``C [..., N]``."""
        dt = F.softplus(self.dt_proj(u))
        a = -torch.exp(self.a_log)
        decay = torch.exp(dt.unsqueeze(-1) * a)
        drive = dt.unsqueeze(-1) * self.b_proj(u).unsqueeze(-2) * u.unsqueeze(-1)
        return decay, drive, self.c_proj(u)

    def readout(self, h: Tensor, c: Tensor, u: Tensor) -> Tensor:
        """``y = LN(sum_n C_n h_n + D_skip * u)`` ``[..., D]`` (normalised, as the norm after a
        Mamba block: the decoder, the latent-dynamics target and the imagination read it)."""
        return F.layer_norm((h * c.unsqueeze(-2)).sum(-1) + self.skip * u, (self.channels,))

    def _step(self, state: State, u: Tensor) -> State:
        decay, drive, c = self.coefficients(u)
        h = decay * state["h"] + drive
        return State(latent=self.readout(h, c, u), h=h)

    def forward(self, state: State, action_input: Tensor) -> State:
        return self._step(state, self.readout_in(state["latent"]) + action_input)

    def observe(self, state: State, action_input: Tensor | None, obs_state: State) -> State:
        u = self.obs_in(obs_state["latent"])
        if action_input is not None:
            u = u + action_input
        return self._step(state, u)

    def observe_sequence(
        self, model: WorldModel, obs: Tensor, prev_actions: Tensor, keep: Tensor
    ) -> list[State]:
        """Every posterior of a sequence with the parallel scan.

        Args:
            obs: observations ``[B, T, *obs_shape]``.
            prev_actions: the action before each step ``[B, T, A]`` (or ``[B, T]`` indices),
                zeroed at resets like the step-by-step filter does (row 0 is ignored).
            keep: ``[B, T]`` float, 0 where the state resets (an episode starts), else 1.

        Returns:
            T states ``[B, ...]``, as ``encode`` step by step would give them.
        """
        b, t = keep.shape
        encoded = model.observation_encoder(obs.flatten(0, 1))["latent"]  # type: ignore[misc]
        acted = model.action_conditioner(State(), prev_actions.flatten(0, 1))  # type: ignore[misc]
        acted = acted.unflatten(0, (b, t))
        acted = torch.cat([torch.zeros_like(acted[:, :1]), acted[:, 1:]], 1)  # no action at t = 0
        u = self.obs_in(encoded).unflatten(0, (b, t)) + acted
        decay, drive, c = self.coefficients(u)
        decay = decay * keep.to(decay.dtype)[..., None, None]
        h0 = torch.zeros_like(drive[:, 0])
        h = parallel_scan(decay, drive, h0)
        y = self.readout(h, c, u)
        return [State(latent=y[:, i], h=h[:, i]) for i in range(t)]
