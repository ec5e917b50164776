"""Minari datasets, read without Minari: real files written by minari 0.5.3 (tests/data/minari)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from worldflux.datasets.format import DatasetError
from worldflux.datasets.minari import MinariDataset
from worldflux.datasets.source import open_dataset

FIXTURES = Path(__file__).parent / "data" / "minari"
h5py = pytest.importorskip("h5py")


@pytest.fixture
def minari_home(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(FIXTURES))
    return FIXTURES


@pytest.mark.parametrize(
    "reference",
    [
        "minari:cartpole/random-v0",
        str(FIXTURES / "cartpole" / "random-v0"),
        str(FIXTURES / "cartpole" / "random-v0" / "data"),
        str(FIXTURES / "cartpole" / "random-v0" / "data" / "main_data.hdf5"),
    ],
)
def test_every_way_of_naming_a_minari_dataset_opens_it(minari_home: Path, reference: str) -> None:
    dataset = open_dataset(reference)
    assert isinstance(dataset, MinariDataset)
    assert dataset.meta.action == {"type": "discrete", "dim": 2}
    assert dataset.meta.observation == {"shape": [4], "dtype": "float32"}
    assert dataset.meta.env == "CartPole-v1" and len(dataset) == 3
    assert [episode.length for episode in dataset] == [25, 14, 14]


def test_episodes_equal_what_minari_itself_reads(minari_home: Path) -> None:
    minari = pytest.importorskip("minari")
    for name in ("cartpole/random-v0", "pendulum/random-v0"):
        ours = open_dataset(f"minari:{name}")
        theirs = minari.load_dataset(name)
        assert len(ours) == theirs.total_episodes
        for mine, reference in zip(ours, theirs.iterate_episodes(), strict=True):
            assert np.array_equal(mine.observations, reference.observations)
            assert np.allclose(mine.rewards, reference.rewards)
            assert np.array_equal(mine.terminations, reference.terminations)
            assert np.array_equal(mine.truncations, reference.truncations)
            if ours.meta.action["type"] == "discrete":
                assert np.array_equal(mine.actions, reference.actions)
            else:  # Box([-2], [2]) actions, rescaled to the models' [-1, 1]
                assert np.allclose(mine.actions, reference.actions / 2.0, atol=1e-6)
                assert mine.actions.dtype == np.float32 and np.abs(mine.actions).max() <= 1


def test_a_model_trains_offline_on_a_minari_dataset(minari_home: Path, tmp_path: Path) -> None:
    from worldflux.datasets.offline import OfflineConfig, train_offline

    summary = train_offline(
        OfflineConfig(
            model="tdmpc2:ci",
            dataset="minari:pendulum/random-v0",
            updates=3,
            out=str(tmp_path / "run"),
            batch_size=4,
            val_every=2,
        )
    )
    assert summary.updates == 3 and summary.train_episodes + summary.val_episodes == 2
    assert np.isfinite(summary.last_loss)


def _copy(tmp_path: Path, name: str = "cartpole") -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name / "random-v0", target)
    return target


def test_a_wrong_array_names_the_episode_and_key(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    with h5py.File(root / "data" / "main_data.hdf5", "r+") as file:
        del file["episode_1/observations"]
        file["episode_1/observations"] = np.zeros((15, 5), dtype=np.float32)
    dataset = open_dataset(str(root))
    dataset.episode(0)
    with pytest.raises(DatasetError, match=r"episode_1: observations: expected shape \[15, 4\]"):
        dataset.episode(1)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("action_space", "not json", "action_space: expected a serialised Gymnasium space"),
        ("action_space", json.dumps({"type": "MultiBinary", "n": 3}), "Discrete or 1-D Box"),
        (
            "observation_space",
            json.dumps({"type": "Box", "dtype": "complex64", "shape": [4]}),
            "dtype",
        ),
        (
            "observation_space",
            json.dumps({"type": "Box", "dtype": "float32", "shape": [-4]}),
            "shape",
        ),
        ("data_format", "arrow", "only Minari's hdf5 storage"),
    ],
)
def test_malformed_metadata_is_one_clear_error(
    tmp_path: Path, field: str, value: str, match: str
) -> None:
    root = _copy(tmp_path)
    meta_path = root / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta[field] = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=match):
        open_dataset(str(root))


def test_arrays_are_bounded_before_they_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worldflux.datasets.minari as module

    monkeypatch.setattr(module, "MAX_ARRAY_BYTES", 64)  # an episode's observations are 416 bytes
    dataset = open_dataset(str(_copy(tmp_path)))
    with pytest.raises(DatasetError, match=r"episode_0/.*out of bounds"):
        dataset.episode(0)


def test_a_missing_local_dataset_names_where_it_looked(minari_home: Path) -> None:
    with pytest.raises(DatasetError, match=r"no local Minari dataset at .*nope/v0"):
        open_dataset("minari:nope/v0")
    with pytest.raises(DatasetError, match="expected minari:<dataset id>"):
        open_dataset("minari:../escape")


def test_dataset_info_reads_a_minari_dataset(
    minari_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from worldflux.cli import main

    assert main(["dataset", "info", "minari:cartpole/random-v0", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 3 and summary["steps"] == 53
    assert summary["action"] == {"type": "discrete", "dim": 2}


def test_recording_as_minari_is_read_by_minari_and_equals_the_npz_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worldflux.datasets.record import record_dataset

    kwargs = {"seed": 4, "max_episode_steps": 12}
    home = tmp_path / "minari"
    written = record_dataset(
        "Pendulum-v1", home / "worldflux" / "pend-v0", 3, format="minari", **kwargs
    )
    npz = record_dataset("Pendulum-v1", tmp_path / "npz", 3, **kwargs)
    assert (
        isinstance(written, MinariDataset)
        and not (home / "worldflux" / ".pend-v0.recording").exists()
    )
    assert written.meta.action == npz.meta.action and written.meta.env == "Pendulum-v1"
    for ours, reference in zip(written, npz, strict=True):
        for field in ("observations", "actions", "rewards", "terminations", "truncations"):
            assert np.array_equal(getattr(ours, field), getattr(reference, field)), field
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(home))
    theirs = minari.load_dataset("worldflux/pend-v0")
    assert theirs.total_episodes == 3 and theirs.total_steps == 36
    first = next(iter(theirs.iterate_episodes()))
    assert np.allclose(first.actions, npz.episode(0).actions)
    assert theirs.action_space.shape == (1,) and float(theirs.action_space.high[0]) == 1.0
