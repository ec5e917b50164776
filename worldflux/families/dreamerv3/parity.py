"""The DreamerV3 parity handler: official weights into our model, golden outputs recomputed.

Golden files (``specs/parity/dreamerv3/*.safetensors``, ``../shared/parity/dreamerv3``) hold the
official trainable parameters (``weights.*``), inputs (``inputs.*``) and outputs (``outputs.*``)
recorded from danijar/dreamerv3@e3f0224. :class:`DreamerParityHandler` loads the weights through
the weight map, recomputes every documented output with our slots and compares it with the
documented tolerance.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.nn import functional as F

from worldflux.core.exceptions import CheckpointError
from worldflux.core.types import State
from worldflux.families.dreamerv3.decoder import DreamerDecoder, feat_of
from worldflux.families.dreamerv3.encoder import DreamerEncoder
from worldflux.families.dreamerv3.objective import DreamerObjective
from worldflux.families.dreamerv3.rssm import RSSM
from worldflux.families.dreamerv3.weights import load_official_weights
from worldflux.nn.dists import binary_loss, categorical_kl
from worldflux.parity import ParityRow, compare, read_golden

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["DreamerParityHandler", "compute_outputs", "golden_obs_keys", "infer_obs_keys"]

#: Observation keys the official agent neither encodes nor decodes.
BOOKKEEPING = ("reward", "is_first", "is_last", "is_terminal")

#: (atol, rtol) per output, from the golden README's recommended tolerances.
TOLERANCES: dict[str, tuple[float, float]] = {
    "enc_input_symlog": (1e-6, 0.0),
    "feat": (1e-6, 0.0),
    "twohot_bins": (0.0, 1e-5),
}
_TIGHT = (1e-5, 1e-5)
_LOSSY = (5e-5, 1e-5)
_LOSS_LIKE = ("kl_post_prior", "pol_logp_action", "pol_entropy", "rew_loss", "val_loss", "con_loss")

ModelBuilder = Callable[..., "WorldModel"]


def tolerance(name: str) -> tuple[float, float]:
    """(atol, rtol) of an output name."""
    if name in TOLERANCES:
        return TOLERANCES[name]
    if name in _LOSS_LIKE or (name.startswith("dec_") and name.endswith("_loss")):
        return _LOSSY
    return _TIGHT


def golden_obs_keys(metadata: Mapping[str, str]) -> list[str]:
    """``obs_keys`` config entries (``"name:dims"``) from a golden's ``obs_space`` metadata."""
    space = json.loads(metadata.get("obs_space", "{}"))
    keys = []
    for name in sorted(space):
        if name in BOOKKEEPING or name.startswith("log/"):
            continue
        keys.append(f"{name}:" + "x".join(str(int(d)) for d in space[name]))
    return keys


def infer_obs_keys(state: Mapping[str, Tensor]) -> list[str]:
    """Vector observation keys named by official decoder weights (``[]`` for one ``obs`` key)."""
    keys: list[str] = []
    for name, value in state.items():
        name = name.removeprefix("weights.")
        parts = name.split("/")
        if len(parts) == 5 and parts[:2] == ["dec", "vec"] and parts[3:] == ["pred", "kernel"]:
            width = int(value.shape[-1])
            keys.append(f"{parts[2]}:" + ("" if width == 1 else str(width)))
    keys.sort()
    return [] if [k.split(":")[0] for k in keys] == ["obs"] else keys


def _parts(model: WorldModel) -> tuple[DreamerEncoder, Any, RSSM, DreamerDecoder, DreamerObjective]:
    enc, cond = model.observation_encoder, model.action_conditioner
    dyn, dec = model.dynamics_model, model.decoder_module
    objective = getattr(model, "objective", None)
    assert isinstance(enc, DreamerEncoder) and isinstance(dyn, RSSM)
    assert isinstance(dec, DreamerDecoder) and isinstance(objective, DreamerObjective)
    return enc, cond, dyn, dec, objective


