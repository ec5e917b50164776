"""A complete adapter, as docs/conformance.md describes it: a world model written in plain
PyTorch (``PlainWorld``, no worldflux imports) behind the worldflux contract.

Check it::

    worldflux conformance run worldflux.conformance.example_adapter:make_adapter --profile ci

The adapter is a plain ``nn.Module`` (it need not subclass ``WorldModel``). It must:

- declare ``maturity`` and an ``io_contract()`` (symbols already bound here);
- validate its inputs against that contract, so invalid tensors raise a ``ContractViolation``
  naming them (``validate_observation`` / ``validate_action`` / ``validate_batch``);
- return worldflux types (``State``, ``ModelOutput``, ``Trajectory``, ``LossOutput``);
- be deep-copyable and rebuildable by its factory (the suite deep-copies the built model for
  every check and builds fresh copies to load checkpoints into).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worldflux.core.spec import ModelIOContract
from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory

__all__ = ["PlainWorld", "PlainWorldAdapter", "make_adapter"]

OBS_DIM, ACT_DIM, LATENT = 6, 2, 8


class PlainWorld(nn.Module):
    """The third-party model: batch-first tensors, no worldflux types."""

    def __init__(self, obs_dim: int = OBS_DIM, act_dim: int = ACT_DIM, latent: int = LATENT):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(obs_dim, 32), nn.ELU(), nn.Linear(32, latent))
        self.dynamics = nn.GRUCell(act_dim, latent)
        self.reward_head = nn.Linear(latent, 1)
        self.done_head = nn.Linear(latent, 1)

    def embed(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.encoder(obs))

    def step(self, z: Tensor, a: Tensor) -> Tensor:
        z_next: Tensor = self.dynamics(a, z)
        return z_next

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.reward_head(z).squeeze(-1), self.done_head(z).squeeze(-1)


class PlainWorldAdapter(nn.Module):
    """PlainWorld as a worldflux target (EXPERIMENTAL: it has no parity facts)."""

    maturity = "experimental"
    capabilities = ("latent_dynamics", "reward_pred", "continue_pred")

    def __init__(self) -> None:
        super().__init__()
        self.inner = PlainWorld()
        self.contract = self.io_contract()

    def io_contract(self) -> ModelIOContract:
        return ModelIOContract.from_dict(
            {
                "observation": {"obs": {"shape": [OBS_DIM], "dtype": "float32"}},
                "action": {"kind": "continuous", "dim": ACT_DIM, "low": -1.0, "high": 1.0},
                "state": {"latent": {"shape": [LATENT], "dtype": "float32"}},
                "predictions": {"reward": {"shape": []}, "continue": {"shape": []}},
                "loss_components": ["dynamics", "reward", "continue"],
                "empty_batch": "error",
            }
        )

    def encode(self, obs: Tensor) -> State:
        """``obs [B, 6]`` -> ``State(latent=[B, 8])``."""
        self.contract.validate_observation(obs)
        return State(latent=self.inner.embed(obs))

    def transition(self, state: Mapping[str, Tensor], action: Tensor) -> State:
        """``State(latent=[B, 8])``, ``action [B, 2]`` -> the next State."""
        self.contract.validate_state(state)
        self.contract.validate_action(action, lead=(state["latent"].shape[0],))
        return State(latent=self.inner.step(state["latent"], action))

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        """``reward [B]`` and ``continue [B]`` (the probability of not terminating)."""
        reward, done_logit = self.inner.heads(state["latent"])
        return ModelOutput({"reward": reward, "continue": torch.sigmoid(-done_logit)})

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        """``actions [B, H, 2]`` -> states ``[B, H+1, 8]``, rewards / continues ``[B, H]``."""
        self.contract.validate_action(
            actions, lead=(state["latent"].shape[0], None), name="actions"
        )
        states, preds = [State(dict(state))], []
        for t in range(actions.shape[1]):
            states.append(self.transition(states[-1], actions[:, t]))
            preds.append(self.decode(states[-1]).predictions)
        stacked = {k: torch.stack([p[k] for p in preds], dim=1) for k in ("reward", "continue")}
        return Trajectory(
            states=State.stack(states, dim=1),
            actions=actions.clone(),
            rewards=stacked["reward"],
            continues=stacked["continue"],
            predictions=stacked,
        )

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """A ``[B, T, ...]`` batch -> one-step prediction losses (a 0-d total)."""
        self.contract.validate_batch(batch)
        obs, act = batch["obs"], batch["actions"]
        z = torch.unflatten(self.inner.embed(obs.flatten(0, 1)), 0, obs.shape[:2])
        pred = self.inner.step(z[:, :-1].flatten(0, 1), act[:, :-1].flatten(0, 1))
        dynamics = F.mse_loss(pred, z[:, 1:].flatten(0, 1).detach())
        reward, done_logit = self.inner.heads(pred)
        reward_loss = F.mse_loss(reward, batch["rewards"][:, :-1].flatten().float())
        done = batch["terminated"][:, 1:].flatten().float()
        cont_loss = F.binary_cross_entropy_with_logits(done_logit, done)
        parts = {"dynamics": dynamics, "reward": reward_loss, "continue": cont_loss}
        return LossOutput(loss=dynamics + reward_loss + cont_loss, components=parts)


def make_adapter() -> PlainWorldAdapter:
    """The factory the suite calls (it seeds the global RNG first)."""
    return PlainWorldAdapter()
