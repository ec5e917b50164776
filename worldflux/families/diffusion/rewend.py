"""DIAMOND's separate reward/termination model, small: a frame-pair encoder, an LSTM and heads.

DIAMOND (arXiv:2405.12399, appendix) predicts reward and termination with a model of its own,
not from the denoiser: a conv encoder of ``(o_t, o_{t+1})`` stacked on channels, conditioned on
the action ``a_t`` through AdaGroupNorm, feeds an LSTM over the episode; one head gives 3
reward-sign logits ({-1, 0, 1}, rewards clipped by sign) and 2 termination logits, each trained
by cross-entropy. It shares no weight with the denoiser and has its own action embedding.

Here the encoder and the LSTM cell (:class:`RewEndCore`) live in the dynamics slot, which
advances the LSTM state ``rew_h``, ``rew_c`` with every transition (real or imagined); the heads
(:class:`RewEndHeads`) live in the decoder slot and read that state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.families.diffusion.unet import CondResBlock

__all__ = ["REWARD_SIGNS", "RewEndCore", "RewEndHeads"]

#: The reward classes' values: class ``k`` is reward sign ``REWARD_SIGNS[k]``.
REWARD_SIGNS = (-1.0, 0.0, 1.0)


class _ImagePairEncoder(nn.Module):
    """``(o_t, o_{t+1}) [B, 2C, H, W]`` + action embedding -> ``[B, ch * ceil(H/2) * ceil(W/2)]``.

    conv_in, one AdaGroupNorm residual block at full resolution, a stride-2 conv, one block at
    half resolution, flattened (DIAMOND: 4 levels of 2 blocks each, 32 channels).
    """

    def __init__(self, obs_shape: tuple[int, ...], channels: int, cond_dim: int) -> None:
        super().__init__()
        c, h, w = (int(v) for v in obs_shape)
        self.conv_in = nn.Conv2d(2 * c, channels, 3, padding=1)
        self.block1 = CondResBlock(channels, channels, cond_dim)
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.block2 = CondResBlock(channels, channels, cond_dim)
        self.out_dim = channels * ((h + 1) // 2) * ((w + 1) // 2)

    def forward(self, prev: Tensor, nxt: Tensor, cond: Tensor) -> Tensor:
        z = self.conv_in(torch.cat([prev, nxt], dim=1))
        z = self.down(self.block1(z, cond))
        out: Tensor = self.block2(z, cond).flatten(1)
        return out


class _VectorPairEncoder(nn.Module):
    """``(o_t, o_{t+1}) [B, D]`` each + action embedding -> ``[B, width]`` (an MLP)."""

    def __init__(self, obs_dim: int, width: int, cond_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * obs_dim + cond_dim, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.out_dim = width

    def forward(self, prev: Tensor, nxt: Tensor, cond: Tensor) -> Tensor:
        out: Tensor = self.net(torch.cat([prev.flatten(1), nxt.flatten(1), cond], dim=-1))
        return out


class RewEndCore(nn.Module):
    """One recurrent step of the reward/termination model.

    ``(o_t [B, *obs], a_t features [B, A], o_{t+1} [B, *obs], (h, c) [B, L] each)`` ->
    ``(h', c')``: ``LSTMCell(encoder(o_t, o_{t+1} | embed(a_t)), (h, c))``. Image observations
    ``[C, H, W]`` use the conv encoder, anything else the MLP; ``width`` is the conv channels or
    the MLP width, ``lstm_dim`` the LSTM size.
    """

    def __init__(
        self, obs_shape: tuple[int, ...], action_dim: int, *, width: int, embed: int, lstm_dim: int
    ) -> None:
        super().__init__()
        self.act_emb = nn.Linear(action_dim, embed)
        self.encoder: _ImagePairEncoder | _VectorPairEncoder
        if len(obs_shape) == 3:
            self.encoder = _ImagePairEncoder(obs_shape, width, embed)
        else:
            self.encoder = _VectorPairEncoder(int(torch.Size(obs_shape).numel()), width, embed)
        self.lstm = nn.LSTMCell(self.encoder.out_dim, lstm_dim)
        self.lstm_dim = lstm_dim

    def forward(
        self, prev: Tensor, action: Tensor, nxt: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor]:
        feats = self.encoder(prev, nxt, self.act_emb(action))
        h_new, c_new = self.lstm(feats, (h, c))
        return h_new, c_new


class RewEndHeads(nn.Module):
    """LSTM state ``h [B, L]`` -> reward logits ``[B, R]`` and termination logits ``[B, 2]``.

    ``reward_loss="sign"`` (DIAMOND, IRIS): ``R = 3`` classes of the reward's sign, trained by
    cross-entropy; the predicted reward is the expected sign ``sum_k p_k sign_k``.
    ``reward_loss="mse"``: ``R = 1``, the reward itself, trained by squared error (for dense
    rewards whose sign carries no information, e.g. Reach's ``-distance``).
    ``continue = softmax(termination logits)_0``, the probability of not terminating.
    """

    signs: Tensor

    def __init__(self, lstm_dim: int, reward_loss: str = "sign") -> None:
        super().__init__()
        self.mode = reward_loss
        self.classes = 3 if reward_loss == "sign" else 1
        self.net = nn.Sequential(
            nn.Linear(lstm_dim, lstm_dim), nn.SiLU(), nn.Linear(lstm_dim, self.classes + 2)
        )
        self.register_buffer("signs", torch.tensor(REWARD_SIGNS), persistent=False)

    def logits(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(reward logits [B, R], termination logits [B, 2])``."""
        out: Tensor = self.net(h)
        return out[:, : self.classes], out[:, self.classes :]

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(predicted reward [B], continue probability [B])``."""
        rew, end = self.logits(h)
        if self.mode == "sign":
            reward = (F.softmax(rew, dim=-1) * self.signs.to(rew.dtype)).sum(-1)
        else:
            reward = rew[:, 0]
        return reward, F.softmax(end, dim=-1)[:, 0]

    def reward_loss(self, rew_logits: Tensor, reward: Tensor) -> Tensor:
        """Per-sample reward loss ``[B]``: CE on the sign class, or squared error."""
        if self.mode == "sign":
            target = reward.sign().long() + 1
            return F.cross_entropy(rew_logits, target, reduction="none")
        return (rew_logits[:, 0] - reward.to(rew_logits.dtype)).pow(2)

    @staticmethod
    def end_loss(end_logits: Tensor, terminated: Tensor) -> Tensor:
        """Per-sample termination cross-entropy ``[B]`` (class 1 = terminated)."""
        return F.cross_entropy(end_logits, terminated.long(), reduction="none")
