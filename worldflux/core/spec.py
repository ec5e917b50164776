"""Declarative model facts: maturity, capabilities and the I/O contract.

A :class:`ModelIOContract` describes every tensor a model takes and returns, *per sample*: the
leading batch (``B``) and time (``T``/``H``) dimensions are added by the ``validate_*`` helpers.
Shapes may hold symbols (``"latent_dim"``, ``"action_dim"``), small integer expressions
(``"stoch * classes"``) and the splice ``"*obs_shape"``; :meth:`ModelIOContract.bind` resolves them
against a config, the observation shape and the action dimension.
"""

from __future__ import annotations

import ast
import enum
import hashlib
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from worldflux.core.exceptions import ConfigurationError, ContractViolation, ShapeMismatchError
from worldflux.core.numerics import all_finite

__all__ = [
    "ActionSpec",
    "Capability",
    "Dim",
    "ModelIOContract",
    "ModelMaturity",
    "TensorSpec",
    "resolve_dim",
]


class ModelMaturity(str, enum.Enum):
    """How much a model promises; each level is an obligation the conformance suite checks."""

    SKELETON = "skeleton"
    EXPERIMENTAL = "experimental"
    REFERENCE = "reference"

    @property
    def rank(self) -> int:
        """0 for SKELETON, 1 for EXPERIMENTAL, 2 for REFERENCE."""
        return _MATURITY_ORDER.index(self)

    @classmethod
    def parse(cls, value: str | ModelMaturity) -> ModelMaturity:
        """Accept ``"reference"``, ``"REFERENCE"`` or a member."""
        if isinstance(value, ModelMaturity):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ConfigurationError(
                f"unknown maturity {value!r}: expected one of {names}"
            ) from None


_MATURITY_ORDER = (ModelMaturity.SKELETON, ModelMaturity.EXPERIMENTAL, ModelMaturity.REFERENCE)


class Capability(str, enum.Enum):
    """What a model can do beyond the five-slot interface every model has."""

    LATENT_DYNAMICS = "latent_dynamics"
    OBS_DECODER = "obs_decoder"
    REWARD_PRED = "reward_pred"
    CONTINUE_PRED = "continue_pred"
    VALUE = "value"
    POLICY = "policy"
    PLANNING = "planning"
    REPRESENTATION = "representation"
    GENERATIVE = "generative"


Dim = int | str
"""One entry of a symbolic shape: an int, a symbol, an expression or ``"*name"`` (a splice)."""

_BINARY_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
}


