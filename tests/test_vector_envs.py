"""Vector environments (``--num-envs N``): one environment through the vector path is bitwise the
plain loop, every environment's episodes are their own replay stream with no transition across
an episode boundary, two-environment runs of both REFERENCE families train, checkpoint and
resume from ``--resume RUN_DIR`` alone."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from worldflux.cli import main
from worldflux.core.exceptions import CheckpointError, ConfigurationError
from worldflux.training.checkpoint import load_training_checkpoint
from worldflux.training.loop import RunConfig, RunSummary, train
from worldflux.training.replay_streams import StreamReplay
from worldflux.training.toy import registered_toy_model
from worldflux.training.trainer import Trainer

COUNTER_ID = "WFCounter-v0"
_TIMING = {"time_s", "updates_per_s", "env_steps_per_s"}


class CounterEnv(gym.Env):  # type: ignore[misc]
    """obs ``[t, L]``, reward ``t`` after step ``t``; each episode lasts ``L`` steps, drawn in
    3..7 from the environment's own RNG (environments end episodes at different steps)."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t, self.length = 0, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.length], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(3, 8))
        return self._obs(), {}

    def step(self, action: Any) -> Any:
        self.t += 1
        return self._obs(), float(self.t), self.t >= self.length, False, {}


if COUNTER_ID not in gym.registry:
    gym.register(COUNTER_ID, entry_point=CounterEnv)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy() -> Iterator[None]:
    with registered_toy_model(two_stage=True):
        yield


def _config(out: Path, **overrides: Any) -> RunConfig:
    settings: dict[str, Any] = {
        "model": "training_toy:ci",
        "env_id": "Pendulum-v1",
        "steps": 120,
        "out": str(out),
        "seed": 5,
        "max_episode_steps": 30,
        "seed_steps": 40,
        "pretrain_updates": 5,
        "batch_size": 8,
        "checkpoint_every": 60,
        "log_every": 20,
        "eval_every": 60,
        "progress": False,
    }
    settings.update(overrides)
    return RunConfig(**settings)


def _records(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in _TIMING} for row in rows]


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _streams(summary: RunSummary) -> tuple[StreamReplay, dict[str, Any]]:
    """The replay streams and the loop state of a finished run's checkpoint."""
    loaded = load_training_checkpoint(
        summary.out / "checkpoint", Trainer(summary.model), restore_rng=False
    )
    assert loaded.replay is not None
    vector = loaded.extra["vector"]
    return StreamReplay.adopt(loaded.replay, vector["replay"], "test"), loaded.extra


def _episodes(replay: StreamReplay, stream: int) -> list[torch.Tensor]:
    """Row indices of each episode of ``stream``, oldest first (split at ``is_first``)."""
    total, seg = replay.stream_total[stream], replay.segment
    rows = [stream * seg + t % seg for t in range(max(0, total - seg), total)]
    episodes: list[list[int]] = []
    for row in rows:
        if bool(replay.is_first[row]) or not episodes:
            episodes.append([])
        episodes[-1].append(row)
    return [torch.tensor(e) for e in episodes]


def _check_stream_layout(replay: StreamReplay, stream: int) -> list[torch.Tensor]:
    """Every episode of a stream: one id, ``is_first`` on its first row only, an end flag on the
    row before its last (unless still open), a zero action on its last row."""
    episodes = _episodes(replay, stream)
    for k, rows in enumerate(episodes):
        ids = replay.episode[rows]
        assert bool((ids == ids[0]).all()) and int(ids[0]) >= 0
        assert bool(replay.is_first[rows[0]]) and not bool(replay.is_first[rows[1:]].any())
        ends = replay.terminated[rows] | replay.truncated[rows]
        still_open = k == len(episodes) - 1 and replay.stream_open[stream]
        if not still_open:
            assert bool(ends[-2]) and not bool(ends[:-2].any()) and not bool(ends[-1])
            assert float(replay.actions[rows[-1]].abs().sum()) == 0.0
    return episodes


# -- one environment through the vector path == the plain loop -----------------------------------


@pytest.mark.parametrize("model", ["tdmpc2:ci", "dreamerv3:ci"])
def test_one_vector_env_is_bitwise_the_plain_loop(tmp_path: Path, model: str) -> None:
    overrides: dict[str, Any] = {"model": model, "steps": 100, "updates_per_step": 0.5}
    if model.startswith("dreamerv3"):
        overrides["seq_len"] = 8
    plain = train(_config(tmp_path / "plain", **overrides))
    vector = train(_config(tmp_path / "vector", num_envs=1, vector_mode="sync", **overrides))
    assert vector.actor == plain.actor != "random"
    assert vector.returns == plain.returns and vector.eval_returns == plain.eval_returns
    assert vector.updates == plain.updates > 0
    assert _records(tmp_path / "vector") == _records(tmp_path / "plain")
    assert _same_params(vector.model, plain.model)


