"""The I/O contract of a model, and (re-exported) the declarative facts it is built from.

A :class:`ModelIOContract` describes every tensor a model takes and returns, *per sample*: the
leading batch (``B``) and time (``T``/``H``) dimensions are added by the ``validate_*`` helpers.
Shapes may hold symbols (``"latent_dim"``, ``"action_dim"``), small integer expressions
(``"stoch * classes"``) and the splice ``"*obs_shape"``; :meth:`ModelIOContract.bind` resolves them
against a config, the observation shape and the action dimension.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from worldflux.core.dims import Dim, resolve_dim, symbols_of
from worldflux.core.exceptions import ConfigurationError, ContractViolation
from worldflux.core.maturity import Capability, ModelMaturity
from worldflux.core.tensor_spec import ActionSpec, TensorSpec, specs_from

__all__ = [
    "ActionSpec",
    "Capability",
    "Dim",
    "ModelIOContract",
    "ModelMaturity",
    "TensorSpec",
    "resolve_dim",
    "symbols_of",
]


def _fingerprint(contract: Mapping[str, Any]) -> str:
    text = json.dumps(contract, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Batch keys every training batch has (per-sample, after the leading ``[B, T]``).
DEFAULT_BATCH_KEYS: tuple[str, ...] = (
    "obs",
    "actions",
    "rewards",
    "terminated",
    "truncated",
    "is_first",
)


@dataclass(frozen=True)
class ModelIOContract:
    """Everything a model takes and returns, per sample.

    Attributes:
        observation: modality name -> spec. A single modality named ``"obs"`` means observations
            are plain tensors ``[B, *shape]``; several modalities mean a dict of tensors.
        action: the action space.
        state: latent state tensor name -> spec (``State`` keys).
        predictions: ``decode`` output name -> spec (``reward []``, ``continue []``, ``obs [...]``).
        batch_keys: the keys a training batch must hold (``obs``, ``actions``, ``rewards``, ...).
        loss_components: exactly the names in ``LossOutput.components``.
        empty_batch: what a batch of zero samples (``B = 0``) gets: ``"error"`` (the default:
            a ContractViolation naming the tensor, raised by the input validation) or
            ``"empty"`` (correctly shaped empty outputs).
    """

    observation: Mapping[str, TensorSpec] = field(default_factory=dict)
    action: ActionSpec = field(default_factory=ActionSpec)
    state: Mapping[str, TensorSpec] = field(default_factory=dict)
    predictions: Mapping[str, TensorSpec] = field(default_factory=dict)
    batch_keys: tuple[str, ...] = DEFAULT_BATCH_KEYS
    loss_components: tuple[str, ...] = ()
    empty_batch: Literal["error", "empty"] = "error"

    def __post_init__(self) -> None:
        if self.empty_batch not in ("error", "empty"):
            raise ConfigurationError(
                f"io_contract.empty_batch: expected 'error' or 'empty', found {self.empty_batch!r}"
            )

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelIOContract:
        """Build from the spec's ``io_contract`` mapping."""
        action = data.get("action") or {}
        return cls(
            observation=specs_from(data.get("observation")),
            action=ActionSpec(
                kind=action.get("kind", "continuous"),
                dim=action.get("dim", "action_dim"),
                low=float(action.get("low", -1.0)),
                high=float(action.get("high", 1.0)),
            ),
            state=specs_from(data.get("state")),
            predictions=specs_from(data.get("predictions")),
            batch_keys=tuple(data.get("batch_keys", DEFAULT_BATCH_KEYS)),
            loss_components=tuple(data.get("loss_components", ())),
            empty_batch=data.get("empty_batch", "error"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "observation": {k: v.to_dict() for k, v in sorted(self.observation.items())},
            "action": self.action.to_dict(),
            "state": {k: v.to_dict() for k, v in sorted(self.state.items())},
            "predictions": {k: v.to_dict() for k, v in sorted(self.predictions.items())},
            "batch_keys": list(self.batch_keys),
            "loss_components": list(self.loss_components),
            # only when not the default, so fingerprints of existing checkpoints stay valid
            **({"empty_batch": self.empty_batch} if self.empty_batch != "error" else {}),
        }

    def fingerprint(self) -> str:
        """A stable hash of the contract, stored in checkpoints to detect mismatches."""
        return _fingerprint(self.to_dict())

    def accepted_fingerprints(self) -> set[str]:
        """:meth:`fingerprint` and those of the same contract as earlier releases wrote it:
        observations declared ``float`` were ``float32`` before dtypes became exact."""
        legacy = self.to_dict()
        for spec in legacy["observation"].values():
            if spec["dtype"] == "float":
                spec["dtype"] = "float32"
        return {self.fingerprint(), _fingerprint(legacy)}

    def at_precision(self, dtype: torch.dtype) -> ModelIOContract:
        """The contract of a model converted to ``dtype`` (``model.double()``,
        ``model.to(torch.bfloat16)``): every ``float32`` tensor it produces (states and
        predictions) is ``dtype`` instead (the declared ``float32`` is the model's precision,
        float32 unless it is converted). Observations keep their declared dtype: they describe
        the data, which the model casts to its precision."""
        if dtype == torch.float32:
            return self
        name = str(dtype).removeprefix("torch.")

        def convert(group: Mapping[str, TensorSpec]) -> dict[str, TensorSpec]:
            return {
                k: replace(v, dtype=name) if v.dtype == "float32" else v for k, v in group.items()
            }

        return replace(
            self,
            state=convert(self.state),
            predictions=convert(self.predictions),
        )

    # -- binding ------------------------------------------------------------------------------
    def symbols(self) -> set[str]:
        """Every symbol the contract refers to."""
        out: set[str] = set()
        for group in (self.observation, self.state, self.predictions):
            for spec in group.values():
                out |= spec.symbols()
        out |= symbols_of(self.action.dim)
        return out

    @property
    def is_bound(self) -> bool:
        return isinstance(self.action.dim, int) and all(
            s.is_bound
            for group in (self.observation, self.state, self.predictions)
            for s in group.values()
        )

    def bind(
        self,
        config: Any = None,
        obs_shape: Sequence[int] | None = None,
        action_dim: int | None = None,
        **extra: Any,
    ) -> ModelIOContract:
        """Resolve every symbol from ``config`` fields, ``obs_shape``, ``action_dim`` and ``extra``.

        ``obs_shape`` also defines ``obs_dim`` (its last entry) for vector observations. When the
        config (or ``extra``) has ``action_type``, it sets the bound action ``kind``: the
        environment decides whether actions are continuous ``[A]`` or discrete indices ``[]``.

        Raises:
            ConfigurationError: naming an unknown symbol or a malformed dimension.
        """
        symbols: dict[str, Any] = {}
        if config is not None:
            fields = config.model_dump() if hasattr(config, "model_dump") else dict(config)
            symbols.update({k: v for k, v in fields.items() if v is not None})
        if obs_shape is not None:
            symbols["obs_shape"] = tuple(int(d) for d in obs_shape)
        if symbols.get("obs_shape"):
            symbols.setdefault("obs_dim", int(symbols["obs_shape"][-1]))
        if action_dim is not None:
            symbols["action_dim"] = int(action_dim)
        symbols.update(extra)
        action = self.action.bind(symbols)
        action_type = symbols.get("action_type")
        if action_type in ("continuous", "discrete") and action_type != action.kind:
            # the environment (config.action_type) decides the action space of this instance
            action = replace(action, kind=action_type)
        return replace(
            self,
            observation={k: v.bind(symbols) for k, v in self.observation.items()},
            action=action,
            state={k: v.bind(symbols) for k, v in self.state.items()},
            predictions={k: v.bind(symbols) for k, v in self.predictions.items()},
        )

    # -- validation ---------------------------------------------------------------------------
    @property
    def single_modality(self) -> bool:
        """True when observations are one plain tensor (the modality is named ``obs``)."""
        return list(self.observation) == ["obs"]

    def validate_observation(
        self, obs: Any, lead: Sequence[int | None] = (None,), name: str = "obs"
    ) -> None:
        """Check observations ``[*lead, *shape]`` (a tensor, or a dict for several modalities)."""
        self._check_not_empty(name, obs, lead)
        if self.single_modality:
            self.observation["obs"].validate(name, obs, lead)
            return
        if not isinstance(obs, Mapping):
            raise ContractViolation(
                f"{name}: expected a dict with keys {sorted(self.observation)}, "
                f"found {type(obs).__name__}"
            )
        missing = sorted(set(self.observation) - set(obs))
        unexpected = sorted(set(obs) - set(self.observation))
        if missing or unexpected:
            raise ContractViolation(
                f"{name}: expected keys {sorted(self.observation)}, "
                f"missing {missing}, unexpected {unexpected}"
            )
        for key, spec in self.observation.items():
            spec.validate(f"{name}[{key!r}]", obs[key], lead)

    def validate_action(
        self,
        action: Any,
        lead: Sequence[int | None] = (None,),
        name: str = "action",
        lead_names: Sequence[str] = ("B", "T"),
    ) -> None:
        """Check actions ``[*lead, A]`` (continuous) or ``[*lead]`` int64 (discrete)."""
        self._check_not_empty(name, action, lead)
        self.action.validate(name, action, lead, lead_names)

    def _check_not_empty(self, name: str, value: Any, lead: Sequence[int | None]) -> None:
        """``empty_batch: error``: a free leading ``B`` of size 0 is a ContractViolation."""
        if self.empty_batch != "error" or not lead or lead[0] not in (None, 0):
            return
        first = next(iter(value.values()), None) if isinstance(value, Mapping) else value
        if isinstance(first, torch.Tensor) and first.dim() > 0 and first.shape[0] == 0:
            raise ContractViolation(
                f"{name}: expected a non-empty batch (B >= 1), found B = 0 "
                "(the contract declares empty_batch: error)"
            )

    def validate_state(
        self, state: Mapping[str, Any], lead: Sequence[int | None] = (None,), name: str = "state"
    ) -> None:
        """Check that a State holds every declared tensor with its declared shape."""
        if not isinstance(state, Mapping):
            raise ContractViolation(
                f"{name}: expected a State (mapping of tensors), found {type(state).__name__}"
            )
        missing = sorted(set(self.state) - set(state))
        if missing:
            raise ContractViolation(
                f"{name}: expected keys {sorted(self.state)}, missing {missing}, "
                f"found {sorted(state)}"
            )
        for key, spec in self.state.items():
            spec.validate(f"{name}[{key!r}]", state[key], lead)

    def validate_predictions(
        self,
        predictions: Mapping[str, Any],
        lead: Sequence[int | None] = (None,),
        name: str = "predictions",
    ) -> None:
        """Check that ``decode`` returned every declared prediction with its declared shape."""
        if not isinstance(predictions, Mapping):
            raise ContractViolation(
                f"{name}: expected a dict of tensors, found {type(predictions).__name__}"
            )
        missing = sorted(set(self.predictions) - set(predictions))
        if missing:
            raise ContractViolation(
                f"{name}: expected keys {sorted(self.predictions)}, missing {missing}"
            )
        for key, spec in self.predictions.items():
            spec.validate(f"{name}[{key!r}]", predictions[key], lead)

    def batch_specs(self) -> dict[str, TensorSpec]:
        """Per-step specs of the training batch keys (after the leading ``[B, T]``)."""
        specs: dict[str, TensorSpec] = {
            "actions": self.action.tensor_spec,
            "rewards": TensorSpec(shape=(), dtype="float"),
            "terminated": TensorSpec(shape=(), dtype="bool"),
            "truncated": TensorSpec(shape=(), dtype="bool"),
            "is_first": TensorSpec(shape=(), dtype="bool"),
        }
        return {k: specs[k] for k in self.batch_keys if k in specs}

    def validate_batch(self, batch: Mapping[str, Any], name: str = "batch") -> None:
        """Check a training batch: every declared key, each ``[B, T, ...]`` with one B and T."""
        if not isinstance(batch, Mapping):
            raise ContractViolation(
                f"{name}: expected a Batch (mapping), found {type(batch).__name__}"
            )
        missing = [k for k in self.batch_keys if k not in batch]
        if missing:
            raise ContractViolation(
                f"{name}: missing keys {missing}; expected {list(self.batch_keys)}, "
                f"found {sorted(batch)}"
            )
        obs = batch["obs"] if "obs" in self.batch_keys else None
        first = obs if isinstance(obs, torch.Tensor) else batch.get("actions")
        if isinstance(obs, Mapping) and obs:
            first = next(iter(obs.values()))
        if not isinstance(first, torch.Tensor) or first.dim() < 2:
            raise ContractViolation(
                f"{name}: tensors must be [B, T, ...]; found "
                f"{getattr(first, 'shape', type(first).__name__)}"
            )
        if self.empty_batch == "error" and first.shape[0] == 0:
            raise ContractViolation(
                f"{name}: expected a non-empty batch (B >= 1), found B = 0 "
                "(the contract declares empty_batch: error)"
            )
        lead = (int(first.shape[0]), int(first.shape[1]))
        if obs is not None:
            self.validate_observation(obs, lead, name=f"{name}['obs']")
        for key, spec in self.batch_specs().items():
            if key == "actions":
                self.action.validate(f"{name}['actions']", batch[key], lead)
            else:
                spec.validate(f"{name}[{key!r}]", batch[key], lead)

    def validate_loss(self, components: Mapping[str, Any], name: str = "loss.components") -> None:
        """Check that the loss components are exactly the declared names."""
        if set(components) != set(self.loss_components):
            raise ContractViolation(
                f"{name}: expected exactly {sorted(self.loss_components)}, "
                f"found {sorted(components)}"
            )
