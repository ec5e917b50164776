"""A preallocated episodic replay buffer with vectorised ``[B, T]`` window sampling.

Storage is a ring of ``capacity`` *rows*. An episode of ``L`` transitions occupies ``L + 1``
consecutive rows: row ``t`` holds ``obs_t``, the action taken after it, the reward and the
``terminated`` / ``truncated`` flags of the transition ``t -> t+1`` (the batch convention of
docs/slot-interfaces.md) and ``is_first`` (True on the episode's first row). The last row of an
episode holds its final observation with a zero action, a zero reward and both flags False; the
preceding row's ``terminated`` or ``truncated`` marks the end. While an episode runs, its newest
row looks the same (its action is filled in by the next :meth:`ReplayBuffer.add`).

Sampling draws windows of ``T`` consecutive rows that never cross an episode boundary, all at once
with tensor indexing (no Python loop over ``B x T``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from worldflux.core.types import Batch
from worldflux.training.errors import ReplayError
from worldflux.training.observations import flat_size, flatten, split

__all__ = ["ReplayBuffer"]

_ARRAYS = ("obs", "actions", "rewards", "terminated", "truncated", "is_first", "episode")
_FORMAT = 1


class ReplayBuffer:
    """Episodic ring buffer of preallocated tensors.

    Args:
        capacity: number of rows (steps) kept; the oldest are overwritten.
        obs_shape: per-step observation shape, e.g. ``(3,)`` or ``(3, 64, 64)``.
        action_dim: continuous action size ``A`` (actions stored ``[A]`` float32), or the number
            of discrete actions (stored as a ``[]`` int64 index).
        action_type: ``"continuous"`` or ``"discrete"``.
        obs_dtype: storage dtype of observations (``torch.uint8`` for rendered frames).
        seed: seed of the buffer's own sampling generator (part of its saved state).
        obs_layout: dict observations (key -> per-sample shape, see
            :mod:`worldflux.training.observations`): stored flat (``obs_shape`` must be ``(D,)``,
            the keys' total size), given to :meth:`begin_episode` / :meth:`add` as dicts and
            sampled as ``{key: [B, T, *shape]}``.

    Attributes:
        total: rows ever written (the replay position); ``size`` rows are held.
        episodes: episodes begun so far.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        action_dim: int,
        action_type: str = "continuous",
        obs_dtype: torch.dtype = torch.float32,
        seed: int = 0,
        obs_layout: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        if capacity < 2:
            raise ReplayError(f"replay capacity: expected at least 2 rows, found {capacity}")
        if action_type not in ("continuous", "discrete"):
            raise ReplayError(
                f"replay action_type: expected 'continuous' or 'discrete', found {action_type!r}"
            )
        self.capacity = int(capacity)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.action_dim = int(action_dim)
        self.action_type = action_type
        self.obs_dtype = obs_dtype
        n = self.capacity
        self.obs = torch.zeros((n, *self.obs_shape), dtype=obs_dtype)
        if action_type == "discrete":
            self.actions = torch.zeros(n, dtype=torch.int64)
        else:
            self.actions = torch.zeros((n, self.action_dim), dtype=torch.float32)
        self.rewards = torch.zeros(n, dtype=torch.float32)
        self.terminated = torch.zeros(n, dtype=torch.bool)
        self.truncated = torch.zeros(n, dtype=torch.bool)
        self.is_first = torch.zeros(n, dtype=torch.bool)
        self.episode = torch.full((n,), -1, dtype=torch.int64)
        self.total = 0
        self.episodes = 0
        self.episode_open = False
        self.generator = torch.Generator().manual_seed(int(seed))
        self.obs_layout: dict[str, tuple[int, ...]] | None = None
        if obs_layout is not None:
            self.set_obs_layout(obs_layout)

    def set_obs_layout(self, layout: Mapping[str, tuple[int, ...]]) -> None:
        """Serve the flat observations as dicts of ``layout``'s keys (kept out of the saved
        state: a loaded buffer gets its layout back from the environment)."""
        layout = {k: tuple(int(d) for d in layout[k]) for k in sorted(layout)}
        if self.obs_shape != (flat_size(layout),):
            raise ReplayError(
                f"replay obs layout {layout}: expected flat rows of shape "
                f"[{flat_size(layout)}], the buffer stores {list(self.obs_shape)}"
            )
        self.obs_layout = layout

    # -- writing ----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Rows currently held."""
        return min(self.total, self.capacity)

    @property
    def _oldest(self) -> int:
        return self.total - self.size

    def _check_obs(self, obs: Any) -> Tensor:
        if self.obs_layout is not None and isinstance(obs, Mapping):
            try:
                return flatten(obs, self.obs_layout, "replay obs").to(self.obs_dtype)
            except ValueError as error:
                raise ReplayError(str(error)) from None
        tensor = torch.as_tensor(np.asarray(obs))
        if tuple(tensor.shape) != self.obs_shape:
            raise ReplayError(
                f"replay obs: expected shape {list(self.obs_shape)}, found {list(tensor.shape)}"
            )
        return tensor.to(self.obs_dtype)

    def _check_action(self, action: Any) -> Tensor:
        act = torch.as_tensor(np.asarray(action))
        if self.action_type == "discrete":
            if act.numel() != 1:
                raise ReplayError(
                    f"replay action: expected one discrete index, found shape {list(act.shape)}"
                )
            return act.reshape(()).to(torch.int64)
        if tuple(act.shape) != (self.action_dim,):
            raise ReplayError(
                f"replay action: expected shape [{self.action_dim}], found {list(act.shape)}"
            )
        return act

    def _write_row(self, obs: Tensor, is_first: bool) -> None:
        i = self.total % self.capacity
        self.obs[i] = obs
        self.actions[i] = 0
        self.rewards[i] = 0.0
        self.terminated[i] = False
        self.truncated[i] = False
        self.is_first[i] = is_first
        self.episode[i] = self.episodes - 1
        self.total += 1

    def begin_episode(self, obs: Any) -> None:
        """Start an episode with its first observation ``[*obs_shape]``."""
        tensor = self._check_obs(obs)
        self.episodes += 1
        self.episode_open = True
        self._write_row(tensor, is_first=True)

    def add(
        self,
        action: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        next_obs: Any,
    ) -> None:
        """Record the transition from the newest row: its action (``[A]`` or an int), reward,
        flags, and the observation it led to (a new row)."""
        if not self.episode_open:
            raise ReplayError(
                "replay add: no episode is open; call begin_episode(obs) before adding transitions"
            )
        last = (self.total - 1) % self.capacity
        act = self._check_action(action)
        tensor = self._check_obs(next_obs)
        self.actions[last] = act
        self.rewards[last] = float(reward)
        self.terminated[last] = bool(terminated)
        self.truncated[last] = bool(truncated)
        self._write_row(tensor, is_first=False)
        if terminated or truncated:
            self.episode_open = False

    # -- sampling ---------------------------------------------------------------------------
    def num_windows(self, seq_len: int, cross_episodes: bool = False) -> int:
        """How many distinct ``seq_len`` windows lie inside one episode (O(size)), or, with
        ``cross_episodes``, how many windows of ``seq_len`` consecutive rows exist at all."""
        if cross_episodes:
            return max(0, self.size - seq_len + 1)
        return int(self._valid_starts(seq_len).numel())

    def _valid_starts(self, seq_len: int) -> Tensor:
        count = self.size - seq_len + 1
        if count <= 0:
            return torch.zeros(0, dtype=torch.int64)
        starts = torch.arange(self._oldest, self._oldest + count)
        ok = self._same_episode(starts, seq_len)
        return starts[ok]

    def _same_episode(self, starts: Tensor, seq_len: int) -> Tensor:
        first = self.episode[starts % self.capacity]
        last = self.episode[(starts + seq_len - 1) % self.capacity]
        return first == last

    def sample_indices(self, batch_size: int, seq_len: int, cross_episodes: bool = False) -> Tensor:
        """Logical start indices ``[B]`` of windows that stay inside one episode (or, with
        ``cross_episodes``, of any ``seq_len`` consecutive rows: uniform over the buffer, the
        official DreamerV3 replay; the model must then reset its carry at ``is_first``).

        Rejection sampling over all starts (vectorised), with an exact fallback when most starts
        are invalid. Uses only the buffer's own generator.

        Raises:
            ReplayError: no window of ``seq_len`` rows exists yet.
        """
        if batch_size < 1 or seq_len < 1:
            raise ReplayError(
                f"replay sample: expected batch_size >= 1 and seq_len >= 1, "
                f"found {batch_size} and {seq_len}"
            )
        count = self.size - seq_len + 1
        if count <= 0:
            raise ReplayError(
                f"replay sample: a window of {seq_len} steps needs at least {seq_len} rows, "
                f"the buffer holds {self.size}"
            )

        def draw(n: int) -> Tensor:
            return self._oldest + torch.randint(count, (n,), generator=self.generator)

        if cross_episodes:
            return draw(batch_size)
        return self._within_episodes(draw, batch_size, seq_len, f"{self.episodes} episodes")

    def _within_episodes(
        self, draw: Callable[[int], Tensor], batch_size: int, seq_len: int, where: str
    ) -> Tensor:
        """``batch_size`` window starts inside one episode: up to 4 rounds of ``draw(n)``
        candidates kept when their window stays in its episode, then uniform picks among the
        valid starts. ``where`` describes the buffer in the error of an empty result."""
        chosen: list[Tensor] = []
        need = batch_size
        for _ in range(4):
            cand = draw(max(2 * need, 32))
            good = cand[self._same_episode(cand, seq_len)][:need]
            chosen.append(good)
            need -= int(good.numel())
            if need == 0:
                return torch.cat(chosen)
        valid = self._valid_starts(seq_len)
        if valid.numel() == 0:
            raise ReplayError(
                f"replay sample: no episode holds {seq_len} consecutive steps yet "
                f"({self.size} rows in {where})"
            )
        pick = torch.randint(int(valid.numel()), (need,), generator=self.generator)
        chosen.append(valid[pick])
        return torch.cat(chosen)

    def sample(
        self,
        batch_size: int,
        seq_len: int,
        device: torch.device | str | None = None,
        normalize_images: bool = True,
        cross_episodes: bool = False,
    ) -> Batch:
        """A Batch of ``[B, T, ...]`` windows inside episodes (any ``T`` consecutive rows with
        ``cross_episodes``; ``is_first`` marks where a new episode starts inside a window).

        Keys: ``obs [B, T, *obs_shape]`` (uint8 frames become float32 in ``[0, 1]`` when
        ``normalize_images``; with an ``obs_layout`` a dict of ``[B, T, *shape]`` per key),
        ``actions [B, T, A]`` float32 (or ``[B, T]`` int64), ``rewards [B, T]`` float32,
        ``terminated``, ``truncated``, ``is_first`` ``[B, T]`` bool.
        """
        starts = self.sample_indices(batch_size, seq_len, cross_episodes)
        return self.gather(starts, seq_len, device=device, normalize_images=normalize_images)

    def gather(
        self,
        starts: Tensor,
        seq_len: int,
        device: torch.device | str | None = None,
        normalize_images: bool = True,
    ) -> Batch:
        """The windows starting at logical indices ``starts [B]`` (see :meth:`sample`)."""
        rows = self._window_rows(starts, seq_len)
        obs = self.obs[rows]
        if normalize_images and obs.dtype == torch.uint8:
            obs = obs.to(torch.float32).div_(255.0)
        batch = Batch(
            obs=obs if self.obs_layout is None else split(obs, self.obs_layout),
            actions=self.actions[rows],
            rewards=self.rewards[rows],
            terminated=self.terminated[rows],
            truncated=self.truncated[rows],
            is_first=self.is_first[rows],
        )
        return batch if device is None else batch.to(device)

    def _window_rows(self, starts: Tensor, seq_len: int) -> Tensor:
        """Storage rows ``[B, T]`` of the windows starting at ``starts [B]``."""
        return (starts[:, None] + torch.arange(seq_len)[None, :]) % self.capacity

    def grown(self, capacity: int) -> ReplayBuffer:
        """A copy with room for ``capacity`` rows, every held row kept at its logical index (so
        sampling is exactly what a buffer of that capacity from the start would give, as long as
        nothing was evicted yet) and the generator state carried over.

        Raises:
            ReplayError: ``capacity`` is smaller than the current one.
        """
        if capacity < self.capacity:
            raise ReplayError(
                f"replay grow: expected a capacity >= {self.capacity}, found {capacity}"
            )
        bigger = ReplayBuffer(
            capacity,
            self.obs_shape,
            self.action_dim,
            self.action_type,
            self.obs_dtype,
            obs_layout=self.obs_layout,
        )
        logical = torch.arange(self._oldest, self.total)
        for name in _ARRAYS:
            getattr(bigger, name)[logical % capacity] = getattr(self, name)[logical % self.capacity]
        bigger.total, bigger.episodes = self.total, self.episodes
        bigger.episode_open = self.episode_open
        bigger.generator.set_state(self.generator.get_state())
        return bigger

    # -- persistence ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able position and layout (the arrays are saved separately)."""
        return {
            "format": _FORMAT,
            "capacity": self.capacity,
            "obs_shape": list(self.obs_shape),
            "action_dim": self.action_dim,
            "action_type": self.action_type,
            "obs_dtype": str(self.obs_dtype).removeprefix("torch."),
            "total": self.total,
            "episodes": self.episodes,
            "episode_open": self.episode_open,
        }

    def save(self, directory: str | Path) -> None:
        """Write ``replay.safetensors`` (held rows + generator) and ``replay.json`` into an
        existing directory (callers make the directory write atomic)."""
        root = Path(directory)
        n = self.size
        tensors = {name: getattr(self, name)[:n].contiguous() for name in _ARRAYS}
        tensors["generator"] = self.generator.get_state()
        save_file(tensors, str(root / "replay.safetensors"))
        (root / "replay.json").write_text(json.dumps(self.state(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> ReplayBuffer:
        """Rebuild a buffer written by :meth:`save` (contents, position and generator)."""
        root = Path(directory)
        meta_path, data_path = root / "replay.json", root / "replay.safetensors"
        try:
            meta = json.loads(meta_path.read_text())
            tensors = load_file(str(data_path))
        except (OSError, json.JSONDecodeError, SafetensorError) as error:
            raise ReplayError(f"{root}: cannot read the replay buffer ({error})") from None
        if meta.get("format") != _FORMAT:
            raise ReplayError(
                f"{meta_path}: expected format {_FORMAT}, found {meta.get('format')!r}"
            )
        buffer = cls(
            capacity=int(meta["capacity"]),
            obs_shape=meta["obs_shape"],
            action_dim=int(meta["action_dim"]),
            action_type=str(meta["action_type"]),
            obs_dtype=getattr(torch, str(meta["obs_dtype"])),
        )
        buffer.total = int(meta["total"])
        buffer.episodes = int(meta["episodes"])
        buffer.episode_open = bool(meta["episode_open"])
        n = buffer.size
        for name in _ARRAYS:
            stored = tensors.get(name)
            target = getattr(buffer, name)
            if stored is None or tuple(stored.shape) != (n, *target.shape[1:]):
                found = None if stored is None else list(stored.shape)
                raise ReplayError(
                    f"{data_path}: tensor {name!r}: expected shape {[n, *target.shape[1:]]}, "
                    f"found {found}"
                )
            target[:n] = stored
        buffer.generator.set_state(tensors["generator"])
        return buffer
