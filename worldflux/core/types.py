"""The tensors that flow between slots: State, Batch, ModelOutput, LossOutput, Trajectory.

Everything is batch-major: ``B`` batch, ``T`` sequence, ``H`` horizon, ``A`` action dim.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from worldflux.core.exceptions import ContractViolation

__all__ = ["Batch", "LossOutput", "ModelOutput", "State", "Trajectory", "move_tree"]


def move_tree(
    tree: Any, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Any:
    """Move every tensor in a (nested) mapping; only floating tensors change ``dtype``."""
    if isinstance(tree, Tensor):
        if dtype is not None and tree.is_floating_point():
            return tree.to(device=device, dtype=dtype)
        return tree.to(device=device) if device is not None else tree
    if isinstance(tree, Mapping):
        return {k: move_tree(v, device, dtype) for k, v in tree.items()}
    return tree


class State(Mapping[str, Tensor]):
    """An immutable mapping of latent tensors, each ``[B, ...]`` (``[B, H+1, ...]`` when stacked).

    Example:
        >>> s = State({"latent": torch.zeros(4, 16)})
        >>> s.batch_size
        4
    """

    __slots__ = ("_tensors",)

    def __init__(self, tensors: Mapping[str, Tensor] | None = None, **kwargs: Tensor) -> None:
        merged = {**(tensors or {}), **kwargs}
        for key, value in merged.items():
            if not isinstance(value, Tensor):
                raise ContractViolation(
                    f"State[{key!r}]: expected a torch.Tensor, found {type(value).__name__}"
                )
        self._tensors: dict[str, Tensor] = merged

    def __getitem__(self, key: str) -> Tensor:
        try:
            return self._tensors[key]
        except KeyError:
            raise KeyError(
                f"State has no tensor {key!r}; it holds {sorted(self._tensors)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}: {list(v.shape)}" for k, v in self._tensors.items())
        return f"State({body})"

    @property
    def batch_size(self) -> int:
        """The leading dimension shared by every tensor (0 for an empty State)."""
        for value in self._tensors.values():
            return int(value.shape[0])
        return 0

    @property
    def device(self) -> torch.device:
        for value in self._tensors.values():
            return value.device
        return torch.device("cpu")

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """A copy on ``device``; floating tensors cast to ``dtype``."""
        return State(move_tree(self._tensors, device, dtype))

    def detach(self) -> State:
        return State({k: v.detach() for k, v in self._tensors.items()})

    def replace(self, **tensors: Tensor) -> State:
        """A copy with some tensors replaced or added."""
        return State({**self._tensors, **tensors})

    def index(self, i: int | slice, dim: int = 1) -> State:
        """Select along ``dim`` (e.g. step ``t`` of a stacked ``[B, H+1, ...]`` state)."""
        return State(
            {
                k: v.select(dim, i) if isinstance(i, int) else v[(slice(None),) * dim + (i,)]
                for k, v in self._tensors.items()
            }
        )

    def flatten(self, start: int = 0, end: int = 1) -> State:
        """Merge dims ``start..end`` of every tensor (``[B, T, ...] -> [B*T, ...]``)."""
        return State({k: v.flatten(start, end) for k, v in self._tensors.items()})

    @staticmethod
    def stack(states: Iterable[State], dim: int = 1) -> State:
        """Stack states with identical keys (and per-key shapes) along a new ``dim``.

        Raises:
            ContractViolation: the states disagree on their keys or on a tensor's shape.
        """
        items = list(states)
        if not items:
            return State()
        keys = list(items[0])
        for i, item in enumerate(items):
            if set(item) != set(keys):
                raise ContractViolation(
                    f"State.stack: state {i} has keys {sorted(item)}, state 0 has {sorted(keys)}"
                )
        stacked = {}
        for key in keys:
            shapes = {tuple(s[key].shape) for s in items}
            if len(shapes) > 1:
                raise ContractViolation(
                    f"State.stack: {key!r} has different shapes across states: "
                    f"{sorted(list(s) for s in shapes)}"
                )
            stacked[key] = torch.stack([s[key] for s in items], dim=dim)
        return State(stacked)

    def as_dict(self) -> dict[str, Tensor]:
        return dict(self._tensors)


class Batch(Mapping[str, Any]):
    """A training batch of ``[B, T, ...]`` tensors.

    Keys: ``obs`` (tensor, or dict of modality tensors), ``actions`` (``[B, T, A]`` float or
    ``[B, T]`` int64), ``rewards [B, T]``, ``terminated [B, T]`` bool, ``truncated [B, T]`` bool,
    ``is_first [B, T]`` bool. ``actions[:, t]`` is taken after observing ``obs[:, t]``;
    ``rewards[:, t]`` and ``terminated[:, t]`` result from it.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self._data: dict[str, Any] = {**(data or {}), **kwargs}

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise KeyError(f"Batch has no key {key!r}; it holds {sorted(self._data)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        def shape(v: Any) -> Any:
            if isinstance(v, Tensor):
                return list(v.shape)
            if isinstance(v, Mapping):
                return {k: shape(x) for k, x in v.items()}
            return type(v).__name__

        return f"Batch({ {k: shape(v) for k, v in self._data.items()} })"

    def _first_tensor(self) -> Tensor:
        for value in self._data.values():
            if isinstance(value, Tensor):
                return value
            if isinstance(value, Mapping):
                for inner in value.values():
                    if isinstance(inner, Tensor):
                        return inner
        raise ContractViolation("Batch holds no tensor")

    @property
    def batch_size(self) -> int:
        return int(self._first_tensor().shape[0])

    @property
    def seq_len(self) -> int:
        return int(self._first_tensor().shape[1])

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Batch:
        return Batch(move_tree(self._data, device, dtype))

    def replace(self, **values: Any) -> Batch:
        return Batch({**self._data, **values})

    def as_dict(self) -> dict[str, Any]:
        return dict(self._data)


@dataclass
class ModelOutput:
    """What ``decode`` returns: ``predictions`` such as ``reward [B]``, ``continue [B]``
    (probability), ``obs [B, *obs_shape]``, plus the state they were decoded from."""

    predictions: dict[str, Tensor] = field(default_factory=dict)
    state: State | None = None

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ModelOutput:
        return ModelOutput(
            predictions=move_tree(self.predictions, device, dtype),
            state=None if self.state is None else self.state.to(device, dtype),
        )


@dataclass
class LossOutput:
    """A training objective's result.

    Attributes:
        loss: the finite scalar to minimise.
        components: named scalar terms (exactly the spec's ``loss_components``).
        metrics: extra floats for logging.
    """

    loss: Tensor
    components: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> LossOutput:
        return LossOutput(
            loss=move_tree(self.loss, device, dtype),
            components=move_tree(self.components, device, dtype),
            metrics=dict(self.metrics),
        )


@dataclass
class Trajectory:
    """An open-loop rollout of ``H`` steps.

    Attributes:
        states: State with tensors ``[B, H+1, ...]`` (the start state included).
        actions: ``[B, H, A]`` (continuous) or ``[B, H]`` (discrete).
        rewards: ``[B, H]`` predicted rewards of each step.
        continues: ``[B, H]`` predicted continue probabilities.
        predictions: every decoded prediction, ``[B, H, ...]``.
    """

    states: State
    actions: Tensor
    rewards: Tensor
    continues: Tensor
    predictions: dict[str, Tensor] = field(default_factory=dict)

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[1])

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Trajectory:
        return Trajectory(
            states=self.states.to(device, dtype),
            actions=move_tree(self.actions, device, dtype),
            rewards=move_tree(self.rewards, device, dtype),
            continues=move_tree(self.continues, device, dtype),
            predictions=move_tree(self.predictions, device, dtype),
        )
