"""A training checkpoint whose loop state is malformed is refused with the field named, before
any of it is restored (never a KeyError from deep inside the loop)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from worldflux.core.exceptions import CheckpointError
from worldflux.training.checkpoint import read_training_extra, save_training_checkpoint
from worldflux.training.loop import RunConfig, train
from worldflux.training.resume_state import check_resume_state
from worldflux.training.toy import registered_toy_model


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "run"
    with registered_toy_model():
        train(
            RunConfig(
                model="training_toy:ci",
                env_id="Pendulum-v1",
                steps=30,
                out=str(out),
                max_episode_steps=15,
                seed_steps=15,
                pretrain_updates=1,
                batch_size=4,
                progress=False,
                final_eval=False,
            )
        )
    return out


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("loop",), None, "extra.loop"),
        (("loop", "env_step"), "30", "extra.loop.env_step"),
        (("loop", "episode_open"), 1, "extra.loop.episode_open"),
        (("loop", "returns"), ["x"], "extra.loop.returns"),
        (("derived", "seq_len"), 2.5, "extra.derived.seq_len"),
        (("derived",), [], "extra.derived"),
        (("env",), "rng", "extra.env"),
        (("eval_env",), 3, "extra.eval_env"),
    ],
)
def test_malformed_loop_state_names_the_field(
    run: Path, path: tuple[str, ...], value: Any, field: str
) -> None:
    extra = read_training_extra(run / "checkpoint")
    check_resume_state(extra, run / "checkpoint")  # the real one passes
    bad = copy.deepcopy(extra)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(CheckpointError, match=f"field '{field}'"):
        check_resume_state(bad, run / "checkpoint")


def test_resume_refuses_a_checkpoint_with_a_broken_loop_state(run: Path) -> None:
    import worldflux
    from worldflux.training.trainer import Trainer

    with registered_toy_model():
        ckpt = run / "checkpoint"
        model = worldflux.create_world_model("training_toy:ci", obs_shape=(3,), action_dim=1)
        extra = read_training_extra(ckpt)
        extra["loop"]["next_eval"] = None
        save_training_checkpoint(ckpt, Trainer(model), None, extra)
        config = RunConfig(**{**extra["run"], "steps": 45, "progress": False})
        with pytest.raises(CheckpointError, match=r"field 'extra\.loop\.next_eval'"):
            train(config, resume=True)
