"""create_world_model, list_models, get_model_info and the generated catalog."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import worldflux
from worldflux.core.exceptions import ConfigurationError, ModelNotFoundError
from worldflux.core.registry import WorldModelRegistry
from worldflux.factory import (
    MODEL_ALIASES,
    MODEL_CATALOG,
    create_world_model,
    get_model_info,
    list_models,
)


def test_ids_aliases_and_presets(toy_model_type: str) -> None:
    ci = create_world_model("wf_toy:ci", obs_shape=(5,), action_dim=3)
    assert ci.config.latent_dim == 8 and ci.config.obs_shape == (5,)  # type: ignore[attr-defined]
    assert ci.config.model_type == "wf_toy" and ci.model_type == "wf_toy"
    wide = create_world_model("wf-toy-wide", obs_shape=(2, 3), action_dim=1)
    assert wide.config.latent_dim == 32  # type: ignore[attr-defined]
    assert wide.bound_contract().observation["obs"].shape == (2, 3)
    via_alias = create_world_model("wf-toy:wide")  # alias:preset, like the guide's dreamer:ci
    assert via_alias.config.latent_dim == 32  # type: ignore[attr-defined]
    bare = create_world_model("wf_toy")
    assert bare.config.latent_dim == 8 and bare.config.obs_shape == (4,)  # type: ignore[attr-defined]
    assert isinstance(bare, worldflux.WorldModel)


def test_config_overrides_win_over_presets(toy_model_type: str) -> None:
    model = create_world_model("wf-toy-wide", obs_shape=(5,), action_dim=3, latent_dim=4)
    assert model.config.latent_dim == 4  # type: ignore[attr-defined]
    assert model.encode(torch.zeros(2, 5))["latent"].shape == (2, 4)
    with pytest.raises(ConfigurationError, match="unknown field 'latent_dm'; did you mean"):
        create_world_model("wf_toy:ci", latent_dm=4)
    with pytest.raises(ConfigurationError, match="latent_dim: Input should be greater"):
        create_world_model("wf_toy:ci", latent_dim=0)
    with pytest.raises(ConfigurationError, match="action_type: Input should be"):
        create_world_model("wf_toy:ci", action_type="hybrid")


def test_unknown_ids_and_presets_suggest_close_names(toy_model_type: str) -> None:
    with pytest.raises(ModelNotFoundError, match="no model 'no-such-model' is registered"):
        create_world_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match=r"did you mean .*'wf_toy") as info:
        create_world_model("wf_tyo:ci")
    assert "worldflux models list" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="has no preset 'wdie'; did you mean 'wide'"):
        create_world_model("wf_toy:wdie")
    with pytest.raises(ModelNotFoundError, match="presets: ci, wide"):
        create_world_model("wf_toy:huge")
    with pytest.raises(ConfigurationError, match="expected a string"):
        create_world_model(3)  # type: ignore[arg-type]


def test_component_overrides(toy_model_type: str) -> None:
    by_key = create_world_model(
        "wf_toy:ci", obs_shape=(5,), action_dim=3, component_overrides={"decoder": "wftest/decoder"}
    )
    assert by_key.component_overrides == {"decoder": {"impl": "wftest/decoder", "params": {}}}
    with_params = create_world_model(
        "wf_toy:ci",
        obs_shape=(5,),
        action_dim=3,
        component_overrides={"observation_encoder": ("wftest/mlp_encoder", {"hidden": 3})},
    )
    encoder: Any = with_params.observation_encoder
    assert encoder.net[0].out_features == 3
    donor = create_world_model("wf_toy:ci", obs_shape=(5,), action_dim=3)
    module = create_world_model(
        "wf_toy:ci",
        obs_shape=(5,),
        action_dim=3,
        component_overrides={"decoder": donor.decoder_module},  # type: ignore[dict-item]
    )
    assert module.decoder_module is donor.decoder_module
    with pytest.raises(ConfigurationError, match="does not support swapping 'dynamics_model'"):
        create_world_model("wf_toy:ci", component_overrides={"dynamics_model": "wftest/dynamics"})
    with pytest.raises(ConfigurationError, match=r"component_overrides\['decoder'\]: expected"):
        create_world_model("wf_toy:ci", component_overrides={"decoder": ("a", {}, 3)})  # type: ignore[dict-item]


def test_device(toy_model_type: str) -> None:
    model = create_world_model("wf_toy:ci", device=torch.device("cpu"))
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(ConfigurationError, match="device 'gpu0' is not a torch device"):
        create_world_model("wf_toy:ci", device="gpu0")


def test_list_models_and_info(toy_model_type: str) -> None:
    ids = list_models()
    assert isinstance(ids, list) and ids == sorted(ids)
    assert {"wf_toy:ci", "wf_toy:wide"} <= set(ids)
    assert "wf_toy:ci" in list_models(maturity="experimental")
    assert "wf_toy:ci" in list_models(maturity="EXPERIMENTAL")
    assert "wf_toy:ci" not in list_models(maturity="reference")
    verbose = list_models(verbose=True)
    assert isinstance(verbose, dict) and verbose["wf_toy:ci"]["maturity"] == "experimental"
    with pytest.raises(ConfigurationError, match="unknown maturity 'beta'"):
        list_models(maturity="beta")
    info = get_model_info("wf-toy")
    assert info["id"] == "wf_toy:ci" and info["preset"] == "ci"
    assert info["presets"] == ["ci", "wide"] and info["aliases"] == ["wf-toy", "wf-toy-wide"]
    assert info["description"] == "toy test model (ci)"
    assert get_model_info("wf_toy")["type"] == "wf_toy"
    with pytest.raises(ModelNotFoundError, match="has no preset 'huge'"):
        get_model_info("wf_toy:huge")
    with pytest.raises(ModelNotFoundError, match="no model 'wf_nope'"):
        get_model_info("wf_nope")
    assert worldflux.list_models is list_models and worldflux.get_model_info is get_model_info


def test_generated_catalog_is_registered_on_first_lookup() -> None:
    catalog = WorldModelRegistry.catalog()
    for model_id, entry in MODEL_CATALOG.items():
        assert catalog[model_id] == {**entry, "source": "built-in"}
        model_type, _, preset = model_id.partition(":")
        assert WorldModelRegistry.is_registered(model_type), model_id
        assert preset in WorldModelRegistry.get(model_type).presets, model_id
        assert entry["maturity"] in {"reference", "experimental", "skeleton"}, model_id
    for alias, target in MODEL_ALIASES.items():
        assert WorldModelRegistry.aliases()[alias] == target
        assert WorldModelRegistry.resolve(alias) == tuple(target.split(":", 1)), alias
    assert set(list_models()) >= set(MODEL_CATALOG)


def test_guide_registration_example_runs_as_written() -> None:
    """The Model Developer Guide's example, with its module paths, works verbatim."""
    from worldflux.core.config import WorldModelConfig
    from worldflux.core.model import WorldModel
    from worldflux.core.registry import WorldModelRegistry
    from worldflux.core.spec import Capability, ModelIOContract, ModelMaturity
    from worldflux.core.types import Batch, LossOutput

    class MyModelConfig(WorldModelConfig):
        hidden: int = 4

    try:

        @WorldModelRegistry.register("wf_guide", config_class=MyModelConfig)
        class MyWorldModel(WorldModel):
            def __init__(self, config: MyModelConfig):
                super().__init__()
                self.config = config
                self.capabilities = {Capability.LATENT_DYNAMICS, Capability.OBS_DECODER}
                self.composable_support = {"observation_encoder", "decoder"}

            def loss(self, batch: Batch) -> LossOutput:
                return LossOutput(loss=torch.zeros(()), components={})

            def io_contract(self) -> ModelIOContract:
                return ModelIOContract()

        WorldModelRegistry.register_catalog_entry(
            "wf_guide:base",
            {
                "description": "MyModel base - description here",
                "params": "~5M",
                "type": "wf_guide",
                "default_obs": "vector",
                "maturity": ModelMaturity.EXPERIMENTAL.value,
            },
        )
        WorldModelRegistry.register_alias("wf-guide", "wf_guide")
        model = create_world_model("wf-guide", hidden=7)
        assert isinstance(model, MyWorldModel) and model.config.hidden == 7  # type: ignore[attr-defined]
        assert "wf_guide:base" in list_models(maturity=ModelMaturity.EXPERIMENTAL)
        with pytest.raises(ConfigurationError, match="already registered"):
            WorldModelRegistry.register("wf_guide", config_class=MyModelConfig)(MyWorldModel)
    finally:
        WorldModelRegistry.unregister("wf_guide")
    assert "wf-guide" not in WorldModelRegistry.known_ids()
