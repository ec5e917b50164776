"""Weight map between the official TD-MPC2 state_dict (nicklashansen/tdmpc2@e9f5932, tensordict
0.8.3) and ours, in both directions.

* ``_encoder.state.<i>.<p>`` <-> ``observation_encoder.net.<i>.<p>``
* ``_dynamics.<i>.<p>`` <-> ``dynamics_model.net.<i>.<p>``
* ``_reward.<i>.<p>`` <-> ``decoder_module.reward.<i>.<p>``
* ``_pi.<i>.<p>`` <-> ``decoder_module.pi.<i>.<p>``
* ``_Qs.params.<i>.{weight,bias,ln.weight,ln.bias}`` <->
  ``decoder_module.q.l<i>_{weight,bias,ln_weight,ln_bias}`` (trainable, stacked)
* ``_target_Qs_params.<i>.<p>`` <-> ``decoder_module.target_q.l<i>_<p>`` (buffers)
* ``_detach_Qs_params.<i>.<p>``: none; the official model shares them with ``_Qs`` (checked equal)
* ``log_std_min``, ``log_std_dif`` (int64 buffers): none; checked against the config

Every stacked Q tensor keeps its layout ``[num_q, ...]`` (head ``h`` at index ``h``). ``<p>`` is
``weight``, ``bias``, ``ln.weight`` or ``ln.bias``. Ours has one extra buffer,
``objective.scale.value`` (the running policy-loss scale, not part of the official model
state_dict), which loading leaves as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from worldflux.core.exceptions import CheckpointError
from worldflux.families.tdmpc2.hparams import hparams_from

if TYPE_CHECKING:
    from worldflux.core.model import WorldModel

__all__ = ["load_official_state", "official_to_ours", "ours_to_official", "to_official_state"]

_PREFIXES: tuple[tuple[str, str], ...] = (
    ("_encoder.state.", "observation_encoder.net."),
    ("_dynamics.", "dynamics_model.net."),
    ("_reward.", "decoder_module.reward."),
    ("_pi.", "decoder_module.pi."),
)
_Q_GROUPS: tuple[tuple[str, str], ...] = (
    ("_Qs.params.", "decoder_module.q."),
    ("_target_Qs_params.", "decoder_module.target_q."),
)
_Q_KEY = re.compile(r"^(\d+)\.(weight|bias|ln\.weight|ln\.bias)$")
_OURS_Q_KEY = re.compile(r"^l(\d+)_(weight|bias|ln_weight|ln_bias)$")
_DETACH = "_detach_Qs_params."
_BUFFERS = ("log_std_min", "log_std_dif")
#: Our entries that the official state_dict does not hold (left untouched by loading).
OURS_ONLY = ("objective.scale.value",)


def official_to_ours(key: str) -> str | None:
    """Our name of an official key; None for keys without a counterpart (detach copy, buffers)."""
    for theirs, ours in _PREFIXES:
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    for theirs, ours in _Q_GROUPS:
        if key.startswith(theirs):
            match = _Q_KEY.match(key[len(theirs) :])
            if match:
                return f"{ours}l{match.group(1)}_{match.group(2).replace('.', '_')}"
    return None


def ours_to_official(key: str) -> str | None:
    """The official name of one of our keys; None for ours-only entries."""
    for theirs, ours in _PREFIXES:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    for theirs, ours in _Q_GROUPS:
        if key.startswith(ours):
            match = _OURS_Q_KEY.match(key[len(ours) :])
            if match:
                return f"{theirs}{match.group(1)}.{match.group(2).replace('_', '.')}"
    return None


def _strip_weights_prefix(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """A golden file's ``weights.*`` entries without the prefix, the ``"model"`` entry of an
    official agent checkpoint (``TDMPC2.save``), or the mapping as it is."""
    inner = state.get("model")
    if isinstance(inner, Mapping):
        state = inner
    if any(k.startswith("weights.") for k in state):
        return {k[len("weights.") :]: v for k, v in state.items() if k.startswith("weights.")}
    return dict(state)


def load_official_state(model: WorldModel, state: Mapping[str, Any]) -> None:
    """Load an official state_dict (an agent checkpoint, or a golden file's ``weights.*``).

    Non-tensor entries of the official state_dict (``<group>.__batch_size``, ``__device``) are
    ignored.

    All or nothing: every problem is collected first and reported in one error.

    Raises:
        CheckpointError: naming the missing, unexpected and mis-shaped entries, a detach copy that
            differs from the online Q tensors, or log-std buffers that disagree with the config.
    """
    official = {
        k: v
        for k, v in _strip_weights_prefix(state).items()
        if isinstance(v, Tensor) and not k.endswith(("__batch_size", "__device"))
    }
    ours = model.state_dict()
    mapped: dict[str, Tensor] = {}
    unexpected: list[str] = []
    problems: list[str] = []
    for key, value in official.items():
        if key.startswith(_DETACH) or key in _BUFFERS:
            continue
        name = official_to_ours(key)
        if name is None or name not in ours:
            unexpected.append(key)
            continue
        if tuple(value.shape) != tuple(ours[name].shape):
            problems.append(
                f"{key}: expected shape {list(ours[name].shape)} (ours {name}), "
                f"found {list(value.shape)}"
            )
            continue
        mapped[name] = value
    missing = sorted(
        ours_to_official(k) or k for k in ours if k not in mapped and k not in OURS_ONLY
    )
    for key, value in official.items():
        if key.startswith(_DETACH):
            online = official.get("_Qs.params." + key[len(_DETACH) :])
            if online is not None and (
                online.shape != value.shape or not torch.equal(online, value)
            ):
                problems.append(f"{key}: differs from the online Q tensor it must share")
    hp = hparams_from(model.config)
    expected = {"log_std_min": hp.log_std_min, "log_std_dif": hp.log_std_max - hp.log_std_min}
    for key, want in expected.items():
        if key in official and float(official[key]) != float(want):
            problems.append(
                f"{key}: expected {want} (from the config), found {float(official[key])}"
            )
    if missing:
        problems.append(f"missing official entries: {missing}")
    if unexpected:
        problems.append(f"unexpected official entries: {sorted(unexpected)}")
    if problems:
        raise CheckpointError("official TD-MPC2 weights do not fit:\n" + "\n".join(problems))
    with torch.no_grad():
        for name, value in mapped.items():
            ours[name].copy_(value.to(ours[name].dtype))


def to_official_state(model: WorldModel) -> dict[str, Tensor]:
    """Our model's weights under the official names (incl. the detach copy and log-std buffers)."""
    out: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        name = ours_to_official(key)
        if name is None:
            continue
        out[name] = value.detach().clone()
        if name.startswith("_Qs.params."):
            out[_DETACH + name[len("_Qs.params.") :]] = out[name]
    hp = hparams_from(model.config)
    out["log_std_min"] = torch.tensor(int(hp.log_std_min))
    out["log_std_dif"] = torch.tensor(int(hp.log_std_max - hp.log_std_min))
    return out
