"""The ``tdmpc2`` parity handler: load official weights and recompute a golden file's outputs.

A golden file (../shared/parity/tdmpc2/README.md) holds the official weights (``weights.*``), a
non-degenerate override set (``weights_nz.*``), the inputs and the official outputs for both
weight sets (``outputs.*``, ``outputs_nz.*``): forward pieces, and one official update with and
without Q dropout. Every random draw the official code made is recorded and replayed here
(:class:`ReplayDraws`), so nothing depends on torch's RNG. With dropout on, the official masks
come from torch's RNG stream, so only the dropout-free terms of that run are compared strictly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from worldflux.core.components import ActionConditioner, DynamicsModel, ObservationEncoder
from worldflux.core.exceptions import CheckpointError
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch, State
from worldflux.families.tdmpc2.draws import ReplayDraws
from worldflux.families.tdmpc2.hparams import hparams_from
from worldflux.families.tdmpc2.objective import TDMPC2Objective
from worldflux.families.tdmpc2.slots import TDMPC2Heads
from worldflux.families.tdmpc2.weights import load_official_state
from worldflux.parity import ParityRow, compare, read_golden, register_parity_handler

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["TDMPC2ParityHandler", "check_tensors", "golden_overrides"]

#: (rtol, atol) per output group (the golden README's recommended float32 tolerances).
TOL_FORWARD = (1e-5, 1e-6)
TOL_ENTROPY = (1e-5, 1e-5)
TOL_LOSS = (1e-5, 1e-6)
TOL_PI = (1e-4, 1e-6)
#: With Q dropout on, official masks come from torch's RNG: the README's observed gaps.
TOL_DROPOUT_VALUE = (5e-3, 1e-6)
TOL_DROPOUT_TOTAL = (2e-3, 1e-6)

_FIELDS = ("enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "num_q", "simnorm_dim")


def golden_overrides(metadata: Mapping[str, str]) -> dict[str, Any]:
    """Config values a golden file fixes beyond the sizes (the episode length sets γ)."""
    config = json.loads(metadata.get("config", "{}"))
    out: dict[str, Any] = {}
    if "episode_length" in config:
        out["episode_length"] = int(config["episode_length"])
    return out


def _weights(tensors: Mapping[str, Tensor], nz: bool) -> dict[str, Tensor]:
    state = {k[len("weights.") :]: v for k, v in tensors.items() if k.startswith("weights.")}
    if nz:
        for key, value in tensors.items():
            if key.startswith("weights_nz."):
                state[key[len("weights_nz.") :]] = value
    return state


def _row(
    name: str, ours: Tensor, golden: Tensor, tol: tuple[float, float], note: str = ""
) -> ParityRow:
    return compare(name, ours.to(golden.dtype), golden, atol=tol[1], rtol=tol[0], note=note)


def _forward_rows(model: WorldModel, t: Mapping[str, Tensor], prefix: str) -> list[ParityRow]:
    heads = slot_as(model, "decoder", TDMPC2Heads)
    encoder = slot_as(model, "observation_encoder", ObservationEncoder)
    dynamics = slot_as(model, "dynamics_model", DynamicsModel)
    conditioner = slot_as(model, "action_conditioner", ActionConditioner)
    rows: list[ParityRow] = []
    with torch.no_grad():
        z = encoder(t["inputs.obs"])["latent"]
        state = State(latent=z)
        za = conditioner(state, t["inputs.action"])
        z_next = dynamics(state, za)["latent"]
        reward_logits = heads.reward_logits(za)
        idx = t[f"{prefix}.q_avg_heads"].long()
        mean_raw, log_std = heads.policy_params(z)
        sample = heads.policy(z, t[f"{prefix}.pi_eps"])
        ours = {
            "z": z,
            "z_next": z_next,
            "reward_logits": reward_logits,
            "reward_value": heads.two_hot.decode(reward_logits),
            "q_logits_all": heads.q_logits(za),
            "q_avg": heads.q_value(za, idx, "avg"),
            "q_min": heads.q_value(za, idx, "min"),
            "pi_mean_raw": mean_raw,
            "pi_log_std": log_std,
            "pi_action": sample.action,
            "pi_mean_squashed": sample.mean,
        }
    for name, value in ours.items():
        rows.append(_row(f"{prefix}.{name}", value, t[f"{prefix}.{name}"], TOL_FORWARD))
    rows.append(
        _row(f"{prefix}.pi_entropy", sample.entropy, t[f"{prefix}.pi_entropy"], TOL_ENTROPY)
    )
    rows.append(
        _row(
            f"{prefix}.pi_scaled_entropy",
            sample.scaled_entropy,
            t[f"{prefix}.pi_scaled_entropy"],
            TOL_ENTROPY,
        )
    )
    return rows


def _golden_batch(t: Mapping[str, Tensor]) -> Batch:
    """The golden's time-major update batch as a batch-major Batch (last step padded)."""
    obs = t["inputs.batch.obs"].transpose(0, 1)  # [B, T, D]
    action = t["inputs.batch.action"].transpose(0, 1)  # [B, H, A]
    reward = t["inputs.batch.reward"].squeeze(-1).transpose(0, 1)  # [B, H]
    term = t["inputs.batch.terminated"].squeeze(-1).transpose(0, 1)
    pad = torch.zeros_like(action[:, :1])
    zero = torch.zeros_like(reward[:, :1])
    return Batch(
        obs=obs,
        actions=torch.cat([action, pad], 1),
        rewards=torch.cat([reward, zero], 1),
        terminated=torch.cat([term, zero], 1).bool(),
        truncated=torch.zeros(obs.shape[:2], dtype=torch.bool),
    )


