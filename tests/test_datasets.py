"""Offline datasets: the episode format, recording, streamed windows, contract checks, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldflux.cli import main
from worldflux.datasets.format import (
    DatasetError,
    DatasetMeta,
    Episode,
    EpisodeDataset,
    write_episode,
    write_meta,
)
from worldflux.datasets.sampler import WindowSampler
from worldflux.evaluation.probes import RIDGE_GRID


def _episode(index: int, length: int, obs_dim: int = 3) -> Episode:
    """Observations hold (episode, step) so windows can be traced back to their rows."""
    obs = np.zeros((length + 1, obs_dim), dtype=np.float32)
    obs[:, 0] = index
    obs[:, 1] = np.arange(length + 1)
    terminations = np.zeros(length, dtype=bool)
    terminations[-1] = index % 2 == 0
    return Episode(
        observations=obs,
        actions=np.full((length, 1), 0.5, dtype=np.float32),
        rewards=np.arange(length, dtype=np.float32),
        terminations=terminations,
        truncations=~terminations & (np.arange(length) == length - 1),
    )


def _write(root: Path, lengths: list[int]) -> EpisodeDataset:
    for i, length in enumerate(lengths):
        write_episode(root, i, _episode(i, length))
    meta = DatasetMeta(
        observation={"shape": [3], "dtype": "float32"},
        action={"type": "continuous", "dim": 1},
        episodes=len(lengths),
        steps=sum(lengths),
    )
    write_meta(root, meta)
    return EpisodeDataset(root)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    seq_len=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_windows_stay_inside_one_episode_in_replay_row_convention(
    tmp_path_factory: pytest.TempPathFactory, lengths: list[int], seq_len: int, seed: int
) -> None:
    dataset = _write(tmp_path_factory.mktemp("ds"), lengths)
    if max(lengths) + 1 < seq_len:
        with pytest.raises(DatasetError, match="lower --seq-len"):
            WindowSampler(dataset, range(len(lengths)), seed=seed).sample(2, seq_len)
        return
    batch = WindowSampler(dataset, range(len(lengths)), seed=seed).sample(5, seq_len)
    obs = batch["obs"]
    assert obs.shape == (5, seq_len, 3) and batch["actions"].shape == (5, seq_len, 1)
    for b in range(5):
        episode, steps = obs[b, :, 0], obs[b, :, 1]
        assert torch.all(episode == episode[0]), "a window crossed an episode boundary"
        assert torch.equal(steps, steps[0] + torch.arange(seq_len, dtype=torch.float32))
        length = lengths[int(episode[0])]
        for t in range(seq_len):
            step = int(steps[t])
            assert bool(batch["is_first"][b, t]) == (step == 0)
            last = step == length  # the final observation's row: no action, no reward
            assert float(batch["rewards"][b, t]) == (0.0 if last else float(step))
            assert float(batch["actions"][b, t, 0]) == (0.0 if last else 0.5)
            ended = step == length - 1
            flag = bool(batch["terminated"][b, t]) or bool(batch["truncated"][b, t])
            assert flag == ended


def test_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    dataset = _write(tmp_path, [3] * 20)
    train, val = dataset.split(0.1)
    assert (train, val) == dataset.split(0.1)
    assert len(val) == 2 and not set(train) & set(val) and len(train) + len(val) == 20


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda r: (r / "dataset.json").write_bytes(b"\xff\xfe\x00binary"), "not valid JSON"),
        (lambda r: (r / "dataset.json").write_text('{"format": "other"}'), "format: expected"),
        (lambda r: (r / "dataset.json").write_text("[" * 100_000), "not valid JSON"),
        (lambda r: (r / "episodes" / "000001.npz").unlink(), "declares 2 episodes"),
        (lambda r: (r / "episodes" / "000001.npz").write_bytes(b"garbage"), "not a readable"),
    ],
)
def test_malformed_datasets_are_one_clear_error(
    tmp_path: Path, corrupt: object, match: str
) -> None:
    _write(tmp_path, [4, 4])
    corrupt(tmp_path)  # type: ignore[operator]
    with pytest.raises(DatasetError, match=match):
        list(EpisodeDataset(tmp_path))


def test_an_episode_that_disagrees_with_the_metadata_names_file_and_key(tmp_path: Path) -> None:
    _write(tmp_path, [4, 4])
    bad = _episode(1, 4)
    bad.actions = bad.actions.astype(np.float64)
    write_episode(tmp_path, 1, bad)
    with pytest.raises(DatasetError, match=r"000001\.npz: actions: expected dtype float32"):
        EpisodeDataset(tmp_path).episode(1)


def test_record_train_offline_and_reject_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "pendulum"
    args = ["--env", "Pendulum-v1", "--episodes", "4", "--max-episode-steps", "20"]
    assert main(["dataset", "record", *args, "--out", str(data)]) == 0
    assert not list(tmp_path.glob(".*")), "the staging directory was left behind"
    assert main(["dataset", "info", str(data), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["episodes"] == 4 and info["steps"] == 80 and info["split"]["validation"] == 1
    run = tmp_path / "run"
    train = ["train", "tdmpc2:ci", "--dataset", str(data), "--steps", "12", "--out", str(run)]
    assert main([*train, "--log-every", "4"]) == 0
    out = capsys.readouterr().out
    assert "12 updates (3 train / 1 validation episodes)" in out
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in records if r["kind"] == "train"] == [4, 8, 12]
    assert any(r["kind"] == "validation" for r in records)
    from worldflux.core.model import WorldModel

    model = WorldModel.from_pretrained(run / "model")
    assert model.config.obs_shape == (3,)
    bad = tmp_path / "bad-run"
    assert main([*train[:-1], str(bad), "--set", "obs_shape=[5]"]) == 2
    err = capsys.readouterr().err
    assert "expects shape [5], the dataset has [3]" in err and "Traceback" not in err
    assert not bad.exists(), "nothing may be written before the dataset is accepted"


def test_eval_reports_errors_against_exact_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On episodes whose observation[1] counts the step, copy-last's error at horizon h is
    exactly h**2 / 3 (one of three coordinates is off by h); the report has every curve."""
    import worldflux

    dataset = _write(tmp_path / "data", [12] * 6)
    model = worldflux.create_world_model("tdmpc2:ci", obs_shape=(3,), action_dim=1)
    model.save_pretrained(tmp_path / "run" / "model")
    args = ["eval", str(tmp_path / "run"), "--dataset", str(dataset.root), "--horizon", "4"]
    assert main([*args, "--windows", "8"]) == 0
    report = json.loads((tmp_path / "run" / "eval" / "eval.json").read_text())
    assert report["format"] == "worldflux-eval" and report["horizon"] == 4
    assert report["copy_last_mse"] == pytest.approx([h * h / 3 for h in range(1, 5)])
    assert report["obs_mse"] is None and len(report["probe_obs_mse"]) == 4  # latent-only decoder
    assert report["probe_ridge"] in RIDGE_GRID  # chosen on one in five fit episodes held aside
    for key in ("reward_mse", "continue_mse", "latent_mse", "mean_mse"):
        assert len(report[key]) == 4 and all(v >= 0 for v in report[key]), key
    assert (tmp_path / "run" / "eval" / "error_vs_horizon.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "copy_last_mse     h=1..4: 0.3333, 1.333, 3, 5.333" in out
    assert f"probe_ridge       {report['probe_ridge']:g} (chosen" in out


@pytest.mark.parametrize(("model", "context"), [("tdmpc2:ci", 1), ("dreamerv3:ci", 8)])
def test_eval_observes_the_models_own_context_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, context: int
) -> None:
    """A recurrent filter (DreamerV3) observes 8 steps before imagining, a one-observation
    encoder 1; ``--context`` overrides; too short episodes name the window's parts."""
    import worldflux

    dataset = _write(tmp_path / "data", [14] * 4)
    built = worldflux.create_world_model(model, obs_shape=(3,), action_dim=1)
    built.save_pretrained(tmp_path / "run" / "model")
    args = ["eval", str(tmp_path / "run"), "--dataset", str(dataset.root), "--windows", "4"]
    assert main([*args, "--horizon", "3"]) == 0
    report = json.loads((tmp_path / "run" / "eval" / "eval.json").read_text())
    assert report["context"] == context
    assert main([*args, "--horizon", "3", "--context", "2"]) == 0
    assert json.loads((tmp_path / "run" / "eval" / "eval.json").read_text())["context"] == 2
    capsys.readouterr()
    assert main([*args, "--horizon", "7", "--context", "8"]) == 2  # 16 steps > 15 rows
    err = capsys.readouterr().err
    assert "--context 8 + --horizon 7 + 1" in err and "Traceback" not in err


