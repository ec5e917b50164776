"""``--set objective.NAME=VALUE`` / ``behaviour.NAME=VALUE``: overrides of the spec's objective
and behaviour params, carried by the model config (so checkpoints rebuild them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldflux.core.exceptions import ConfigurationError
from worldflux.core.model import WorldModel
from worldflux.factory import create_world_model
from worldflux.training.cli import parse_overrides


def test_dotted_keys_nest_under_the_part_they_name() -> None:
    assert parse_overrides(["units=64", "objective.lr=3e-4", "objective.warmup=10"]) == {
        "units": 64,
        "objective": {"lr": 3e-4, "warmup": 10},
    }
    assert parse_overrides(["behaviour.horizon=3"]) == {"behaviour": {"horizon": 3}}


@pytest.mark.parametrize("item", ["decoder.lr=1", "objective.=1", "objective.a.b=1"])
def test_other_dotted_keys_are_refused_by_name(item: str) -> None:
    with pytest.raises(ConfigurationError, match=r"objective\.NAME or behaviour\.NAME"):
        parse_overrides([item])


def _lr(model: WorldModel) -> float:
    assert model.objective is not None
    optimizers = model.objective.make_optimizers(model)  # type: ignore[operator]
    return float(next(iter(optimizers.values())).param_groups[0]["lr"])


def test_an_objective_override_reaches_the_optimiser_and_survives_a_checkpoint(
    tmp_path: Path,
) -> None:
    default = create_world_model("dreamerv3:ci", obs_shape=(3,), action_dim=1)
    changed = create_world_model(
        "dreamerv3:ci", obs_shape=(3,), action_dim=1, objective={"lr": 3e-4, "warmup": 0}
    )
    assert changed.objective.p.lr == 3e-4 != default.objective.p.lr  # type: ignore[union-attr]
    assert _lr(changed) == pytest.approx(3e-4)
    changed.save_pretrained(tmp_path / "m")
    loaded = WorldModel.from_pretrained(tmp_path / "m")
    assert loaded.config.objective == {"lr": 3e-4, "warmup": 0}
    assert loaded.objective.p.lr == 3e-4  # type: ignore[union-attr]


def test_a_behaviour_override_reaches_the_planner() -> None:
    model = create_world_model("tdmpc2:ci", behaviour={"iterations": 2})
    assert model.behaviour is not None
    assert model.behaviour.iterations == 2  # type: ignore[attr-defined]


def test_an_unknown_param_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown param 'lrr'.*'lr'"):
        create_world_model("dreamerv3:ci", objective={"lrr": 1e-3})
