"""Replay sampling throughput, for the benchmark suite (re-exported by
:mod:`worldflux.training.replay`)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from worldflux.training.replay import ReplayBuffer

__all__ = ["measure_sampling_throughput"]


def measure_sampling_throughput(
    capacity: int = 1_000_000,
    batch_size: int = 16,
    seq_len: int = 64,
    obs_shape: Sequence[int] = (24,),
    action_dim: int = 6,
    episode_len: int = 1000,
    min_seconds: float = 1.0,
    seed: int = 0,
    threads: int | None = 1,
) -> dict[str, float]:
    """Sampling throughput of a full buffer (for the benchmark suite).

    Fills a ``capacity``-row buffer with episodes of ``episode_len`` steps (random data written in
    bulk), then samples ``[batch_size, seq_len]`` windows for at least ``min_seconds``, with
    ``threads`` torch intra-op threads (None: leave torch's setting; the gathers are small, and
    extra threads only add wake-up stalls on a busy machine).

    Returns:
        ``batches_per_s``, ``samples_per_s`` (windows, i.e. ``batch_size`` per batch),
        ``steps_per_s`` (``batch_size * seq_len`` rows per batch), ``batches``, ``seconds``.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(
            capacity, batch_size, seq_len, obs_shape, action_dim, episode_len, min_seconds, seed
        )
    finally:
        torch.set_num_threads(before)


def _measure(
    capacity: int,
    batch_size: int,
    seq_len: int,
    obs_shape: Sequence[int],
    action_dim: int,
    episode_len: int,
    min_seconds: float,
    seed: int,
) -> dict[str, float]:
    buffer = ReplayBuffer(capacity, obs_shape, action_dim, seed=seed)
    g = torch.Generator().manual_seed(seed)
    buffer.obs.normal_(generator=g)
    buffer.actions.uniform_(-1.0, 1.0, generator=g)
    buffer.rewards.normal_(generator=g)
    rows = torch.arange(capacity)
    buffer.episode.copy_(rows // (episode_len + 1))
    buffer.is_first.copy_(rows % (episode_len + 1) == 0)
    buffer.truncated.copy_(rows % (episode_len + 1) == episode_len - 1)
    buffer.total = capacity
    buffer.episodes = int(buffer.episode[-1]) + 1
    buffer.sample(batch_size, seq_len)  # warm-up
    batches = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_seconds:
        buffer.sample(batch_size, seq_len)
        batches += 1
        elapsed = time.perf_counter() - start
    return {
        "batches_per_s": batches / elapsed,
        "samples_per_s": batches * batch_size / elapsed,
        "steps_per_s": batches * batch_size * seq_len / elapsed,
        "batches": float(batches),
        "seconds": elapsed,
    }
