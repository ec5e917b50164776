"""`worldflux dataset record --policy RUN_DIR` and `worldflux eval` of an online run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldflux.datasets.format import DatasetError
from worldflux.datasets.record import record_dataset
from worldflux.training.loop import RunConfig, train


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tdmpc2"
    train(
        RunConfig(
            model="tdmpc2:ci",
            env_id="Pendulum-v1",
            steps=40,
            out=str(out),
            seed_steps=20,
            pretrain_updates=2,
            max_episode_steps=20,
            progress=False,
            final_eval=False,
            threads=1,
        )
    )
    return out


def test_a_trained_run_records_its_own_behaviour(pendulum_run: Path, tmp_path: Path) -> None:
    kwargs = {"max_episode_steps": 10, "seed": 3}
    trained = record_dataset("Pendulum-v1", tmp_path / "a", 2, policy=str(pendulum_run), **kwargs)
    again = record_dataset("Pendulum-v1", tmp_path / "b", 2, policy=str(pendulum_run), **kwargs)
    random = record_dataset("Pendulum-v1", tmp_path / "c", 2, **kwargs)
    assert trained.meta.policy == str(pendulum_run) and len(trained) == 2
    first = trained.episode(0).actions
    assert first.shape == (10, 1) and np.abs(first).max() <= 1.0
    assert np.array_equal(first, again.episode(0).actions)  # eval mode: the plan mean, seeded
    assert not np.array_equal(first, random.episode(0).actions)


def test_a_policy_for_another_environment_is_refused(pendulum_run: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"trained for observations \[3\].*CartPole-v1 has"):
        record_dataset("CartPole-v1", tmp_path / "x", 1, policy=str(pendulum_run))
    assert not (tmp_path / "x").exists()
    with pytest.raises(DatasetError, match="expected 'random' or a run directory"):
        record_dataset("Pendulum-v1", tmp_path / "y", 1, policy="greedy")


def test_eval_reads_an_online_runs_checkpoint(pendulum_run: Path, tmp_path: Path) -> None:
    from worldflux.cli import main

    out = tmp_path / "report"
    code = main(
        ["eval", str(pendulum_run), "--env", "Pendulum-v1", "--episodes", "2",
         "--max-episode-steps", "12", "--horizon", "2", "--windows", "4", "--out", str(out)]
    )  # fmt: skip
    assert code == 0 and (out / "eval.json").is_file()


def test_eval_of_a_pixel_run_records_frames_and_writes_the_openloop_video(
    tmp_path: Path,
) -> None:
    from worldflux.cli import main

    out = tmp_path / "pixels"
    train(
        RunConfig(
            model="dreamerv3:ci",
            env_id="CartPole-v1",
            obs_mode="image",
            image_size=32,
            steps=20,
            out=str(out),
            seed_steps=18,
            pretrain_updates=1,
            batch_size=2,
            seq_len=4,
            progress=False,
            final_eval=False,
            threads=1,
        )
    )
    report = tmp_path / "report"
    code = main(
        ["eval", str(out), "--env", "CartPole-v1", "--episodes", "1", "--max-episode-steps",
         "10", "--horizon", "2", "--windows", "2", "--out", str(report)]
    )  # fmt: skip
    assert code == 0 and (report / "openloop.gif").is_file()
