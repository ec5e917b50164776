"""Hypothesis strategies derived from a bound :class:`ModelIOContract`.

Hypothesis draws a small :class:`Case` (batch size, horizon, sequence length, seed, value scale,
action mode); :meth:`Case.materialize` turns it into tensors with a private ``torch.Generator``,
so the global RNG is untouched, examples shrink to readable values (``B=1, seed=0``) and the
printed falsifying example stays one line. The tensors themselves are saved to crash files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from worldflux.core.spec import ActionSpec, ModelIOContract, TensorSpec

__all__ = [
    "LARGE",
    "SCALES",
    "Case",
    "actions",
    "batch_sizes",
    "cases",
    "horizons",
    "observations",
    "random_action",
    "random_observation",
    "random_tensor",
    "seeds",
    "training_batches",
]

#: The largest magnitude drawn for float observations (finite, far outside a normalised range).
LARGE = 1e4
#: Value scales of float inputs; Hypothesis shrinks towards the first (unit scale).
SCALES: tuple[float, ...] = (1.0, 0.0, 1e-3, 100.0, LARGE)
#: Action modes: uniform inside the bounds, every entry at the low / high bound.
ACTION_MODES: tuple[str, ...] = ("uniform", "low", "high")


def random_tensor(
    spec: TensorSpec, lead: Sequence[int], gen: torch.Generator, scale: float = 1.0
) -> Tensor:
    """A ``[*lead, *spec.shape]`` tensor of ``spec``'s dtype with finite values.

    Floats are ``N(0, 1) * scale`` clipped to the spec's ``low``/``high``; ``uint8`` covers
    ``0..255``; other integers ``0..9`` (or the spec's bounds); bools are fair coins.
    """
    shape = (*lead, *(int(d) for d in spec.shape))
    dtype = spec.torch_dtype
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) < 0.5
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    if not dtype.is_floating_point:
        low = int(spec.low) if spec.low is not None else 0
        high = int(spec.high) + 1 if spec.high is not None else 10
        return torch.randint(low, high, shape, generator=gen, dtype=dtype)
    values = torch.randn(shape, generator=gen, dtype=torch.float32) * scale
    if spec.low is not None or spec.high is not None:
        values = values.clamp(spec.low, spec.high)
    return values.to(dtype)


def random_observation(
    contract: ModelIOContract, lead: Sequence[int], gen: torch.Generator, scale: float = 1.0
) -> Tensor | dict[str, Tensor]:
    """Observations ``[*lead, *obs_shape]``: a tensor (one modality ``obs``) or a dict."""
    if contract.single_modality:
        return random_tensor(contract.observation["obs"], lead, gen, scale)
    return {k: random_tensor(s, lead, gen, scale) for k, s in contract.observation.items()}


def random_action(
    action: ActionSpec, lead: Sequence[int], gen: torch.Generator, mode: str = "uniform"
) -> Tensor:
    """Valid actions ``[*lead, A]`` in ``[low, high]`` (continuous) or ``[*lead]`` indices."""
    dim = int(action.dim)
    if action.kind == "discrete":
        if mode == "low":
            return torch.zeros(tuple(lead), dtype=torch.int64)
        if mode == "high":
            return torch.full(tuple(lead), dim - 1, dtype=torch.int64)
        return torch.randint(0, dim, tuple(lead), generator=gen, dtype=torch.int64)
    shape = (*lead, dim)
    if mode == "low":
        return torch.full(shape, float(action.low))
    if mode == "high":
        return torch.full(shape, float(action.high))
    unit = torch.rand(shape, generator=gen)
    return float(action.low) + (float(action.high) - float(action.low)) * unit


@dataclass(frozen=True)
class Case:
    """One drawn example: sizes, a seed and value scales. ``materialize`` builds the tensors.

    Attributes:
        batch: ``B``; horizon: ``H`` of rollouts; seq: ``T`` of training batches.
        seed: seeds the tensor generator and the model's RNG (``inputs["seed"]``).
        scale: magnitude of float observations; action_mode: see :data:`ACTION_MODES`.
        pick: selects the sample index ``i`` and the perturbed sample ``j`` (when ``B >= 2``).
    """

    batch: int
    horizon: int
    seq: int
    seed: int
    scale: float
    action_mode: str
    pick: int = 0

    def materialize(self, contract: ModelIOContract) -> dict[str, Any]:
        """Tensors for every check, from the bound ``contract``.

        Returns:
            ``obs [B, *obs]``, ``obs_alt [B, *obs]`` (an independent draw), ``action [B, A]``,
            ``actions [B, H, A]``, ``batch`` (``[B, T, ...]`` dict of the declared batch keys),
            ``seed`` (int), ``i`` and ``j`` (distinct sample indices when ``B >= 2``).
        """
        gen = torch.Generator().manual_seed(self.seed)
        b, h, t = self.batch, self.horizon, self.seq
        obs = random_observation(contract, (b,), gen, self.scale)
        obs_alt = random_observation(contract, (b,), gen, self.scale)
        action = random_action(contract.action, (b,), gen, self.action_mode)
        actions = random_action(contract.action, (b, h), gen, self.action_mode)
        batch = training_batch(contract, b, t, gen, self.scale, self.action_mode)
        i = self.pick % b
        j = (i + 1 + (self.pick // b) % max(b - 1, 1)) % b if b > 1 else i
        return {
            "obs": obs,
            "obs_alt": obs_alt,
            "action": action,
            "actions": actions,
            "batch": batch,
            "seed": self.seed,
            "i": i,
            "j": j,
        }


def training_batch(
    contract: ModelIOContract,
    b: int,
    t: int,
    gen: torch.Generator,
    scale: float = 1.0,
    action_mode: str = "uniform",
) -> dict[str, Any]:
    """A ``[B, T, ...]`` training batch with every declared batch key.

    ``is_first[:, 0]`` is True; ``terminated`` is rare (p=0.1) and never at ``t = 0``;
    ``truncated`` is False; ``rewards`` are ``N(0, 1)``.
    """
    out: dict[str, Any] = {}
    for key in contract.batch_keys:
        if key == "obs":
            out[key] = random_observation(contract, (b, t), gen, scale)
        elif key == "actions":
            out[key] = random_action(contract.action, (b, t), gen, action_mode)
        elif key == "rewards":
            out[key] = torch.randn((b, t), generator=gen)
        elif key == "terminated":
            term = torch.rand((b, t), generator=gen) < 0.1
            term[:, 0] = False
            out[key] = term
        elif key == "truncated":
            out[key] = torch.zeros((b, t), dtype=torch.bool)
        elif key == "is_first":
            first = torch.zeros((b, t), dtype=torch.bool)
            first[:, 0] = True
            out[key] = first
        else:
            out[key] = torch.randn((b, t), generator=gen)
    return out


def cases(
    *,
    max_batch: int = 4,
    max_horizon: int = 4,
    seq_lens: Sequence[int] = (2, 3, 4),
    min_batch: int = 1,
    scales: Sequence[float] = SCALES,
) -> st.SearchStrategy[Case]:
    """Cases with ``B`` in ``[min_batch, max_batch]``, ``H`` in ``[1, max_horizon]``, ``T`` from
    ``seq_lens``, any 32-bit seed, a scale from ``scales`` and an action mode."""
    return st.builds(
        Case,
        batch=st.integers(min_batch, max(min_batch, max_batch)),
        horizon=st.integers(1, max(1, max_horizon)),
        seq=st.sampled_from(tuple(seq_lens)),
        seed=st.integers(0, 2**32 - 1),
        scale=st.sampled_from(tuple(scales)),
        action_mode=st.sampled_from(ACTION_MODES),
        pick=st.integers(0, 63),
    )


def clone_tree(tree: Any) -> Any:
    """A deep copy of nested dicts/lists of tensors (tensors cloned, other leaves shared)."""
    if isinstance(tree, Tensor):
        return tree.detach().clone()
    if isinstance(tree, Mapping):
        return {k: clone_tree(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(clone_tree(v) for v in tree)
    return tree


# -- building blocks for users' own properties -------------------------------------------------
def batch_sizes(max_batch: int = 4, min_batch: int = 1) -> st.SearchStrategy[int]:
    """``B`` in ``[min_batch, max_batch]`` (shrinks to ``min_batch``)."""
    return st.integers(min_batch, max(min_batch, max_batch))


def horizons(max_horizon: int = 4) -> st.SearchStrategy[int]:
    """``H`` in ``[1, max_horizon]``."""
    return st.integers(1, max(1, max_horizon))


def seeds() -> st.SearchStrategy[int]:
    """Any 32-bit seed (shrinks to 0)."""
    return st.integers(0, 2**32 - 1)


def _generated(build: Any) -> st.SearchStrategy[Any]:
    return st.builds(
        lambda seed, scale: build(torch.Generator().manual_seed(seed), scale),
        seeds(),
        st.sampled_from(SCALES),
    )


def observations(
    contract: ModelIOContract, batch: int | None = None, max_batch: int = 4
) -> st.SearchStrategy[Tensor | dict[str, Tensor]]:
    """Observations ``[B, *obs_shape]`` (a dict for several modalities) of a bound contract."""
    sizes = st.just(batch) if batch is not None else batch_sizes(max_batch)
    return sizes.flatmap(
        lambda b: _generated(lambda gen, scale: random_observation(contract, (b,), gen, scale))
    )


def actions(contract: ModelIOContract, lead: Sequence[int]) -> st.SearchStrategy[Tensor]:
    """Valid actions ``[*lead, A]`` (continuous, inside the bounds) or ``[*lead]`` indices."""
    return st.builds(
        lambda seed, mode: random_action(
            contract.action, tuple(lead), torch.Generator().manual_seed(seed), mode
        ),
        seeds(),
        st.sampled_from(ACTION_MODES),
    )


def training_batches(
    contract: ModelIOContract, max_batch: int = 4, seq_lens: Sequence[int] = (2, 3, 4)
) -> st.SearchStrategy[dict[str, Any]]:
    """Training batches ``[B, T, ...]`` with every declared batch key."""
    return st.tuples(batch_sizes(max_batch), st.sampled_from(tuple(seq_lens))).flatmap(
        lambda bt: _generated(lambda gen, scale: training_batch(contract, bt[0], bt[1], gen, scale))
    )
