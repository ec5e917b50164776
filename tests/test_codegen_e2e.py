"""End to end: a new spec in a temporary specs directory, using only existing slot
implementations, generates, imports, builds with create_world_model, rolls out and trains."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _spec_helpers import FIXTURE, make_root, single_torch_thread  # noqa: F401

import worldflux
from worldflux.codegen.command import main
from worldflux.codegen.loading import import_generated, unload_generated
from worldflux.core.config import WorldModelConfig
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.spec import ModelMaturity
from worldflux.core.spec_model import SpecWorldModel

_counter = itertools.count()


@pytest.fixture
def generated_toy(tmp_path: Path) -> Iterator[type[SpecWorldModel]]:
    """Generate the fixture spec into a temporary tree and import it; unregister afterwards."""
    root = make_root(tmp_path, {"toy_generic": FIXTURE.read_text()})
    assert main(["--root", str(root)]) == 0
    package = f"wf_e2e_generated_{next(_counter)}"
    WorldModelRegistry.unregister("toy_generic")
    try:
        module = import_generated(root / "generated", package)
        namespace: dict[str, object] = {}
        exec((root / "generated/catalog.py").read_text(), namespace)
        for alias, target in namespace["MODEL_ALIASES"].items():  # type: ignore[attr-defined]
            WorldModelRegistry.register_alias(alias, target)
        cls = module.models.toy_generic.ToyGenericWorldModel
        yield cls
    finally:
        WorldModelRegistry.unregister("toy_generic")
        unload_generated(package)


def _batch(b: int = 3, t: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "obs": torch.randn(b, t, 6, generator=g),
        "actions": torch.rand(b, t, 2, generator=g) * 2 - 1,
        "rewards": torch.randn(b, t, generator=g),
        "terminated": torch.zeros(b, t, dtype=torch.bool),
        "truncated": torch.zeros(b, t, dtype=torch.bool),
        "is_first": is_first,
    }


def test_generated_class_is_registered_with_its_constants(
    generated_toy: type[SpecWorldModel],
) -> None:
    assert WorldModelRegistry.get("toy_generic") is generated_toy
    assert generated_toy.maturity is ModelMaturity.EXPERIMENTAL
    assert set(generated_toy.presets) == {"ci", "small"}
    spec = generated_toy.SPEC
    assert spec["source"] == "specs/models/toy_generic.yaml"
    assert spec["preset_params"] == {"ci": 2200, "small": 27208}
    assert spec["behaviour"] is None and spec["parity"] == {}
    config_cls = WorldModelRegistry.get_config_class("toy_generic")
    assert issubclass(config_cls, WorldModelConfig)
    config = config_cls()
    assert config.obs_shape == (6,) and config.action_dim == 2
    assert config.model_type == "toy_generic"


def test_create_rollout_and_loss(generated_toy: type[SpecWorldModel]) -> None:
    torch.manual_seed(0)
    model = worldflux.create_world_model("toy-generic-ci")
    assert isinstance(model, generated_toy)
    state = model.encode(torch.randn(3, 6))
    assert state["latent"].shape == (3, 8)
    trajectory = model.rollout(state, torch.rand(3, 4, 2) * 2 - 1)
    assert trajectory.states["latent"].shape == (3, 5, 8)
    assert trajectory.rewards.shape == (3, 4)
    assert trajectory.predictions["obs"].shape == (3, 4, 6)
    assert ((trajectory.continues >= 0) & (trajectory.continues <= 1)).all()
    for steps in (1, 5):
        out = model.loss(_batch(t=steps))
        assert set(out.components) == set(model.io_contract().loss_components)
        assert torch.isfinite(out.loss)


def test_it_trains(generated_toy: type[SpecWorldModel]) -> None:
    torch.manual_seed(0)
    model = worldflux.create_world_model("toy_generic:ci")
    assert model.objective is not None
    optimizer = model.objective.make_optimizers(model)["model"]
    batch = _batch()
    first = float(model.loss(batch).loss.detach())
    for _ in range(12):
        loss = model.loss(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(model.loss(batch).loss.detach()) < 0.9 * first


def test_declared_preset_params_match_the_built_models(
    generated_toy: type[SpecWorldModel],
) -> None:
    for preset, params in generated_toy.SPEC["preset_params"].items():
        assert worldflux.create_world_model(f"toy_generic:{preset}").num_parameters() == params


def test_composable_slot_can_be_swapped(generated_toy: type[SpecWorldModel]) -> None:
    model = worldflux.create_world_model(
        "toy_generic:ci",
        component_overrides={"decoder": ("mlp_decoder", {"layers": 2, "predict_obs": True})},
    )
    out = model.loss(_batch())
    assert torch.isfinite(out.loss)


def test_a_spec_without_hyperparameters(tmp_path: Path) -> None:
    """An empty ``config`` still gives a config class (env fields only) and a working model."""
    from _spec_helpers import dump, fixture_data, set_measured_params

    data = fixture_data()
    data["config"] = {"properties": {}}
    for preset in data["presets"].values():
        preset["config"] = {}
    data["io_contract"]["state"]["latent"]["shape"] = [8]
    data["slots"]["observation_encoder"]["params"] = {"latent": 8, "hidden": 4, "layers": 1}
    data["slots"]["action_conditioner"] = {"impl": "concat"}
    data["slots"]["dynamics_model"] = {"impl": "mlp_dynamics", "params": {"hidden": 4}}
    data["slots"]["decoder"]["params"] = {"hidden": 4, "layers": 1}
    root = make_root(tmp_path, {"toy_generic": dump(set_measured_params(data))})
    assert main(["--root", str(root)]) == 0
    package = f"wf_e2e_generated_{next(_counter)}"
    WorldModelRegistry.unregister("toy_generic")
    try:
        import_generated(root / "generated", package)
        model = worldflux.create_world_model("toy_generic:ci")
        assert model.config.hyperparameters() == {}
        assert torch.isfinite(model.loss(_batch()).loss)
    finally:
        WorldModelRegistry.unregister("toy_generic")
        unload_generated(package)
