"""A replay buffer of several independent streams: one per environment of a vector run.

:class:`StreamReplay` splits the ``capacity`` rows of a :class:`ReplayBuffer` into ``streams``
equal segments, each a ring of its own: environment ``i`` writes its episodes (``begin_episode``
/ ``add`` with ``stream=i``) into segment ``i`` only, in the row layout of the base class, so an
episode's rows stay consecutive however the environments interleave. Episode ids are unique
across streams; windows are drawn uniformly over every stream's window starts and never leave a
stream (nor, without ``cross_episodes``, an episode).

The base class's saved state still describes the storage: ``total`` is the extent of the written
rows (the checkpoint keeps rows ``[0, size)``; rows a stream has not reached yet hold episode id
-1 and are never sampled). The per-stream positions are :meth:`StreamReplay.stream_state`, kept by
the caller (the vector loop saves them in the checkpoint's ``extra``) and applied to a loaded
buffer with :meth:`StreamReplay.adopt`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from worldflux.core.exceptions import CheckpointError
from worldflux.training.errors import ReplayError
from worldflux.training.replay import ReplayBuffer

_ARRAYS = ("obs", "actions", "rewards", "terminated", "truncated", "is_first", "episode")

__all__ = ["StreamReplay"]


class StreamReplay(ReplayBuffer):
    """``streams`` rings of ``capacity // streams`` rows (``capacity`` a multiple of ``streams``).

    Attributes:
        streams, segment: number of streams and rows per stream.
        stream_total: rows ever written per stream.
        stream_open: whether each stream has an open episode.
        stream_episode: the id of each stream's current (or last) episode.
        stream_floor: per stream, the logical index of its oldest row that holds data (rows
            below it were evicted before the buffer grew).
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
        streams: int = 2,
    ) -> None:
        if streams < 1 or capacity % streams or capacity // streams < 2:
            raise ReplayError(
                f"replay streams: expected a capacity that is a multiple of {streams} streams "
                f"with at least 2 rows each, found capacity {capacity}"
            )
        super().__init__(capacity, obs_shape, action_dim, action_type, obs_dtype, seed, obs_layout)
        self.streams = int(streams)
        self.segment = self.capacity // self.streams
        self.stream_total = [0] * self.streams
        self.stream_open = [False] * self.streams
        self.stream_episode = [-1] * self.streams
        self.stream_floor = [0] * self.streams
        self._stream = 0  # the stream _write_row writes to

    # -- writing ----------------------------------------------------------------------------
    def _check_stream(self, stream: int) -> int:
        if not 0 <= stream < self.streams:
            raise ReplayError(f"replay stream: expected 0..{self.streams - 1}, found {stream}")
        return stream

    def _row(self, stream: int, logical: int) -> int:
        return stream * self.segment + logical % self.segment

    def _write_row(self, obs: Tensor, is_first: bool) -> None:
        s = self._stream
        i = self._row(s, self.stream_total[s])
        self.obs[i] = obs
        self.actions[i] = 0
        self.rewards[i] = 0.0
        self.terminated[i] = False
        self.truncated[i] = False
        self.is_first[i] = is_first
        self.episode[i] = self.stream_episode[s]
        self.stream_total[s] += 1
        self._sync()

    def _sync(self) -> None:
        """The base class's view: ``total`` = the extent of written rows, ``episode_open``."""
        self.total = max(
            (s * self.segment + min(n, self.segment) for s, n in enumerate(self.stream_total)),
            default=0,
        )
        self.episode_open = any(self.stream_open)

    def begin_episode(self, obs: Any, stream: int = 0) -> None:
        """Start an episode of ``stream`` with its first observation."""
        s = self._check_stream(stream)
        tensor = self._check_obs(obs)
        self.episodes += 1
        self.stream_episode[s] = self.episodes - 1
        self.stream_open[s] = True
        self._stream = s
        self._write_row(tensor, is_first=True)

    def add(
        self,
        action: Any,
        reward: float,
        terminated: bool,
        truncated: bool,
        next_obs: Any,
        stream: int = 0,
    ) -> None:
        """Record a transition of ``stream`` (see :meth:`ReplayBuffer.add`)."""
        s = self._check_stream(stream)
        if not self.stream_open[s]:
            raise ReplayError(
                f"replay add: stream {s} has no open episode; call begin_episode(obs, stream={s})"
            )
        last = self._row(s, self.stream_total[s] - 1)
        act = self._check_action(action)
        tensor = self._check_obs(next_obs)
        self.actions[last] = act
        self.rewards[last] = float(reward)
        self.terminated[last] = bool(terminated)
        self.truncated[last] = bool(truncated)
        if terminated or truncated:
            self.stream_open[s] = False
        self._stream = s
        self._write_row(tensor, is_first=False)

    def drop_open_episodes(self) -> None:
        """End every open episode where it stands, as a time limit would: its last transition
        is marked ``truncated`` (its rows stay; the stream's next ``begin_episode`` starts a new
        one)."""
        for s in range(self.streams):
            n = self.stream_total[s]
            if self.stream_open[s] and n >= 2:
                prev = self._row(s, n - 2)
                if int(self.episode[prev]) == self.stream_episode[s]:
                    self.truncated[prev] = True
        self.stream_open = [False] * self.streams
        self._sync()

    # -- sampling ---------------------------------------------------------------------------
    def _held(self) -> list[tuple[int, int]]:
        """Per stream: (logical index of its oldest held row, rows held)."""
        out = []
        for n, floor in zip(self.stream_total, self.stream_floor, strict=True):
            oldest = max(n - min(n, self.segment), floor)
            out.append((oldest, n - oldest))
        return out

    def _starts(self, seq_len: int) -> tuple[Tensor, Tensor]:
        """Per stream: the logical index of its oldest held row and its number of windows."""
        held = self._held()
        oldest = torch.tensor([o for o, _ in held], dtype=torch.int64)
        counts = torch.tensor([max(0, h - seq_len + 1) for _, h in held], dtype=torch.int64)
        return oldest, counts

    def _window_rows(self, starts: Tensor, seq_len: int) -> Tensor:
        """``starts`` are storage rows; windows wrap inside their stream's segment."""
        base = (starts // self.segment) * self.segment
        offsets = (starts - base)[:, None] + torch.arange(seq_len)[None, :]
        return base[:, None] + offsets % self.segment

    def _same_episode(self, starts: Tensor, seq_len: int) -> Tensor:
        rows = self._window_rows(starts, seq_len)
        return self.episode[rows[:, 0]] == self.episode[rows[:, -1]]

    def _draw(self, n: int, oldest: Tensor, counts: Tensor) -> Tensor:
        """``n`` uniform window starts (storage rows) over every stream's windows."""
        cum = torch.cumsum(counts, 0)
        u = torch.randint(int(cum[-1]), (n,), generator=self.generator)
        stream = torch.searchsorted(cum, u, right=True)
        logical = oldest[stream] + u - (cum[stream] - counts[stream])
        return stream * self.segment + logical % self.segment

    def _valid_starts(self, seq_len: int) -> Tensor:
        oldest, counts = self._starts(seq_len)
        starts = [
            s * self.segment + torch.arange(int(o), int(o) + int(c)) % self.segment
            for s, (o, c) in enumerate(zip(oldest, counts, strict=True))
        ]
        every = torch.cat(starts) if starts else torch.zeros(0, dtype=torch.int64)
        return every[self._same_episode(every, seq_len)] if every.numel() else every

    def num_windows(self, seq_len: int, cross_episodes: bool = False) -> int:
        """Windows of ``seq_len`` rows inside one episode (or inside one stream)."""
        if cross_episodes:
            return int(self._starts(seq_len)[1].sum())
        return int(self._valid_starts(seq_len).numel())

    def sample_indices(self, batch_size: int, seq_len: int, cross_episodes: bool = False) -> Tensor:
        """Storage rows ``[B]`` where the windows start (see :meth:`ReplayBuffer.sample_indices`).

        Raises:
            ReplayError: no stream holds a window of ``seq_len`` rows yet.
        """
        if batch_size < 1 or seq_len < 1:
            raise ReplayError(
                f"replay sample: expected batch_size >= 1 and seq_len >= 1, "
                f"found {batch_size} and {seq_len}"
            )
        oldest, counts = self._starts(seq_len)
        if int(counts.sum()) <= 0:
            held = [h for _, h in self._held()]
            raise ReplayError(
                f"replay sample: a window of {seq_len} steps needs a stream holding at least "
                f"{seq_len} rows; the streams hold {held}"
            )
        if cross_episodes:
            return self._draw(batch_size, oldest, counts)
        where = f"{self.episodes} episodes, {self.streams} streams"
        return self._within_episodes(
            lambda n: self._draw(n, oldest, counts), batch_size, seq_len, where
        )

    # -- growing and checkpoints ------------------------------------------------------------
    def grown(self, capacity: int) -> StreamReplay:
        """A copy with ``capacity`` rows (a multiple of ``streams``), every held row of every
        stream kept at its logical index, the generator state carried over."""
        if capacity < self.capacity:
            raise ReplayError(
                f"replay grow: expected a capacity >= {self.capacity}, found {capacity}"
            )
        bigger = StreamReplay(
            capacity,
            self.obs_shape,
            self.action_dim,
            self.action_type,
            self.obs_dtype,
            obs_layout=self.obs_layout,
            streams=self.streams,
        )
        for s, (oldest, _) in enumerate(self._held()):
            logical = torch.arange(oldest, self.stream_total[s])
            new = s * bigger.segment + logical % bigger.segment
            old = s * self.segment + logical % self.segment
            for name in _ARRAYS:
                getattr(bigger, name)[new] = getattr(self, name)[old]
        bigger.episodes = self.episodes
        bigger.stream_total = list(self.stream_total)
        bigger.stream_open = list(self.stream_open)
        bigger.stream_episode = list(self.stream_episode)
        bigger.stream_floor = [oldest for oldest, _ in self._held()]
        bigger._sync()
        bigger.generator.set_state(self.generator.get_state())
        return bigger

    def stream_state(self) -> dict[str, Any]:
        """JSON-able per-stream positions (what :meth:`adopt` needs besides the storage)."""
        return {
            "streams": self.streams,
            "totals": list(self.stream_total),
            "open": list(self.stream_open),
            "episode": list(self.stream_episode),
            "floor": list(self.stream_floor),
        }

    @classmethod
    def adopt(cls, plain: ReplayBuffer, state: Any, where: str) -> StreamReplay:
        """The stream buffer whose storage ``plain`` (a loaded checkpoint's buffer) holds, with
        the positions of :meth:`stream_state`; the tensors and generator are shared.

        Raises:
            CheckpointError: ``state`` is malformed or does not fit the storage.
        """
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{where}: expected a mapping of replay stream positions")
        streams = state.get("streams")
        lists = {k: state.get(k) for k in ("totals", "open", "episode", "floor")}
        if type(streams) is not int or streams < 1 or plain.capacity % streams:
            raise CheckpointError(
                f"{where}: field 'streams': expected a divisor of the replay capacity "
                f"{plain.capacity}, found {streams!r}"
            )
        for key, value in lists.items():
            kind = bool if key == "open" else int
            if not (
                isinstance(value, list)
                and len(value) == streams
                and all(type(v) is kind for v in value)
            ):
                raise CheckpointError(
                    f"{where}: field {key!r}: expected {streams} {kind.__name__} values"
                )
        buffer = cls.__new__(cls)
        buffer.__dict__.update(plain.__dict__)
        buffer.streams, buffer.segment = streams, plain.capacity // streams
        buffer.stream_total = list(lists["totals"])  # type: ignore[arg-type]
        buffer.stream_open = list(lists["open"])  # type: ignore[arg-type]
        buffer.stream_episode = list(lists["episode"])  # type: ignore[arg-type]
        buffer.stream_floor = list(lists["floor"])  # type: ignore[arg-type]
        buffer._stream = 0
        if any(
            not 0 <= floor <= n
            for n, floor in zip(buffer.stream_total, buffer.stream_floor, strict=True)
        ) or any(not -1 <= e < max(plain.episodes, 1) for e in buffer.stream_episode):
            raise CheckpointError(f"{where}: stream positions out of range")
        total, open_ = plain.total, plain.episode_open
        buffer._sync()
        if (buffer.total, buffer.episode_open) != (total, open_):
            raise CheckpointError(
                f"{where}: the stream positions give {buffer.total} rows, the replay holds {total}"
            )
        return buffer