def test_the_default_context_shortens_to_what_the_episodes_hold(tmp_path: Path) -> None:
    """Episodes too short for DreamerV3's 8 observed steps (a random CartPole policy's, in a
    training run's model evaluation) are evaluated after 1 instead of failing the run."""
    import worldflux
    from worldflux.evaluation.metrics import evaluate_predictions

    dataset = _write(tmp_path / "data", [6] * 3)
    model = worldflux.create_world_model("dreamerv3:ci", obs_shape=(3,), action_dim=1)
    episodes = list(range(3))
    kwargs = {"eval_episodes": episodes, "train_episodes": episodes, "horizon": 3, "windows": 4}
    assert evaluate_predictions(model, dataset, **kwargs).context == 1  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match=r"--context 8 \+ --horizon 3 \+ 1"):
        evaluate_predictions(model, dataset, context=8, **kwargs)  # type: ignore[arg-type]


def test_evaluation_is_deterministic_and_leaves_the_callers_stream(tmp_path: Path) -> None:
    """DreamerV3 samples its stochastic latents: two evaluations with one seed agree exactly
    whatever the global stream held, and the caller's stream does not move."""
    import worldflux
    from worldflux.evaluation.metrics import evaluate_predictions

    dataset = _write(tmp_path / "data", [20] * 3)
    model = worldflux.create_world_model("dreamerv3:ci", obs_shape=(3,), action_dim=1)
    episodes = list(range(3))
    kwargs = {"eval_episodes": episodes, "train_episodes": episodes, "horizon": 3, "windows": 4}
    torch.manual_seed(1)
    first = evaluate_predictions(model, dataset, **kwargs)  # type: ignore[arg-type]
    torch.manual_seed(2)
    state = torch.get_rng_state()
    second = evaluate_predictions(model, dataset, **kwargs)  # type: ignore[arg-type]
    assert torch.equal(torch.get_rng_state(), state)
    assert first.obs_mse == second.obs_mse and first.latent_mse == second.latent_mse
    other = evaluate_predictions(model, dataset, seed=1, **kwargs)  # type: ignore[arg-type]
    assert other.obs_mse != first.obs_mse