def _update_rows(
    model: WorldModel, t: Mapping[str, Tensor], prefix: str, dropout: bool
) -> list[ParityRow]:
    heads = slot_as(model, "decoder", TDMPC2Heads)
    objective = slot_as(model, "objective", TDMPC2Objective)
    if not dropout:
        heads.q.dropout = 0.0
    draws = ReplayDraws(
        normals=[t[f"{prefix}.td_eps"], t[f"{prefix}.pi_update_eps"]],
        heads=[t[f"{prefix}.td_q_heads"], t[f"{prefix}.pi_update_q_heads"]],
    )
    model.eval()
    metrics, terms = objective.update_with_terms(
        model, _golden_batch(t), objective.make_optimizers(model), draws
    )
    rows = [_row(f"{prefix}.td_targets", terms.td_targets, t[f"{prefix}.td_targets"], TOL_LOSS)]
    strict = ["consistency_loss", "reward_loss"]
    if dropout:
        rows += [
            _row(f"{prefix}.value_loss", torch.tensor(metrics["value_loss"]),
                 t[f"{prefix}.value_loss"], TOL_DROPOUT_VALUE, "dropout masks differ"),
            _row(f"{prefix}.total_loss", torch.tensor(metrics["total_loss"]),
                 t[f"{prefix}.total_loss"], TOL_DROPOUT_TOTAL, "dropout masks differ"),
        ]  # fmt: skip
    else:
        strict += ["value_loss", "total_loss", "grad_norm"]
        for name in ("pi_loss", "pi_grad_norm", "pi_entropy", "pi_scaled_entropy", "pi_scale"):
            rows.append(
                _row(f"{prefix}.{name}", torch.tensor(metrics[name]), t[f"{prefix}.{name}"], TOL_PI)
            )
        rows.append(
            _row(f"{prefix}.discount", torch.tensor(objective.discount(model)),
                 t[f"{prefix}.discount"], (0.0, 0.0))
        )  # fmt: skip
    for name in strict:
        rows.append(
            _row(f"{prefix}.{name}", torch.tensor(metrics[name]), t[f"{prefix}.{name}"], TOL_LOSS)
        )
    if not draws.exhausted:
        rows.append(
            ParityRow(f"{prefix}.draws", float("inf"), float("inf"), 0, 0, (), "unused draws")
        )
    return rows


def check_tensors(
    build: Callable[[], WorldModel], tensors: Mapping[str, Tensor]
) -> list[ParityRow]:
    """Recompute every documented output of a golden's ``tensors`` with fresh models from
    ``build`` (official-init and nz weight sets; forward, update with and without dropout)."""
    rows: list[ParityRow] = []
    for nz, out in ((False, "outputs"), (True, "outputs_nz")):
        if f"{out}.z" not in tensors:
            continue
        model = build()
        load_official_state(model, _weights(tensors, nz))
        model.eval()
        rows += _forward_rows(model, tensors, out)
        for run, dropout in (("update_nodropout", False), ("update", True)):
            if f"{out}.{run}.td_targets" not in tensors:
                continue
            model = build()
            load_official_state(model, _weights(tensors, nz))
            # dropout masks come from torch's global RNG: a fixed seed (in a forked RNG, so the
            # caller's stream is untouched) makes the dropout rows the same on every call
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                rows += _update_rows(model, tensors, f"{out}.{run}", dropout)
    return rows


class TDMPC2ParityHandler:
    """Parity for ``tdmpc2``: the weight map (:mod:`.weights`) and the golden recomputation."""

    def load_official(
        self,
        model_id: str,
        state: Mapping[str, Tensor],
        *,
        obs_shape: Sequence[int],
        action_dim: int,
        **overrides: Any,
    ) -> WorldModel:
        # deferred: the factory sits above the families (it imports every one of them)
        from worldflux.factory import create_world_model

        model = create_world_model(
            model_id, obs_shape=tuple(obs_shape), action_dim=action_dim, **overrides
        )
        load_official_state(model, state)
        return model

    def check_golden(self, model_id: str, golden: Path) -> list[ParityRow]:
        # deferred: the factory sits above the families (it imports every one of them)
        from worldflux.factory import create_world_model

        tensors, metadata = read_golden(golden)
        obs_dim = int(tensors["inputs.obs"].shape[-1])
        action_dim = int(tensors["inputs.action"].shape[-1])
        overrides = golden_overrides(metadata)

        def build() -> WorldModel:
            return create_world_model(
                model_id, obs_shape=(obs_dim,), action_dim=action_dim, **overrides
            )

        config = json.loads(metadata.get("config", "{}"))
        hp = hparams_from(build().config)
        wrong = {
            f: (getattr(hp, f), config[f])
            for f in _FIELDS
            if f in config and int(config[f]) != int(getattr(hp, f))
        }
        if wrong:
            raise CheckpointError(
                f"{golden}: {model_id} has other sizes than the golden (ours, golden): {wrong}"
            )
        return check_tensors(build, tensors)


register_parity_handler("tdmpc2", TDMPC2ParityHandler())
