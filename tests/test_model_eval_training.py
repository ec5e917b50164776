"""``--eval-model-every``: the world model's predictions are evaluated during training on held-out
episodes, logged as ``model_eval`` records and plotted, without changing the run itself."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_training_loop import small_run

from worldflux.training.loop import train
from worldflux.training.model_eval import DATA_DIR
from worldflux.training.plot import plot_run
from worldflux.training.toy import registered_toy_model


@pytest.fixture
def toy() -> Iterator[None]:
    with registered_toy_model():
        yield


def test_model_evaluations_are_logged_at_their_cadence(tmp_path: Path, toy: None) -> None:
    out = tmp_path / "run"
    train(small_run(out, steps=60, eval_model_every=20, eval_model_episodes=2))
    records = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    evals = [r for r in records if r["kind"] == "model_eval"]
    assert [r["env_step"] for r in evals] == [20, 40, 60]
    first = evals[0]
    for name in ("copy_last_mse", "mean_mse", "reward_mse", "latent_mse"):
        assert all(f"{name}/h{h}" in first for h in range(1, 6)), name
    assert "obs_mse/h1" in first or "probe_obs_mse/h1" in first
    assert (out / DATA_DIR / "dataset.json").is_file()  # the held-out episodes, kept
    png = plot_run(out, out / "curves.png")
    assert png.stat().st_size > 0


def test_model_evaluation_leaves_the_run_unchanged(tmp_path: Path, toy: None) -> None:
    """Same seed with and without --eval-model-every: bitwise the same parameters and returns
    (the evaluation neither draws from the global random streams nor leaves eval mode on)."""
    plain = train(small_run(tmp_path / "plain", steps=60))
    watched = train(
        small_run(tmp_path / "watched", steps=60, eval_model_every=20, eval_model_episodes=2)
    )
    assert plain.returns == watched.returns
    for (name, a), (_, b) in zip(
        plain.model.state_dict().items(), watched.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
