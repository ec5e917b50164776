"""Adapter: TinyWorld (written without worldflux) behind the worldflux contract.

The adapter is a plain ``nn.Module``, not a ``WorldModel`` subclass. It satisfies the duck-typed
protocol :class:`worldflux.conformance.target.WorldModelLike`: it declares an
``io_contract()``, maps worldflux's batch-major ``[B, T, ...]`` batches onto TinyWorld's
time-major API, returns worldflux types, and validates inputs against the contract so bad
tensors get a ``ContractViolation`` naming them.

Check it:  ``worldflux conformance run tests.external_model.adapter:make_adapter``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from tests.external_model.tinyworld import TinyWorld
from worldflux.core.spec import ModelIOContract
from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory

OBS_DIM, ACT_DIM, LATENT = 6, 2, 12


class TinyWorldAdapter(nn.Module):
    """TinyWorld as a worldflux target (EXPERIMENTAL: no parity facts)."""

    maturity = "experimental"
    capabilities = ("latent_dynamics", "reward_pred", "continue_pred")

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyWorld(OBS_DIM, ACT_DIM, LATENT)
        self._contract = self.io_contract()

    def io_contract(self) -> ModelIOContract:
        return ModelIOContract.from_dict(
            {
                "observation": {"obs": {"shape": [OBS_DIM], "dtype": "float32"}},
                "action": {"kind": "continuous", "dim": ACT_DIM, "low": -1.0, "high": 1.0},
                "state": {"latent": {"shape": [LATENT], "dtype": "float32"}},
                "predictions": {"reward": {"shape": []}, "continue": {"shape": []}},
                "loss_components": ["model", "reward", "done"],
            }
        )

    def encode(self, obs: Tensor) -> State:
        """``obs [B, 6]`` -> ``{"latent": [B, 12]}``."""
        self._contract.validate_observation(obs)
        return State(latent=self.inner.embed(obs))

    def transition(self, state: Mapping[str, Tensor], action: Tensor) -> State:
        """``{"latent": [B, 12]}``, ``action [B, 2]`` -> next state."""
        self._contract.validate_action(action, lead=(state["latent"].shape[0],))
        return State(latent=self.inner.step(state["latent"], action))

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        """``reward [B]`` and ``continue [B]`` (probability of not terminating)."""
        reward, done_logit = self.inner.heads(state["latent"])
        return ModelOutput({"reward": reward, "continue": torch.sigmoid(-done_logit)})

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        """``actions [B, H, 2]`` -> states ``[B, H+1, 12]``, rewards / continues ``[B, H]``."""
        self._contract.validate_action(
            actions, lead=(state["latent"].shape[0], None), name="actions"
        )
        states, preds = [State(dict(state))], []
        for t in range(actions.shape[1]):
            states.append(self.transition(states[-1], actions[:, t]))
            preds.append(self.decode(states[-1]).predictions)
        stacked = {k: torch.stack([p[k] for p in preds], dim=1) for k in ("reward", "continue")}
        return Trajectory(
            states=State.stack(states, dim=1),
            actions=actions,
            rewards=stacked["reward"],
            continues=stacked["continue"],
            predictions=stacked,
        )

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """Batch-major ``[B, T, ...]`` -> TinyWorld's time-major ``[T, B, ...]``."""
        self._contract.validate_batch(batch)
        total, parts = self.inner.training_loss(
            batch["obs"].transpose(0, 1),
            batch["actions"].transpose(0, 1),
            batch["rewards"].transpose(0, 1).float(),
            batch["terminated"].transpose(0, 1),
        )
        return LossOutput(loss=total, components=parts)


def make_adapter() -> TinyWorldAdapter:
    """The factory the CLI and check_model call (the caller seeds the global RNG first)."""
    return TinyWorldAdapter()


class UndeclaredTinyWorld(TinyWorldAdapter):
    """The same adapter with no maturity of its own: pass ``--spec tinyworld.yaml``."""

    maturity = None  # type: ignore[assignment]