#: DreamerV3 at the sizes of docs/evaluation.md: width 64 and a learning rate for a short run
#: (the official 4e-5 with a 1,000-update warm-up suits hundreds of thousands of updates)
DREAMER_SHORT_RUN = ["units=64", "objective.lr=3e-4", "objective.warmup=100"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "updates", "settings"),
    [("tdmpc2:ci", 1500, []), ("dreamerv3:ci", 3000, DREAMER_SHORT_RUN)],
)
def test_trained_offline_beats_copy_last_at_horizon_1(
    tmp_path: Path, model: str, updates: int, settings: list[str]
) -> None:
    """The documented runs (docs/evaluation.md) at their sizes: record Pendulum with a random
    policy, train offline, evaluate on the validation episodes (each model's own context)."""
    data, run = tmp_path / "pendulum", tmp_path / "run"
    record = ["--env", "Pendulum-v1", "--episodes", "40", "--max-episode-steps", "200"]
    assert main(["dataset", "record", *record, "--out", str(data)]) == 0
    train = ["train", model, "--dataset", str(data), "--out", str(run), "--threads", "1"]
    sets = [arg for item in settings for arg in ("--set", item)]
    assert main([*train, "--steps", str(updates), *sets]) == 0
    assert main(["eval", str(run), "--dataset", str(data), "--horizon", "10"]) == 0
    report = json.loads((run / "eval" / "eval.json").read_text())
    error = report["obs_mse"] or report["probe_obs_mse"]
    assert error[0] < report["copy_last_mse"][0], report
    assert error[-1] < report["copy_last_mse"][-1] and error[-1] < report["mean_mse"][-1], report
