"""TD-MPC2 building blocks: NormedLinear MLPs and the stacked (batched) Q ensemble.

``NormedLinear`` = Linear -> (Dropout) -> LayerNorm -> activation (Mish, or SimNorm at the end of
the encoder and the dynamics). The Q ensemble stores every head's parameters stacked along a
leading axis of size ``num_q`` (head ``h`` at index ``h``), like the official vmapped TensorDict
ensemble, and evaluates all heads (or a chosen subset) with one GEMM per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.families.tdmpc2.math import mish, simnorm

__all__ = [
    "Q_PARAM_NAMES",
    "NormedLinear",
    "QEnsemble",
    "init_linear_",
    "normed_mlp",
    "q_ensemble_forward",
]

#: Names of the stacked Q-ensemble tensors, in the official state_dict order
#: (``_Qs.params.{0,1}.{weight,bias,ln.weight,ln.bias}``, ``_Qs.params.2.{weight,bias}``).
Q_PARAM_NAMES: tuple[str, ...] = (
    "l0_weight",
    "l0_bias",
    "l0_ln_weight",
    "l0_ln_bias",
    "l1_weight",
    "l1_bias",
    "l1_ln_weight",
    "l1_ln_bias",
    "l2_weight",
    "l2_bias",
)


def init_linear_(weight: Tensor, bias: Tensor | None) -> None:
    """Official init: weight ~ truncated normal (std 0.02), bias = 0 (in place)."""
    nn.init.trunc_normal_(weight, std=0.02)
    if bias is not None:
        nn.init.zeros_(bias)


class NormedLinear(nn.Linear):
    """Linear ``[..., in] -> [..., out]``, then optional dropout, LayerNorm and Mish or SimNorm.

    Attributes:
        ln: the LayerNorm (eps 1e-5, affine).
        act: ``"mish"`` or ``"simnorm"``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        act: str = "mish",
        dropout: float = 0.0,
        simnorm_dim: int = 8,
    ) -> None:
        super().__init__(in_features, out_features)
        self.ln = nn.LayerNorm(out_features)
        self.act = act
        self.dropout = float(dropout)
        self.simnorm_dim = int(simnorm_dim)
        init_linear_(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight, self.bias)
        if self.dropout > 0.0:
            x = F.dropout(x, self.dropout, self.training)
        x = self.ln(x)
        return simnorm(x, self.simnorm_dim) if self.act == "simnorm" else mish(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, act={self.act}, dropout={self.dropout}"


def normed_mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    final_act: str | None = None,
    zero_last: bool = False,
    simnorm_dim: int = 8,
) -> nn.Sequential:
    """NormedLinear (Mish) hidden layers, then a plain Linear (``final_act=None``) or a NormedLinear
    with ``final_act`` (``"simnorm"``). Parameter names match the official ``Sequential``
    (``i.weight``, ``i.bias``, ``i.ln.weight``, ``i.ln.bias``).

    ``zero_last`` zero-initialises the last layer's weight (the official reward head).
    """
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = [
        NormedLinear(dims[i], dims[i + 1], simnorm_dim=simnorm_dim) for i in range(len(hidden))
    ]
    if final_act is None:
        last = nn.Linear(dims[-1], out_dim)
        init_linear_(last.weight, last.bias)
    else:
        last = NormedLinear(dims[-1], out_dim, act=final_act, simnorm_dim=simnorm_dim)
    if zero_last:
        nn.init.zeros_(last.weight)
    layers.append(last)
    return nn.Sequential(*layers)