@torch.no_grad()
def compute_outputs(model: WorldModel, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every documented golden output recomputed by our slots from the golden ``inputs``.

    ``inputs``: ``obs_<key> [B, ...]``, ``deter [B, D]``, ``stoch [B, S, K]``, ``action [B, A]``,
    ``rew_target``, ``val_target``, ``con_target [B]`` (names without the ``inputs.`` prefix).
    """
    enc, cond, dyn, dec, objective = _parts(model)
    obs = {k[len("obs_") :]: v for k, v in inputs.items() if k.startswith("obs_")}
    deter, stoch, action = inputs["deter"], inputs["stoch"], inputs["action"]
    out: dict[str, Tensor] = {}
    out["enc_input_symlog"] = enc.vector_input(obs, 1)
    tokens = enc(obs)["embed"]
    out["enc_tokens"] = tokens
    carry = State(deter=deter, stoch=stoch)
    new_deter = dyn.core(deter, stoch, cond(carry, action))
    prior = dyn.prior_logits(new_deter)
    prior_lp = dyn.logprobs(prior)
    out["img_deter"] = new_deter
    out["prior_logits_raw"] = prior
    out["prior_logprobs_unimix"] = prior_lp
    out["prior_probs_unimix"] = prior_lp.exp()
    post = dyn.post_logits(new_deter, tokens)
    post_lp = dyn.logprobs(post)
    out["obs_deter"] = new_deter
    out["post_logits_raw"] = post
    out["post_logprobs_unimix"] = post_lp
    out["kl_post_prior"] = categorical_kl(post_lp, prior_lp).sum(-1)
    feat = feat_of(carry)
    out["feat"] = feat
    recon = dec.reconstruct(deter, stoch)
    rec_losses = dec.rec_losses(recon, obs)
    for key in dec.vec_keys:
        out[f"dec_{key}_mean"] = recon[key]
        out[f"dec_{key}_loss"] = rec_losses[key]
    rew = dec.rew.dist(feat)
    out["rew_logits"] = rew.logits
    out["rew_mean"] = rew.pred()
    out["rew_loss"] = rew.loss(inputs["rew_target"])
    out["twohot_bins"] = dec.rew.bins
    logit = dec.con(feat)
    out["con_logit"] = logit
    out["con_prob"] = F.logsigmoid(logit).exp()
    out["con_loss"] = binary_loss(logit, inputs["con_target"])
    policy = objective.pol(feat)
    mean = getattr(policy, "mean", None)
    if mean is not None:
        out["pol_mean"] = mean
        out["pol_std"] = policy.std
    out["pol_logp_action"] = policy.logp(action)
    out["pol_entropy"] = policy.entropy()
    val = objective.val.dist(feat)
    out["val_logits"] = val.logits
    out["val_mean"] = val.pred()
    out["val_loss"] = val.loss(inputs["val_target"])
    return out


def _twohot_row(name: str, ours: Tensor, golden: Tensor, logits: Tensor, bins: Tensor) -> ParityRow:
    """The golden README's scale-aware rule, element-wise: ``|d| <= 1e-6 * sum_i p_i |b_i| +
    1e-6`` per decoded value, with ``p`` the softmax of the golden logits."""
    scale = (torch.softmax(logits.double(), -1) * bins.double().abs()).sum(-1)
    return compare(name, ours, golden, 1e-6, 0.0, "scale-aware two-hot rule", extra=1e-6 * scale)


class DreamerParityHandler:
    """Parity for ``dreamerv3`` models (see :func:`worldflux.parity.register_parity_handler`)."""

    def __init__(self, builder: ModelBuilder | None = None) -> None:
        self._builder = builder

    def build(self, model_id: str, **kwargs: Any) -> WorldModel:
        if self._builder is not None:
            return self._builder(model_id, **kwargs)
        # deferred: the factory sits above the families (it imports every one of them)
        from worldflux.factory import create_world_model

        return create_world_model(model_id, **kwargs)

    def load_official(
        self,
        model_id: str,
        state: Mapping[str, Tensor],
        *,
        obs_shape: Sequence[int],
        action_dim: int,
        obs_keys: Sequence[str] | None = None,
    ) -> WorldModel:
        """Build ``model_id`` for the environment and load official weights (all or nothing).

        ``obs_keys`` (``"name:dims"`` entries) defaults to the vector keys the official decoder
        weights name (``dec/vec/<key>/pred``; a 1-wide output is read as a scalar key), unless
        that is the single key ``obs``.
        """
        if obs_keys is None:
            obs_keys = infer_obs_keys(state)
        extra: dict[str, Any] = {"obs_keys": list(obs_keys)} if obs_keys else {}
        model = self.build(
            model_id, obs_shape=tuple(obs_shape), action_dim=int(action_dim), **extra
        )
        load_official_weights(model, state)
        return model.eval()

    def check_golden(self, model_id: str, golden: Path) -> list[ParityRow]:
        """Recompute every ``outputs.*`` tensor of ``golden`` and compare it."""
        tensors, metadata = read_golden(golden)
        inputs = {k[len("inputs.") :]: v for k, v in tensors.items() if k.startswith("inputs.")}
        outputs = {k[len("outputs.") :]: v for k, v in tensors.items() if k.startswith("outputs.")}
        if not outputs or "deter" not in inputs:
            raise CheckpointError(f"{golden}: not a DreamerV3 golden file (no inputs/outputs)")
        obs_keys = golden_obs_keys(metadata)
        acts = json.loads(metadata.get("act_space", "{}"))
        action_dim = int(inputs["action"].shape[-1])
        if acts.get("action"):
            action_dim = int(acts["action"][-1])
        obs_dim = sum(
            int(torch.tensor(v.shape[1:]).prod()) if v.dim() > 1 else 1
            for k, v in inputs.items()
            if k.startswith("obs_")
        )
        with torch.inference_mode(False):
            model = self.load_official(
                model_id, tensors, obs_shape=(obs_dim,), action_dim=action_dim, obs_keys=obs_keys
            )
        ours = compute_outputs(model, inputs)
        rows: list[ParityRow] = []
        for name in sorted(outputs):
            golden_value = outputs[name]
            if name.endswith("_mean_jit") or name in ("rew_mean", "val_mean"):
                head = name.split("_")[0]
                value = ours.get(f"{head}_mean")
                if value is not None:
                    rows.append(
                        _twohot_row(
                            name,
                            value,
                            golden_value,
                            outputs[f"{head}_logits"],
                            outputs["twohot_bins"],
                        )
                    )
                    continue
            value = ours.get(name)
            atol, rtol = tolerance(name)
            if value is None:
                rows.append(
                    ParityRow(name, float("inf"), float("inf"), atol, rtol, (), "not computed")
                )
                continue
            rows.append(compare(name, value, golden_value, atol, rtol))
        return rows