def test_one_vector_env_resumes_bitwise(tmp_path: Path, toy: None) -> None:
    straight = train(_config(tmp_path / "straight", num_envs=1, vector_mode="sync"))
    first = train(_config(tmp_path / "resumed", steps=60, num_envs=1, vector_mode="sync"))
    assert first.env_steps == 60
    resumed = train(_config(tmp_path / "resumed", num_envs=1, vector_mode="sync"), resume=True)
    assert resumed.returns == straight.returns and resumed.updates == straight.updates
    assert _same_params(resumed.model, straight.model)


# -- replay streams ----------------------------------------------------------------------------


def test_each_env_is_its_own_stream_with_no_transition_across_episodes(
    tmp_path: Path, toy: None
) -> None:
    summary = train(
        _config(
            tmp_path / "run",
            env_id=COUNTER_ID,
            max_episode_steps=None,
            steps=200,
            num_envs=3,
            eval_every=0,
            checkpoint_every=10_000,
        )
    )
    assert summary.env_steps == 201  # 67 vector steps of 3: the first to reach 200
    replay, extra = _streams(summary)
    assert replay.streams == 3 and extra["vector"]["num_envs"] == 3
    assert sum(replay.stream_total) == 201 + sum(len(_episodes(replay, s)) for s in range(3))
    seen: set[int] = set()
    lengths: list[list[int]] = []
    for stream in range(3):
        episodes = _check_stream_layout(replay, stream)
        lengths.append([])
        for k, rows in enumerate(episodes):
            obs = replay.obs[rows]
            length = int(obs[0, 1])
            # the whole episode, in order, and nothing of another: t = 0, 1, ..., L
            open_ = k == len(episodes) - 1 and replay.stream_open[stream]
            assert bool((obs[:, 1] == length).all())
            assert obs[:, 0].tolist() == list(range(len(rows)))
            assert open_ or len(rows) == length + 1
            assert replay.rewards[rows[:-1]].tolist() == list(range(1, len(rows)))
            assert bool(replay.terminated[rows[-2]]) or open_
            lengths[stream].append(length)
            seen.add(int(replay.episode[rows[0]]))
    assert len(seen) == sum(len(_episodes(replay, s)) for s in range(3))  # ids unique
    assert lengths[0] != lengths[1] != lengths[2]  # each env its own seed: own episodes


def test_stream_replay_samples_only_inside_one_stream_and_episode() -> None:
    replay = StreamReplay(40, (1,), 1, seed=0, streams=2)
    for stream, length in ((0, 7), (1, 4)):
        for _ in range(3):
            replay.begin_episode(np.zeros(1), stream=stream)
            for t in range(length):
                replay.add(np.zeros(1), 0.0, t == length - 1, False, [t + 1.0], stream=stream)
    batch = replay.sample(64, 4)
    obs = batch["obs"][..., 0]
    assert bool((obs[:, 1:] - obs[:, :-1] == 1).all())  # consecutive steps of one episode
    # stream 0 keeps its newest 20 of 24 rows: 4 of its first episode (1 window) + 2 x 5;
    # stream 1 keeps all 15: 3 episodes of 5 rows, 2 windows each
    assert replay.num_windows(4) == 1 + 2 * 5 + 3 * 2
    assert replay.num_windows(4, cross_episodes=True) == (20 - 3) + (15 - 3)
    crossing = replay.sample(64, 6, cross_episodes=True)
    assert crossing["is_first"].shape == (64, 6)
    grown = replay.grown(80)
    assert grown.segment == 40 and grown.num_windows(4) == replay.num_windows(4)


# -- two environments, both REFERENCE families --------------------------------------------------


@pytest.mark.parametrize("model", ["tdmpc2:ci", "dreamerv3:ci"])
def test_two_envs_train_both_reference_families(tmp_path: Path, model: str) -> None:
    extra = {"seq_len": 8} if model.startswith("dreamerv3") else {}
    summary = train(
        _config(
            tmp_path / "run",
            model=model,
            steps=300,
            max_episode_steps=50,
            seed_steps=100,
            pretrain_updates=10,
            updates_per_step=0.25,
            num_envs=2,
            eval_every=0,
            checkpoint_every=10_000,
            **extra,
        )
    )
    assert summary.env_steps == 300 and summary.episodes == 6 and summary.updates > 0
    assert summary.actor != "random"
    replay, _ = _streams(summary)
    for stream in range(2):
        episodes = _check_stream_layout(replay, stream)
        assert [len(rows) for rows in episodes] == [51, 51, 51]
        assert all(bool(replay.truncated[rows[-2]]) for rows in episodes)
    records = _records(summary.out)
    train_records = [r for r in records if r["kind"] == "train"]
    assert train_records and all(math.isfinite(r["loss"]) for r in train_records)
    assert sorted(r["env"] for r in records if r["kind"] == "episode") == [0, 0, 0, 1, 1, 1]


# -- checkpoints and resume ---------------------------------------------------------------------