def q_ensemble_forward(
    params: Sequence[Tensor],
    x: Tensor,
    *,
    heads: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> Tensor:
    """Evaluate stacked Q heads on the same input.

    Args:
        params: the 10 stacked tensors in :data:`Q_PARAM_NAMES` order (leading axis = head).
        x: ``[..., in]`` inputs (``[z, a]``), shared by every head.
        heads: optional int64 ``[K]`` head indices; only those heads are evaluated.
        dropout: dropout probability after the first Linear (active only when ``training``).
        training: whether dropout is active.

    Returns:
        logits ``[K, ..., num_bins]`` (K = number of evaluated heads).
    """
    w0, b0, g0, be0, w1, b1, g1, be1, w2, b2 = params
    if heads is not None:
        w0, b0, g0, be0, w1, b1, g1, be1, w2, b2 = (
            p.index_select(0, heads) for p in (w0, b0, g0, be0, w1, b1, g1, be1, w2, b2)
        )
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    k, hidden, in_dim = w0.shape
    # layer 0: one GEMM for all heads, [N, K*M] -> [K, N, M]
    h = F.linear(flat, w0.reshape(k * hidden, in_dim), b0.reshape(k * hidden))
    h = h.view(-1, k, hidden).transpose(0, 1)
    if dropout > 0.0 and training:
        h = F.dropout(h, dropout, True)
    h = mish(F.layer_norm(h, (hidden,)) * g0.unsqueeze(1) + be0.unsqueeze(1))
    h = torch.baddbmm(b1.unsqueeze(1), h, w1.transpose(1, 2))
    h = mish(F.layer_norm(h, (w1.shape[1],)) * g1.unsqueeze(1) + be1.unsqueeze(1))
    out = torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2))
    return out.view(k, *lead, w2.shape[1])


class QEnsemble(nn.Module):
    """``num_q`` Q heads ``[z, a] -> M -> M -> num_bins`` with stacked parameters.

    Each head: NormedLinear (dropout on the first layer only), NormedLinear, Linear. The last
    Linear weight starts at zero, as official. Parameters are named :data:`Q_PARAM_NAMES`, each
    ``[num_q, ...]``. With ``trainable=False`` the tensors are registered as (persistent) buffers
    instead, for the target copy.
    """

    def __init__(
        self,
        num_q: int,
        in_dim: int,
        hidden: int,
        num_bins: int,
        *,
        dropout: float = 0.01,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.num_q, self.dropout = int(num_q), float(dropout)
        shapes = {
            "l0_weight": (num_q, hidden, in_dim),
            "l0_bias": (num_q, hidden),
            "l0_ln_weight": (num_q, hidden),
            "l0_ln_bias": (num_q, hidden),
            "l1_weight": (num_q, hidden, hidden),
            "l1_bias": (num_q, hidden),
            "l1_ln_weight": (num_q, hidden),
            "l1_ln_bias": (num_q, hidden),
            "l2_weight": (num_q, num_bins, hidden),
            "l2_bias": (num_q, num_bins),
        }
        for name in Q_PARAM_NAMES:
            tensor = torch.empty(shapes[name])
            if trainable:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init per head: trunc-normal(0.02) weights, zero biases, LayerNorm (1, 0), and
        a zero last-layer weight."""
        with torch.no_grad():
            for h in range(self.num_q):
                for layer in ("l0", "l1"):
                    init_linear_(
                        getattr(self, f"{layer}_weight")[h], getattr(self, f"{layer}_bias")[h]
                    )
            getattr(self, "l2_weight").zero_()  # noqa: B009 (buffer or parameter)
            getattr(self, "l2_bias").zero_()  # noqa: B009
            for layer in ("l0", "l1"):
                getattr(self, f"{layer}_ln_weight").fill_(1.0)
                getattr(self, f"{layer}_ln_bias").zero_()

    def tensors(self) -> list[Tensor]:
        """The 10 stacked tensors in :data:`Q_PARAM_NAMES` order."""
        return [getattr(self, name) for name in Q_PARAM_NAMES]

    def forward(self, x: Tensor, heads: Tensor | None = None, *, detach: bool = False) -> Tensor:
        """Logits ``[K, ..., num_bins]`` for inputs ``x [..., in]`` (all heads, or ``heads``).

        ``detach`` evaluates with gradient-free parameters (the official ``_detach_Qs``): the
        output still carries gradients with respect to ``x``.
        """
        params = [p.detach() for p in self.tensors()] if detach else self.tensors()
        return q_ensemble_forward(
            params, x, heads=heads, dropout=self.dropout, training=self.training
        )
