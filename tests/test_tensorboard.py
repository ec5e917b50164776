"""`worldflux train --tensorboard`: every record's numbers as TensorBoard scalars."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from worldflux.training.metrics import TENSORBOARD_DIR, MetricsLogger


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run / TENSORBOARD_DIR))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_records_become_scalars_and_a_resume_purges_the_redone_part(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, tensorboard=True)
    for step in range(1, 11):
        logger.log({"kind": "episode", "env_step": step, "episode_return": float(step)})
    logger.log({"kind": "train", "env_step": 10, "loss": 0.5, "finished": True, "name": "x"})
    logger.close()
    resumed = MetricsLogger(tmp_path, resume_step=5, tensorboard=True)
    resumed.log({"kind": "episode", "env_step": 6, "episode_return": 60.0})
    resumed.close()
    scalars = _scalars(tmp_path)
    assert scalars["episode/episode_return"] == [(s, float(s)) for s in range(1, 6)] + [(6, 60.0)]
    assert scalars.get("train/loss", []) == []  # written at step 10, after the resume: purged
    assert not any(tag.endswith(("finished", "name", "kind")) for tag in scalars)


def test_a_training_run_writes_its_curves(tmp_path: Path) -> None:
    from worldflux.training.loop import RunConfig, train

    out = tmp_path / "run"
    train(
        RunConfig(
            model="tdmpc2:ci",
            env_id="Pendulum-v1",
            steps=30,
            out=str(out),
            seed_steps=20,
            pretrain_updates=2,
            max_episode_steps=10,
            log_every=10,
            progress=False,
            final_eval=False,
            threads=1,
            tensorboard=True,
        )
    )
    scalars = _scalars(out)
    assert [step for step, _ in scalars["episode/episode_return"]] == [10, 20, 30]
    assert any(tag.startswith("train/") and "loss" in tag for tag in scalars)
