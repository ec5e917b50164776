"""Replay sampling: ``[16, 64]`` windows from a full 1M-step buffer (samples/s = windows/s)."""

from __future__ import annotations

from benchmarks import Skipped
from benchmarks.harness import Prepared, RunSettings, Workload

__all__ = ["WORKLOADS"]

CAPACITY = 1_000_000
BATCH, SEQ_LEN = 16, 64
OBS_DIM, ACTION_DIM = 24, 6
EPISODE_LEN = 1000


def _prepare(settings: RunSettings) -> Prepared:
    import torch

    try:
        from worldflux.training.replay import ReplayBuffer
    except ImportError as error:
        raise Skipped(f"worldflux.training.replay is not available yet ({error})") from None
    buffer = ReplayBuffer(CAPACITY, (OBS_DIM,), ACTION_DIM, seed=0)
    # Fill every row in bulk with the buffer's documented layout: episodes of EPISODE_LEN
    # transitions take EPISODE_LEN + 1 rows; is_first on each first row, truncated on the last
    # transition. Adding 1M rows one by one through `add` would take longer than the benchmark.
    gen = torch.Generator().manual_seed(0)
    buffer.obs.normal_(generator=gen)
    buffer.actions.uniform_(-1.0, 1.0, generator=gen)
    buffer.rewards.normal_(generator=gen)
    rows = torch.arange(CAPACITY)
    buffer.episode.copy_(rows // (EPISODE_LEN + 1))
    buffer.is_first.copy_(rows % (EPISODE_LEN + 1) == 0)
    buffer.truncated.copy_(rows % (EPISODE_LEN + 1) == EPISODE_LEN - 1)
    buffer.total = CAPACITY
    buffer.episodes = int(buffer.episode[-1]) + 1
    batches_per_op = 50

    def op() -> None:
        for _ in range(batches_per_op):
            buffer.sample(BATCH, SEQ_LEN)

    return Prepared(
        op=op,
        work_per_op=float(BATCH * batches_per_op),
        count_flops=False,
        details={
            "capacity": CAPACITY,
            "batch": BATCH,
            "seq_len": SEQ_LEN,
            "obs_shape": [OBS_DIM],
            "action_dim": ACTION_DIM,
            "episode_len": EPISODE_LEN,
            "batches_per_op": batches_per_op,
            "note": "a sample is one [T=64] window; one batch is 16 of them",
        },
    )


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="replay.sample",
        description="ReplayBuffer.sample B=16 x T=64 from a full 1M-step buffer (obs 24, act 6)",
        unit="samples/s",
        prepare=_prepare,
        runs=7,
        warmup=2,
        quick_runs=3,
    ),
)
