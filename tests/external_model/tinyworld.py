"""TinyWorld: a small latent world model in plain PyTorch. It knows nothing about worldflux.

API (time-major training data, as many RL codebases use):
    embed(obs [N, obs_dim]) -> z [N, latent]
    step(z [N, latent], a [N, act_dim]) -> z' [N, latent]
    heads(z) -> (reward [N], done_logit [N])
    training_loss(obs [T, N, obs_dim], act [T, N, act_dim], rew [T, N], done [T, N])
        -> (total, {"model": ..., "reward": ..., "done": ...})
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class TinyWorld(nn.Module):
    def __init__(self, obs_dim: int = 6, act_dim: int = 2, latent: int = 12) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.latent = obs_dim, act_dim, latent
        self.encoder = nn.Sequential(nn.Linear(obs_dim, 32), nn.ELU(), nn.Linear(32, latent))
        self.dynamics = nn.GRUCell(act_dim, latent)
        self.reward_head = nn.Linear(latent, 1)
        self.done_head = nn.Linear(latent, 1)

    def embed(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.encoder(obs))

    def step(self, z: Tensor, a: Tensor) -> Tensor:
        return self.dynamics(a, z)

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.reward_head(z).squeeze(-1), self.done_head(z).squeeze(-1)

    def training_loss(
        self, obs: Tensor, act: Tensor, rew: Tensor, done: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.embed(obs)
        pred = self.step(z[:-1].flatten(0, 1), act[:-1].flatten(0, 1))
        model = F.mse_loss(pred, z[1:].flatten(0, 1).detach())
        reward, done_logit = self.heads(pred)
        reward_loss = F.mse_loss(reward, rew[:-1].flatten())
        done_loss = F.binary_cross_entropy_with_logits(done_logit, done[:-1].flatten().float())
        parts = {"model": model, "reward": reward_loss, "done": done_loss}
        return model + reward_loss + done_loss, parts