def test_two_envs_resume_from_the_run_directory_alone(
    tmp_path: Path, toy: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    first = train(_config(out, steps=100, num_envs=2, checkpoint_every=40))
    assert first.env_steps == 100
    saved = json.loads((out / "run.json").read_text())
    assert saved["num_envs"] == 2 and saved["vector_mode"] is None
    before, _ = _streams(first)
    rows_before = list(before.stream_total)
    # the CLI needs the run directory alone (the toy model is registered in this process)
    assert main(["train", "--resume", str(out), "--steps", "180", "--no-progress"]) == 0
    assert "resume: steps 100 -> 180" in capsys.readouterr().out
    model = first.model
    after_summary = RunSummary(180, 0, 0, [], [], out, model)
    after, extra = _streams(after_summary)
    assert extra["loop"]["env_step"] == 180
    for stream in range(2):
        # the rows written before stay; every environment restarted its episode on resume
        total = after.stream_total[stream]
        assert total > rows_before[stream]
        restart = stream * after.segment + rows_before[stream] % after.segment
        assert bool(after.is_first[restart])
        _check_stream_layout(after, stream)
    with pytest.raises(CheckpointError, match="num_envs"):
        train(_config(out, steps=200, num_envs=3), resume=True)


def test_async_envs_collect_exactly_what_sync_envs_collect(tmp_path: Path, toy: None) -> None:
    sync = train(_config(tmp_path / "sync", steps=80, num_envs=2))
    asynchronous = train(_config(tmp_path / "async", steps=80, num_envs=2, vector_mode="async"))
    assert asynchronous.returns == sync.returns
    assert _same_params(asynchronous.model, sync.model)


def test_bad_vector_settings_are_refused(tmp_path: Path, toy: None) -> None:
    with pytest.raises(ConfigurationError, match="num_envs"):
        train(_config(tmp_path / "a", num_envs=0))
    with pytest.raises(ConfigurationError, match="vector_mode"):
        train(_config(tmp_path / "b", num_envs=2, vector_mode="threads"))


# -- acting for N environments at once ------------------------------------------------------------


class _FakePlanner:
    def __init__(self) -> None:
        self._prev_mean: torch.Tensor | None = None


class _FakeModel(torch.nn.Module):
    """``plan`` records its ``t0`` and the warm start it saw, then leaves a new one; ``act``
    returns as action and carry the number of calls since the row's last fresh start."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.planner = _FakePlanner()
        self.calls: list[tuple[bool, torch.Tensor | None]] = []

    def plan(self, obs: torch.Tensor, *, eval_mode: bool, t0: bool) -> torch.Tensor:
        prev = self.planner._prev_mean
        self.calls.append((t0, None if prev is None else prev.clone()))
        self.planner._prev_mean = torch.ones(3, obs.shape[0], 1)
        return torch.zeros(obs.shape[0], 1)

    def act(
        self, obs: torch.Tensor, carry: Any, *, is_first: bool, eval_mode: bool
    ) -> tuple[torch.Tensor, Any]:
        count = torch.zeros(obs.shape[0]) if carry is None or is_first else carry[0] + 1
        return count[:, None], (count, {"obs": obs})


def test_batch_planner_resets_the_warm_start_of_starting_envs_only() -> None:
    from worldflux.training.actors import PlannerActor
    from worldflux.training.vector_actors import BatchActor

    model = _FakeModel()
    actor = BatchActor(PlannerActor(model), 3)  # type: ignore[arg-type]
    obs = [np.zeros(2, dtype=np.float32)] * 3
    actor.act(obs, np.array([True, True, True]))
    actor.act(obs, np.array([False, False, False]))
    actor.act(obs, np.array([False, True, False]))
    (t0_all, _), (t0_none, warm), (t0_mixed, mixed) = model.calls
    assert t0_all and not t0_none and not t0_mixed
    assert warm is not None and bool((warm == 1).all())
    assert (
        mixed is not None and mixed[:, 1].abs().sum() == 0 and bool((mixed[:, [0, 2]] == 1).all())
    )
    with actor.planner_kept():
        model.planner._prev_mean = None  # an evaluation planning for its own environment
    assert model.planner._prev_mean is not None and model.planner._prev_mean.shape == (3, 3, 1)


def test_batch_policy_keeps_a_carry_per_env() -> None:
    from worldflux.training.actors import PolicyActor
    from worldflux.training.vector_actors import BatchActor

    model = _FakeModel()
    actor = BatchActor(PolicyActor(model), 3)  # type: ignore[arg-type]
    obs = [np.full(2, i, dtype=np.float32) for i in range(3)]
    steps = [
        [True, True, True],
        [False, False, False],
        [False, True, False],
        [True, False, False],
    ]
    seen = [actor.act(obs, np.array(first))[0:3] for first in steps]
    assert [[float(a[0]) for a in row] for row in seen] == [
        [0, 0, 0],
        [1, 1, 1],
        [2, 0, 2],
        [0, 1, 3],
    ]
    assert torch.equal(actor.carry[1]["obs"][:, 0], torch.tensor([0.0, 1.0, 2.0]))
