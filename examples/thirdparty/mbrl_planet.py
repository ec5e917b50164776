"""mbrl-lib's PlaNet world model (Meta, ``pip install mbrl==0.2.0``; MIT) behind worldflux's
adapter protocol, written from docs/conformance.md alone: a real third-party implementation,
wrapped without changing it.

Check it (``nox -s thirdparty`` installs mbrl-lib into its own venv and runs this)::

    worldflux conformance run examples/thirdparty/mbrl_planet.py:make_adapter --profile ci

What PlaNet is, in worldflux's terms:

- observations: ``uint8`` images ``[3, 16, 16]`` (PlaNet's pixel preprocessing ``x / 256 - 0.5``
  happens inside it); state: the stochastic ``latent`` ``s_t`` and the deterministic ``belief``
  ``h_t`` of its RSSM; predictions: ``reward`` and the reconstructed ``obs``; no continue head
  (PlaNet predicts no terminations, so trajectories carry ``continues=None``).
- PlaNet samples its posterior in every mode, from a private ``torch.Generator``; the adapter
  seeds that generator from torch's global RNG before each call (so the suite's seeding makes it
  reproducible) and declares ``stochastic_eval`` (eval-mode outputs depend on the RNG).
- ``encode`` is PlaNet's first posterior step (zero belief, zero latent, zero action, as its
  ``update_posterior`` starts an episode); ``transition`` is its prior step ``sample``
  (the prior mean in eval mode, a sample in train mode); ``loss`` is its own ``loss`` (one
  total: reconstruction + reward + KL with free nats).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from mbrl.models.planet import PlaNetModel
from mbrl.types import TransitionBatch
from torch import Tensor, nn

from worldflux.core.spec import ModelIOContract
from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory

__all__ = ["PlaNetAdapter", "make_adapter"]

SIDE, ACTIONS, LATENT, BELIEF, HIDDEN, ENCODING = 16, 2, 8, 16, 32, 32
#: a small PlaNet for 16x16 images: two stride-2 convolutions (16 -> 7 -> 2) and two transposed
#: ones (1 -> 6 -> 16); the official configuration is the same shape at 64x64 (4 layers each)
ENCODER = ((3, 8, 4, 2), (8, 16, 4, 2))
DECODER = ((ENCODING, 1, 1), ((ENCODING, 16, 6, 2), (16, 3, 6, 2)))


class PlaNetAdapter(nn.Module):
    """``mbrl.models.PlaNetModel`` as a worldflux conformance target."""

    maturity = "experimental"
    capabilities = ("latent_dynamics", "reward_pred", "obs_decoder")
    conformance_hints = {"stochastic_eval": True}  # noqa: RUF012  (the protocol's attribute)

    def __init__(self) -> None:
        super().__init__()
        self.inner = PlaNetModel(
            obs_shape=(3, SIDE, SIDE),
            obs_encoding_size=ENCODING,
            encoder_config=ENCODER,
            decoder_config=DECODER,
            latent_state_size=LATENT,
            action_size=ACTIONS,
            belief_size=BELIEF,
            hidden_size_fcs=HIDDEN,
            device="cpu",
        )
        self.contract = self.io_contract()

    def io_contract(self) -> ModelIOContract:
        return ModelIOContract.from_dict(
            {
                "observation": {"obs": {"shape": [3, SIDE, SIDE], "dtype": "uint8"}},
                "action": {"kind": "continuous", "dim": ACTIONS, "low": -1.0, "high": 1.0},
                "state": {
                    "latent": {"shape": [LATENT], "dtype": "float32"},
                    "belief": {"shape": [BELIEF], "dtype": "float32"},
                },
                "predictions": {
                    "reward": {"shape": []},
                    "obs": {"shape": [3, SIDE, SIDE], "dtype": "float32"},
                },
                "loss_components": ["planet"],
                "empty_batch": "error",
            }
        )

    def _generator(self) -> torch.Generator:
        """PlaNet's private generator, seeded from the global RNG (the suite seeds that)."""
        self.inner.rng.manual_seed(int(torch.randint(0, 2**62, ()).item()))
        return self.inner.rng

    def encode(self, obs: Tensor) -> State:
        """``obs [B, 3, 16, 16]`` uint8 -> ``State(latent=[B, 8], belief=[B, 16])``."""
        self.contract.validate_observation(obs)
        pixels = self.inner._process_pixel_obs(obs)
        latent, belief, action = self.inner._init_latent_belief_action(obs.shape[0])
        *_, posterior, next_belief = self.inner._forward_transition_models(
            pixels, action, latent, belief, only_posterior=True, rng=self._generator()
        )
        return State(latent=posterior, belief=next_belief)

    def transition(self, state: Mapping[str, Tensor], action: Tensor) -> State:
        """One prior step: ``action [B, 2]`` -> the next ``latent`` / ``belief``."""
        self.contract.validate_state(state)
        self.contract.validate_action(action, lead=(state["latent"].shape[0],))
        _, _, _, nxt = self.inner.sample(
            action,
            {"latent": state["latent"], "belief": state["belief"]},
            deterministic=not self.training,
            rng=self._generator(),
        )
        return State(latent=nxt["latent"], belief=nxt["belief"])

    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        """``reward [B]`` and the reconstructed ``obs [B, 3, 16, 16]`` (PlaNet's pixel scale)."""
        features = torch.cat([state["belief"], state["latent"]], dim=-1)
        reward = self.inner.reward_model(features).squeeze(-1)
        obs = self.inner._forward_decoder(state["latent"], state["belief"])
        return ModelOutput({"reward": reward, "obs": obs})

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Trajectory:
        """``actions [B, H, 2]`` -> states ``[B, H+1, ...]``, rewards ``[B, H]``, no continues."""
        self.contract.validate_state(state)
        self.contract.validate_action(
            actions, lead=(state["latent"].shape[0], None), name="actions"
        )
        states, predictions = [State(dict(state))], []
        for t in range(actions.shape[1]):
            states.append(self.transition(states[-1], actions[:, t]))
            predictions.append(self.decode(states[-1]).predictions)
        stacked = {k: torch.stack([p[k] for p in predictions], dim=1) for k in ("reward", "obs")}
        return Trajectory(
            states=State.stack(states, dim=1),
            actions=actions.clone(),
            rewards=stacked["reward"],
            continues=None,
            predictions=stacked,
        )

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """PlaNet's own loss on a ``[B, T, ...]`` batch (``obs`` uint8 images)."""
        self.contract.validate_batch(batch)
        self._generator()  # its loss samples from self.inner.rng
        sequences = TransitionBatch(
            obs=batch["obs"],
            act=batch["actions"],
            next_obs=None,
            rewards=batch["rewards"],
            terminateds=None,
            truncateds=None,
        )
        total, _ = self.inner.loss(sequences)
        return LossOutput(loss=total, components={"planet": total})


def make_adapter() -> PlaNetAdapter:
    """The factory the suite calls (it seeds the global RNG first)."""
    return PlaNetAdapter()
