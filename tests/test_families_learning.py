"""Slow: a reduced `python -m benchmarks.families_learning` (docs/families.md, "Learning figures").

Families trained offline on random-policy ``worldflux/Reach-v0`` episodes must predict the
held-out observations 5 steps open loop clearly better than the training episodes' mean
observation. Only families for which that holds with a wide margin at this small budget are
checked (in the full benchmark they beat the mean by 5x or more); the others are reported in
docs/families.md. On the 16x16 image task, ``gan`` and ``jepa`` with their image settings (the
benchmark's defaults) must beat the mean. One torch thread, about six minutes on 2 shared cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.families_learning import TASKS, family_updates, prepare_dataset, run_family

#: family -> training updates (the full benchmark's budget or less; ssm with its vector setting).
CHECKED = {"tdmpc2": 600, "physics": 600, "ssm": 500}
#: family -> the fraction of the mean frame's h=5 error it must stay under on the image task
#: with its benchmark settings and updates (docs/families.md: gan 24% under the mean, its ci
#: preset 24% over; jepa 15% under with its token-grid state, its ci preset's pooled state at
#: best a few percent under, the validated probe shrinking to the mean)
IMAGE_CHECKED = {"gan": 1.0, "jepa": 0.9}
#: the model's h=5 error must be below this fraction of the mean baseline's
MARGIN = 0.5


@contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread inside (as the benchmark runs), the caller's count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reach_vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with one_thread():
        return prepare_dataset(TASKS["vector"], tmp_path_factory.mktemp("families-data"))


def assert_h5_under(
    family: str, task: str, dataset: Path, out: Path, updates: int, fraction: float
) -> dict[str, Any]:
    """Run the benchmark's ``family`` on ``task`` (its default settings) and require its h=5
    error below ``fraction`` x the mean baseline's; the row."""
    with one_thread():
        row = run_family(family, TASKS[task], dataset, out, updates=updates)
    assert row["status"] == "ok", row
    five = row["h5"]
    assert five["model"] is not None and five["mean"] is not None, row
    assert five["model"] < fraction * five["mean"], (
        f"{family} ({task}, overrides {row['overrides']}) after {updates} updates: h=5 error "
        f"{five['model']:.4g} is not below {fraction} x the mean baseline {five['mean']:.4g} "
        f"(copy-last {five['copy_last']:.4g})"
    )
    return row


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(CHECKED))
def test_family_beats_the_mean_at_horizon_5(
    family: str, reach_vectors: Path, tmp_path: Path
) -> None:
    assert_h5_under(family, "vector", reach_vectors, tmp_path, CHECKED[family], MARGIN)


@pytest.fixture(scope="module")
def reach_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with one_thread():
        return prepare_dataset(TASKS["image"], tmp_path_factory.mktemp("families-frames"))


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(IMAGE_CHECKED))
def test_family_beats_the_mean_on_images_with_its_settings(
    family: str, reach_frames: Path, tmp_path: Path
) -> None:
    """The benchmark's image settings of ``family`` (FAMILY_OVERRIDES / FAMILY_UPDATES) are
    what makes it beat the mean frame at h=5 by ``IMAGE_CHECKED[family]`` (its ``ci`` preset
    does not: gan 0.00917 vs 0.00739)."""
    updates = family_updates(family, "image", 500)
    row = assert_h5_under(family, "image", reach_frames, tmp_path, updates, IMAGE_CHECKED[family])
    assert row["overrides"], row


def test_per_task_defaults_are_spec_config_keys_and_documented() -> None:
    """Every default override of the benchmark is a config key of the family's spec (or the
    ``objective`` / ``behaviour`` override, with names of the spec's objective / behaviour
    params), applies to its own task only, and is stated in docs/families.md next to its
    numbers."""
    import yaml

    from benchmarks.families_learning import (
        FAMILY_OVERRIDES,
        FAMILY_UPDATES,
        ROOT,
        TASKS,
        family_overrides,
        family_updates,
    )
    from worldflux.core.registry import ensure_components, get_component

    docs = (ROOT / "docs" / "families.md").read_text(encoding="utf-8")
    for (family, task), overrides in FAMILY_OVERRIDES.items():
        assert task in TASKS, (family, task)
        spec = yaml.safe_load((ROOT / "specs" / "models" / f"{family}.yaml").read_text())
        keys = set(spec["config"]["properties"]) | {"objective", "behaviour"}
        assert set(overrides) <= keys, (family, sorted(set(overrides) - keys))
        ensure_components()
        for part in ("objective", "behaviour"):
            params = get_component(part, spec[part]["impl"]).params_model
            assert params is not None or part not in overrides, (family, part)
            if params is not None:
                assert set(overrides.get(part, {})) <= set(params.model_fields), (family, part)
        for key in overrides:
            assert f"{family}:{key}=" in docs, f"{family}:{key} is not in docs/families.md"
        assert family_overrides(family, task) == overrides
        for other in set(TASKS) - {task}:
            assert (family, other) in FAMILY_OVERRIDES or family_overrides(family, other) == {}
    for (family, task), updates in FAMILY_UPDATES.items():
        assert task in TASKS, (family, task)
        assert family_updates(family, task, 500) == updates
        for other in set(TASKS) - {task}:
            assert (family, other) in FAMILY_UPDATES or family_updates(family, other, 500) == 500


def test_set_reads_like_worldflux_train_and_merges_objective_params() -> None:
    """``--set FAMILY:objective.NAME=VALUE`` nests like ``worldflux train --set``, and one
    objective param given on the command line keeps the default settings' others."""
    from benchmarks.families_settings import merged_overrides, parse_family_sets

    sets = parse_family_sets(
        ["physics:objective.lr=1e-3", "physics:hidden_dim=64", 'gan:objective={"latent_coef": 0}']
    )
    assert sets == {
        "physics": {"objective": {"lr": 1e-3}, "hidden_dim": 64},
        "gan": {"objective": {"latent_coef": 0}},
    }
    defaults = {"objective": {"reconstruction_coef": 100}, "hidden_dim": 256}
    assert merged_overrides(defaults, sets["physics"]) == {
        "objective": {"reconstruction_coef": 100, "lr": 1e-3},
        "hidden_dim": 64,
    }
    with pytest.raises(SystemExit, match=r"objective\.NAME or behaviour\.NAME"):
        parse_family_sets(["physics:decoder.depth=2"])
