"""Official DreamerV3 parameter names and layouts <-> our modules.

Official names are the flattened JAX parameter paths (``dyn/dynin0/kernel``,
``rew/head/logits/bias``, ...), as in the golden files (README of
../shared/parity/dreamerv3). Layouts:

* dense kernels are ``(in, out)``; our ``Dense.weight`` is ``(out, in)`` -> transpose;
* block-diagonal kernels ``(G, in/G, out/G)`` are stored as they are;
* conv kernels are HWIO; our conv weights are OIHW -> ``permute(3, 2, 0, 1)``;
* biases and RMSNorm scales are stored as they are.

The slow critic (``slowval/``) is not part of the official trainable set; after a load it is set
to a copy of ``val`` (as the official code initialises it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from worldflux.core.exceptions import CheckpointError, ContractViolation
from worldflux.families.dreamerv3.decoder import DreamerDecoder
from worldflux.families.dreamerv3.encoder import DreamerEncoder
from worldflux.families.dreamerv3.objective import DreamerObjective
from worldflux.families.dreamerv3.rssm import RSSM
from worldflux.nn.heads import BinaryHead, PolicyHead, TwoHotHead
from worldflux.nn.nets import MLP

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["WeightEntry", "from_official", "load_official_weights", "to_official", "weight_map"]

Layout = Literal["dense", "same", "conv"]


@dataclass(frozen=True)
class WeightEntry:
    """One official parameter: its name, our parameter path and the layout conversion."""

    official: str
    ours: str
    layout: Layout


def _dense(out: list[WeightEntry], off: str, ours: str) -> None:
    out.append(WeightEntry(f"{off}/kernel", f"{ours}.weight", "dense"))
    out.append(WeightEntry(f"{off}/bias", f"{ours}.bias", "same"))


def _conv(out: list[WeightEntry], off: str, ours: str) -> None:
    out.append(WeightEntry(f"{off}/kernel", f"{ours}.weight", "conv"))
    out.append(WeightEntry(f"{off}/bias", f"{ours}.bias", "same"))


def _block(out: list[WeightEntry], off: str, ours: str) -> None:
    out.append(WeightEntry(f"{off}/kernel", f"{ours}.kernel", "same"))
    out.append(WeightEntry(f"{off}/bias", f"{ours}.bias", "same"))


def _norm(out: list[WeightEntry], off: str, ours: str) -> None:
    out.append(WeightEntry(f"{off}/scale", f"{ours}.scale", "same"))


def _mlp(out: list[WeightEntry], off: str, ours: str, mlp: MLP) -> None:
    for i in range(len(mlp.layers)):
        _dense(out, f"{off}/mlp/linear{i}", f"{ours}.mlp.layers.{i}.linear")
        _norm(out, f"{off}/mlp/norm{i}", f"{ours}.mlp.layers.{i}.norm")


def weight_map(model: WorldModel) -> list[WeightEntry]:
    """Every official trainable parameter of ``model`` with our name and layout, sorted."""
    enc, dyn, dec = model.observation_encoder, model.dynamics_model, model.decoder_module
    objective = getattr(model, "objective", None)
    if not (
        isinstance(enc, DreamerEncoder)
        and isinstance(dyn, RSSM)
        and isinstance(dec, DreamerDecoder)
        and isinstance(objective, DreamerObjective)
    ):
        raise ContractViolation(
            "the DreamerV3 weight map needs the dreamerv3 encoder, rssm, decoder and objective; "
            f"found {type(enc).__name__}, {type(dyn).__name__}, {type(dec).__name__}, "
            f"{type(objective).__name__}"
        )
    out: list[WeightEntry] = []
    e = "observation_encoder"
    if enc.vector is not None:
        for i in range(len(enc.vector.linears)):
            _dense(out, f"enc/mlp{i}", f"{e}.vector.linears.{i}")
            _norm(out, f"enc/mlp{i}norm", f"{e}.vector.norms.{i}")
    if enc.image is not None:
        for i in range(len(enc.image.convs)):
            _conv(out, f"enc/cnn{i}", f"{e}.image.convs.{i}")
            _norm(out, f"enc/cnn{i}norm", f"{e}.image.norms.{i}")
    d = "dynamics_model"
    for j in range(3):
        _dense(out, f"dyn/dynin{j}", f"{d}.dynin{j}.linear")
        _norm(out, f"dyn/dynin{j}norm", f"{d}.dynin{j}.norm")
    for i in range(len(dyn.dynhid)):
        _block(out, f"dyn/dynhid{i}", f"{d}.dynhid.{i}")
        _norm(out, f"dyn/dynhid{i}norm", f"{d}.dynhidnorm.{i}")
    _block(out, "dyn/dyngru", f"{d}.dyngru")
    for i in range(len(dyn.prior)):
        _dense(out, f"dyn/prior{i}", f"{d}.prior.{i}.linear")
        _norm(out, f"dyn/prior{i}norm", f"{d}.prior.{i}.norm")
    _dense(out, "dyn/priorlogit", f"{d}.priorlogit")
    for i in range(len(dyn.obs)):
        _dense(out, f"dyn/obs{i}", f"{d}.obs.{i}.linear")
        _norm(out, f"dyn/obs{i}norm", f"{d}.obs.{i}.norm")
    _dense(out, "dyn/obslogit", f"{d}.obslogit")
    c = "decoder_module"
    if dec.mlp is not None:
        for i in range(len(dec.mlp.layers)):
            _dense(out, f"dec/mlp/linear{i}", f"{c}.mlp.layers.{i}.linear")
            _norm(out, f"dec/mlp/norm{i}", f"{c}.mlp.layers.{i}.norm")
        for key in dec.vec_keys:
            _dense(out, f"dec/vec/{key}/pred", f"{c}.vec.{key}")
    if dec.image is not None:
        img = dec.image
        _block(out, "dec/sp0", f"{c}.image.sp0")
        _dense(out, "dec/sp1", f"{c}.image.sp1")
        _norm(out, "dec/sp1norm", f"{c}.image.sp1norm")
        _dense(out, "dec/sp2", f"{c}.image.sp2")
        _norm(out, "dec/spnorm", f"{c}.image.spnorm")
        n = len(img.convs)
        for j in range(n):
            _conv(out, f"dec/conv{n - 1 - j}", f"{c}.image.convs.{j}")
            _norm(out, f"dec/conv{n - 1 - j}norm", f"{c}.image.norms.{j}")
        _conv(out, "dec/imgout", f"{c}.image.imgout")
    rew: TwoHotHead = dec.rew
    _mlp(out, "rew", f"{c}.rew", rew.mlp)
    _dense(out, "rew/head/logits", f"{c}.rew.out")
    con: BinaryHead = dec.con
    _mlp(out, "con", f"{c}.con", con.mlp)
    _dense(out, "con/head/logit", f"{c}.con.out")
    pol: PolicyHead = objective.pol
    _mlp(out, "pol", "objective.pol", pol.mlp)
    if pol.discrete:
        _dense(out, "pol/head/action/logits", "objective.pol.logits")
    else:
        _dense(out, "pol/head/action/mean", "objective.pol.mean")
        _dense(out, "pol/head/action/stddev", "objective.pol.stddev")
    _mlp(out, "val", "objective.val", objective.val.mlp)
    _dense(out, "val/head/logits", "objective.val.out")
    return sorted(out, key=lambda w: w.official)


def _to_ours(value: Tensor, layout: Layout, like: Tensor) -> Tensor:
    """Official layout -> ours, shaped like ``like`` (scalar-output kernels keep ``(in, 1)``)."""
    if layout == "dense":
        return value.reshape(value.shape[0], -1).t()
    if layout == "conv":
        return value.permute(3, 2, 0, 1)
    return value.reshape(like.shape) if value.numel() == like.numel() else value


def _to_official(value: Tensor, layout: Layout) -> Tensor:
    if layout == "dense":
        return value.t()
    if layout == "conv":
        return value.permute(2, 3, 1, 0)
    return value


def from_official(
    model: WorldModel, state: Mapping[str, Tensor], *, prefix: str = "weights."
) -> dict[str, Tensor]:
    """Convert an official state (``prefix`` + official name -> tensor) to our parameter names.

    Entries without ``prefix`` (inputs/outputs of a golden file) are ignored when ``prefix`` is
    set and some keys carry it.

    Raises:
        CheckpointError: naming every missing, unexpected and mis-shaped entry.
    """
    has_prefix = any(k.startswith(prefix) for k in state) if prefix else False
    official = {
        (k[len(prefix) :] if has_prefix else k): v
        for k, v in state.items()
        if not has_prefix or k.startswith(prefix)
    }
    params = dict(model.named_parameters())
    entries = weight_map(model)
    expected = {w.official for w in entries}
    missing = sorted(expected - set(official))
    unexpected = sorted(set(official) - expected)
    converted: dict[str, Tensor] = {}
    misshaped: list[str] = []
    for w in entries:
        if w.official not in official:
            continue
        target = params[w.ours]
        value = _to_ours(official[w.official].detach(), w.layout, target)
        if tuple(value.shape) != tuple(target.shape):
            misshaped.append(
                f"{w.official}: official shape {list(official[w.official].shape)} does not fit "
                f"{w.ours} {list(target.shape)}"
            )
            continue
        converted[w.ours] = value
    if missing or unexpected or misshaped:
        lines = [f"missing: {name}" for name in missing]
        lines += [f"unexpected: {name}" for name in unexpected]
        lines += [f"mis-shaped: {line}" for line in misshaped]
        raise CheckpointError(
            f"official DreamerV3 weights do not fit {type(model).__name__} "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(misshaped)} "
            "mis-shaped); nothing was loaded:\n  " + "\n  ".join(lines)
        )
    return converted


@torch.no_grad()
def load_official_weights(
    model: WorldModel, state: Mapping[str, Tensor], *, prefix: str = "weights."
) -> None:
    """Load official weights into ``model`` (all or nothing) and copy ``val`` into ``slowval``."""
    converted = from_official(model, state, prefix=prefix)
    params = dict(model.named_parameters())
    for name, value in converted.items():
        params[name].copy_(value.to(params[name].dtype))
    objective = getattr(model, "objective", None)
    if isinstance(objective, DreamerObjective):
        objective.slowval.load_state_dict(objective.val.state_dict())


def to_official(model: WorldModel, *, prefix: str = "") -> dict[str, Tensor]:
    """Our trainable parameters under their official names and layouts."""
    params = dict(model.named_parameters())
    return {
        prefix + w.official: _to_official(params[w.ours].detach(), w.layout).clone()
        for w in weight_map(model)
    }