def resolve_dim(expr: Dim, symbols: Mapping[str, Any]) -> int:
    """Evaluate one symbolic dimension (``8``, ``"latent_dim"``, ``"stoch * classes"``).

    Raises:
        ConfigurationError: naming the unknown symbol or the malformed expression.
    """
    if isinstance(expr, bool):
        raise ConfigurationError(f"dimension {expr!r} is a bool, expected an int or a symbol")
    if isinstance(expr, int):
        return expr
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ConfigurationError(f"dimension {expr!r} is not a valid expression") from None

    def evaluate(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return evaluate(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in symbols:
                from worldflux.core.exceptions import did_you_mean

                raise ConfigurationError(
                    f"dimension {expr!r} uses unknown symbol {node.id!r}"
                    + did_you_mean(node.id, symbols)
                )
            value = symbols[node.id]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(
                    f"symbol {node.id!r} in dimension {expr!r} is {value!r}, expected an int"
                )
            return value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            return _BINARY_OPS[type(node.op)](evaluate(node.left), evaluate(node.right))
        raise ConfigurationError(f"dimension {expr!r}: only ints, symbols and + - * // are allowed")

    try:
        value = evaluate(tree)
    except ZeroDivisionError:
        raise ConfigurationError(f"dimension {expr!r} divides by zero") from None
    if value < 0:
        raise ConfigurationError(f"dimension {expr!r} resolves to {value}, expected >= 0")
    return value


def symbols_of(expr: Dim) -> set[str]:
    """The symbol names a dimension refers to (``"*obs_shape"`` refers to ``obs_shape``)."""
    if isinstance(expr, int):
        return set()
    text = expr[1:] if expr.startswith("*") else expr
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


@dataclass(frozen=True)
class TensorSpec:
    """Per-sample shape (symbolic until bound), dtype and optional value bounds of one tensor.

    Attributes:
        shape: per-sample dims, without the leading batch/time dims.
        dtype: one of ``float32``, ``float64``, ``float16``, ``bfloat16``, ``int64``, ``int32``,
            ``uint8``, ``bool``, each meaning exactly that dtype; ``"float"`` accepts any
            floating dtype (the model casts).
        low, high: inclusive value bounds, or None.
    """

    shape: tuple[Dim, ...] = ()
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.dtype != "float" and self.dtype not in _DTYPES:
            raise ConfigurationError(
                f"unknown dtype {self.dtype!r}: expected one of float, {', '.join(_DTYPES)}"
            )

    @property
    def is_bound(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype (``float`` maps to float32)."""
        return _DTYPES.get(self.dtype, torch.float32)

    def bind(self, symbols: Mapping[str, Any]) -> TensorSpec:
        """Resolve every symbolic dim; ``"*name"`` splices a tuple symbol such as ``obs_shape``."""
        dims: list[int] = []
        for d in self.shape:
            if isinstance(d, str) and d.startswith("*"):
                name = d[1:]
                value = symbols.get(name)
                if value is None:
                    from worldflux.core.exceptions import did_you_mean

                    raise ConfigurationError(
                        f"shape entry {d!r} splices unknown symbol {name!r}"
                        + did_you_mean(name, symbols)
                    )
                if isinstance(value, int | str) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value
                ):
                    raise ConfigurationError(
                        f"shape entry {d!r} splices {name}={value!r}, expected a tuple of ints"
                    )
                dims.extend(int(v) for v in value)
            else:
                dims.append(resolve_dim(d, symbols))
        return replace(self, shape=tuple(dims))

    def symbols(self) -> set[str]:
        """Every symbol the shape refers to."""
        out: set[str] = set()
        for d in self.shape:
            out |= symbols_of(d)
        return out

    def validate(
        self,
        name: str,
        tensor: Any,
        lead: Sequence[int | None] = (),
        lead_names: Sequence[str] = ("B", "T"),
    ) -> None:
        """Check type, dtype, rank, shape (after the ``lead`` dims) and finiteness.

        Args:
            name: the tensor's name in error messages (``"obs"``, ``"batch['actions']"``).
            tensor: the value to check.
            lead: expected leading dims (``None`` = any size), e.g. ``(B,)`` or ``(B, T)``.
            lead_names: how messages call free leading dims (``("B", "H")`` in a rollout).

        Raises:
            ContractViolation / ShapeMismatchError: naming ``name``, expected and found.
        """
        if not isinstance(tensor, torch.Tensor):
            raise ContractViolation(
                f"{name}: expected a torch.Tensor, found {type(tensor).__name__}"
            )
        if not self.is_bound:
            raise ContractViolation(f"{name}: contract is not bound (shape {self.shape})")
        self._check_dtype(name, tensor)
        expected_rank = len(lead) + len(self.shape)
        found = tuple(tensor.shape)
        pretty = _pretty_shape(lead, self.shape, lead_names)
        if tensor.dim() != expected_rank:
            raise ShapeMismatchError(
                f"{name}: expected rank {expected_rank} with shape {pretty}, "
                f"found rank {tensor.dim()} with shape {list(found)}"
            )
        for i, want in enumerate((*lead, *self.shape)):
            if want is not None and found[i] != want:
                raise ShapeMismatchError(
                    f"{name}: expected shape {pretty}, found {list(found)} (dim {i})"
                )
        if tensor.is_floating_point() and not all_finite(tensor):
            raise ContractViolation(f"{name}: expected finite values, found NaN or inf")

    def _check_dtype(self, name: str, tensor: torch.Tensor) -> None:
        if self.dtype == "float":  # any floating dtype: the model casts as it needs
            ok = tensor.is_floating_point()
        else:  # exact: a declared float32 is float32, never float64 or float16
            ok = tensor.dtype == _DTYPES[self.dtype]
        if not ok:
            raise ContractViolation(
                f"{name}: expected dtype {self.dtype}, "
                f"found {str(tensor.dtype).removeprefix('torch.')}"
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.low is not None:
            out["low"] = self.low
        if self.high is not None:
            out["high"] = self.high
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(
            shape=tuple(data.get("shape", ())),
            dtype=str(data.get("dtype", "float32")),
            low=data.get("low"),
            high=data.get("high"),
        )


def _fingerprint(contract: Mapping[str, Any]) -> str:
    text = json.dumps(contract, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pretty_shape(
    lead: Sequence[int | None], shape: Sequence[Dim], names: Sequence[str] = ("B", "T")
) -> str:
    parts = [
        str(d) if d is not None else (names[i] if i < len(names) else "?")
        for i, d in enumerate(lead)
    ]
    return "[" + ", ".join([*parts, *map(str, shape)]) + "]"


@dataclass(frozen=True)
class ActionSpec:
    """The action space: ``continuous`` actions are ``[A]`` floats in ``[low, high]``,
    ``discrete`` actions are int64 indices in ``[0, dim)`` (shape ``[]`` per sample)."""

    kind: Literal["continuous", "discrete"] = "continuous"
    dim: Dim = "action_dim"
    low: float = -1.0
    high: float = 1.0

    def bind(self, symbols: Mapping[str, Any]) -> ActionSpec:
        return replace(self, dim=resolve_dim(self.dim, symbols))

    @property
    def tensor_spec(self) -> TensorSpec:
        """The per-sample tensor spec of one action."""
        if self.kind == "discrete":
            return TensorSpec(shape=(), dtype="int64", low=0, high=None)
        return TensorSpec(shape=(self.dim,), dtype="float", low=self.low, high=self.high)

    def validate(
        self,
        name: str,
        action: Any,
        lead: Sequence[int | None],
        lead_names: Sequence[str] = ("B", "T"),
    ) -> None:
        """Check an action tensor; discrete indices must lie in ``[0, dim)``."""
        self.tensor_spec.validate(name, action, lead, lead_names)
        if self.kind == "discrete" and action.numel():
            low, high = int(action.min()), int(action.max())
            if low < 0 or high >= int(self.dim):
                raise ContractViolation(
                    f"{name}: expected discrete action indices in [0, {self.dim}), "
                    f"found values in [{low}, {high}]"
                )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim, "low": self.low, "high": self.high}


def _specs_from(data: Mapping[str, Any] | None) -> dict[str, TensorSpec]:
    return {
        k: v if isinstance(v, TensorSpec) else TensorSpec.from_dict(v)
        for k, v in (data or {}).items()
    }


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
            observation=_specs_from(data.get("observation")),
            action=ActionSpec(
                kind=action.get("kind", "continuous"),
                dim=action.get("dim", "action_dim"),
                low=float(action.get("low", -1.0)),
                high=float(action.get("high", 1.0)),
            ),
            state=_specs_from(data.get("state")),
            predictions=_specs_from(data.get("predictions")),
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
