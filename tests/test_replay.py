"""ReplayBuffer: preallocated storage, windows inside episodes, flags, ring wrap, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldflux.training.errors import ReplayError
from worldflux.training.replay import ReplayBuffer
from worldflux.training.replay_bench import measure_sampling_throughput

OBS = 2


def fill(
    buffer: ReplayBuffer, lengths: list[int], terminal_every: int = 2
) -> list[tuple[int, int]]:
    """Episodes of the given transition counts; obs = (episode, t). Returns (episode, t) rows."""
    rows = []
    for e, length in enumerate(lengths):
        buffer.begin_episode(np.array([e, 0], dtype=np.float32))
        rows.append((e, 0))
        for t in range(length):
            last = t == length - 1
            terminated = last and e % terminal_every == 0
            buffer.add(
                np.array([e + t / 1000], dtype=np.float32),
                float(100 * e + t),
                terminated,
                last and not terminated,
                np.array([e, t + 1], dtype=np.float32),
            )
            rows.append((e, t + 1))
    return rows


def test_storage_is_preallocated_and_written_in_place() -> None:
    buffer = ReplayBuffer(64, (OBS,), 1)
    pointers = [buffer.obs.data_ptr(), buffer.actions.data_ptr(), buffer.rewards.data_ptr()]
    assert buffer.obs.shape == (64, OBS) and buffer.actions.shape == (64, 1)
    fill(buffer, [10, 12])
    assert [buffer.obs.data_ptr(), buffer.actions.data_ptr(), buffer.rewards.data_ptr()] == (
        pointers
    )
    assert buffer.total == 24 and buffer.size == 24 and buffer.episodes == 2


def test_row_layout_follows_the_batch_convention() -> None:
    buffer = ReplayBuffer(64, (OBS,), 1)
    fill(buffer, [3, 2])
    # episode 0: rows 0..3; episode 1: rows 4..6
    assert buffer.is_first[:7].tolist() == [True, False, False, False, True, False, False]
    assert buffer.rewards[:4].tolist() == [0.0, 1.0, 2.0, 0.0]  # row t holds r(t -> t+1)
    assert buffer.terminated[:7].tolist() == [False, False, True, False, False, False, False]
    assert buffer.truncated[:7].tolist() == [False, False, False, False, False, True, False]
    assert buffer.actions[3].tolist() == [0.0]  # the final observation row has no action


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=12),
    capacity=st.integers(8, 200),
    seq_len=st.integers(1, 8),
    batch=st.integers(1, 16),
    seed=st.integers(0, 2**16),
)
def test_windows_stay_inside_one_episode(
    lengths: list[int], capacity: int, seq_len: int, batch: int, seed: int
) -> None:
    buffer = ReplayBuffer(capacity, (OBS,), 1, seed=seed)
    fill(buffer, lengths)
    if buffer.num_windows(seq_len) == 0:
        with pytest.raises(ReplayError, match=r"window|consecutive"):
            buffer.sample(batch, seq_len)
        return
    out = buffer.sample(batch, seq_len)
    obs = out["obs"]
    assert obs.shape == (batch, seq_len, OBS)
    assert out["actions"].shape == (batch, seq_len, 1)
    for key in ("rewards", "terminated", "truncated", "is_first"):
        assert out[key].shape == (batch, seq_len)
    episode, step = obs[..., 0], obs[..., 1]
    assert torch.all(episode == episode[:, :1])  # one episode per window
    assert torch.all(step[:, 1:] - step[:, :-1] == 1)  # consecutive steps
    # is_first only where the step index is 0; rewards match their (episode, t) rows
    assert torch.equal(out["is_first"], step == 0)
    final = step == torch.tensor(lengths, dtype=obs.dtype)[episode.long()]
    expected = torch.where(final, torch.zeros_like(step), 100 * episode + step)
    assert torch.equal(out["rewards"], expected)


def test_terminated_and_truncated_are_kept_apart() -> None:
    buffer = ReplayBuffer(256, (OBS,), 1, seed=0)
    fill(buffer, [5] * 10)
    out = buffer.sample(64, 2)
    assert out["terminated"].any() and out["truncated"].any()
    assert not (out["terminated"] & out["truncated"]).any()
    ep = out["obs"][..., 0]
    assert torch.all(out["terminated"] <= (ep % 2 == 0))
    assert torch.all(out["truncated"] <= (ep % 2 == 1))


def test_ring_overwrites_the_oldest_rows() -> None:
    buffer = ReplayBuffer(16, (OBS,), 1, seed=0)
    fill(buffer, [6] * 5)  # 35 rows into 16
    assert buffer.total == 35 and buffer.size == 16
    out = buffer.sample(200, 3)
    assert float(out["obs"][..., 0].min()) >= 2  # episodes 0 and 1 are gone entirely


def test_sampling_is_vectorised_not_a_python_loop() -> None:
    buffer = ReplayBuffer(4096, (OBS,), 1, seed=0)
    fill(buffer, [100] * 30)
    calls = 0
    original = buffer._same_episode

    def counting(starts: torch.Tensor, seq_len: int) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return original(starts, seq_len)

    buffer._same_episode = counting  # type: ignore[method-assign]
    buffer.sample(256, 32)
    assert calls <= 4  # a handful of tensor ops for all 256 x 32 rows


def test_image_observations_are_stored_uint8_and_normalised_on_sampling() -> None:
    buffer = ReplayBuffer(32, (3, 4, 4), 2, obs_dtype=torch.uint8)
    frame = np.full((3, 4, 4), 255, dtype=np.uint8)
    buffer.begin_episode(frame)
    for _ in range(5):
        buffer.add(np.zeros(2), 0.0, False, False, frame)
    assert buffer.obs.dtype == torch.uint8
    assert buffer.sample(2, 3)["obs"].dtype == torch.float32
    assert float(buffer.sample(2, 3)["obs"].max()) == 1.0
    assert buffer.sample(2, 3, normalize_images=False)["obs"].dtype == torch.uint8


def test_discrete_actions() -> None:
    buffer = ReplayBuffer(32, (OBS,), 4, action_type="discrete")
    buffer.begin_episode(np.zeros(OBS))
    for a in range(6):
        buffer.add(a % 4, 0.0, False, False, np.zeros(OBS))
    out = buffer.sample(3, 4)
    assert out["actions"].dtype == torch.int64 and out["actions"].shape == (3, 4)


def test_save_load_round_trip_continues_identically(tmp_path: Path) -> None:
    buffer = ReplayBuffer(40, (OBS,), 1, seed=3)
    fill(buffer, [9] * 6)
    buffer.sample(4, 3)  # advance the generator
    buffer.save(tmp_path)
    loaded = ReplayBuffer.load(tmp_path)
    assert loaded.state() == buffer.state()
    for name in ("obs", "actions", "rewards", "terminated", "truncated", "is_first", "episode"):
        assert torch.equal(getattr(loaded, name), getattr(buffer, name)), name
    a, b = buffer.sample(8, 4), loaded.sample(8, 4)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_load_rejects_a_corrupt_file(tmp_path: Path) -> None:
    buffer = ReplayBuffer(40, (OBS,), 1)
    fill(buffer, [5])
    buffer.save(tmp_path)
    (tmp_path / "replay.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ReplayError, match="cannot read"):
        ReplayBuffer.load(tmp_path)


def test_misuse_gets_clear_errors() -> None:
    buffer = ReplayBuffer(16, (OBS,), 1)
    with pytest.raises(ReplayError, match="begin_episode"):
        buffer.add(np.zeros(1), 0.0, False, False, np.zeros(OBS))
    with pytest.raises(ReplayError, match=r"replay obs: expected shape \[2\], found \[3\]"):
        buffer.begin_episode(np.zeros(3))
    buffer.begin_episode(np.zeros(OBS))
    with pytest.raises(ReplayError, match=r"replay action: expected shape \[1\], found \[2\]"):
        buffer.add(np.zeros(2), 0.0, False, False, np.zeros(OBS))
    with pytest.raises(ReplayError, match="at least 5 rows"):
        buffer.sample(2, 5)
    buffer.add(np.zeros(1), 0.0, True, False, np.zeros(OBS))
    with pytest.raises(ReplayError, match="no episode is open"):
        buffer.add(np.zeros(1), 0.0, False, False, np.zeros(OBS))


def test_throughput_measurement_reports_rates() -> None:
    result = measure_sampling_throughput(
        capacity=10_000, batch_size=16, seq_len=64, episode_len=500, min_seconds=0.05
    )
    assert result["batches"] >= 1
    assert result["samples_per_s"] == pytest.approx(16 * result["batches_per_s"])
    assert result["steps_per_s"] == pytest.approx(64 * result["samples_per_s"])
