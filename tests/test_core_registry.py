"""WorldModelRegistry (types, aliases, catalog) and the component registry (incl. plugins)."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import worldflux.core.registry as registry
from worldflux.core.components import DynamicsModel
from worldflux.core.exceptions import ConfigurationError, ModelNotFoundError
from worldflux.core.model import WorldModel
from worldflux.core.registry import (
    COMPONENT_KINDS,
    ENTRY_POINT_GROUP,
    SLOTS,
    WorldModelRegistry,
    get_component,
    list_components,
    register_component,
    unregister_component,
)
from worldflux.core.types import Batch, LossOutput


def make_model_class() -> type[WorldModel]:
    class Dummy(WorldModel):
        def loss(self, batch: Batch) -> LossOutput:
            raise NotImplementedError

    return Dummy


@pytest.fixture
def clean_types() -> Iterator[list[str]]:
    """Model types a test registers; unregistered afterwards whatever happens."""
    names: list[str] = []
    yield names
    for name in names:
        WorldModelRegistry.unregister(name)


def test_five_slots_of_the_guide() -> None:
    assert WorldModelRegistry._component_slots == {
        "observation_encoder": "observation_encoder",
        "action_conditioner": "action_conditioner",
        "dynamics_model": "dynamics_model",
        "decoder": "decoder_module",
        "rollout_executor": "rollout_executor",
    }
    assert COMPONENT_KINDS == (*SLOTS, "objective", "behaviour")


def test_duplicate_registration_raises_and_unregister_removes(clean_types: list[str]) -> None:
    clean_types.append("wf_dup")
    first = WorldModelRegistry.register("wf_dup")(make_model_class())
    assert WorldModelRegistry.is_registered("wf_dup") and first.model_type == "wf_dup"
    with pytest.raises(ConfigurationError, match="'wf_dup' is already registered by") as info:
        WorldModelRegistry.register("wf_dup")(make_model_class())
    assert "unregister('wf_dup')" in str(info.value) and info.value.code == "WF100"
    assert WorldModelRegistry.get("wf_dup") is first  # the failed attempt changed nothing
    WorldModelRegistry.unregister("wf_dup")
    assert not WorldModelRegistry.is_registered("wf_dup")
    assert "wf_dup" not in WorldModelRegistry.list_types()
    with pytest.raises(ModelNotFoundError):
        WorldModelRegistry.get("wf_dup")
    second = WorldModelRegistry.register("wf_dup")(make_model_class())  # free again
    assert WorldModelRegistry.get("wf_dup") is second


@pytest.mark.parametrize("bad", ["", "a:b", 3])
def test_register_rejects_bad_type_names(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="expected a non-empty name"):
        WorldModelRegistry.register(bad)


def test_unknown_ids_suggest_close_ones(clean_types: list[str]) -> None:
    clean_types.append("wf_planet")
    WorldModelRegistry.register("wf_planet")(make_model_class())
    WorldModelRegistry.register_catalog_entry("wf_planet:small", {"maturity": "skeleton"})
    with pytest.raises(ModelNotFoundError, match="did you mean 'wf_planet") as info:
        WorldModelRegistry.resolve("wf_plant")
    assert str(info.value).startswith("[WF500] no model 'wf_plant' is registered")
    assert isinstance(info.value, KeyError)  # usable where a KeyError is expected


def test_alias_rules(clean_types: list[str]) -> None:
    clean_types.extend(["wf_a", "wf_b"])
    WorldModelRegistry.register("wf_a")(make_model_class())
    WorldModelRegistry.register("wf_b")(make_model_class())
    WorldModelRegistry.register_alias("wf_a", "wf_a:big")  # an alias may name its own type
    WorldModelRegistry.register_alias("wf-a", "wf_a:small")
    WorldModelRegistry.register_alias("wf-a", "wf_a:small")  # idempotent
    WorldModelRegistry.register_alias("wf-a-again", "wf-a")  # alias of an alias
    assert WorldModelRegistry.resolve("wf_a") == ("wf_a", "big")
    assert WorldModelRegistry.resolve("wf-a-again") == ("wf_a", "small")
    assert WorldModelRegistry.resolve("wf_b:tiny") == ("wf_b", "tiny")
    assert WorldModelRegistry.resolve("wf-a:tiny") == ("wf_a", "tiny")  # alias:preset
    with pytest.raises(ConfigurationError, match="already points to 'wf_a:small'"):
        WorldModelRegistry.register_alias("wf-a", "wf_b")
    with pytest.raises(ConfigurationError, match="would hide the model type"):
        WorldModelRegistry.register_alias("wf_b", "wf_a")
    WorldModelRegistry.register_alias("wf-loop-1", "wf-loop-2")
    WorldModelRegistry.register_alias("wf-loop-2", "wf-loop-1")
    with pytest.raises(ModelNotFoundError):  # a cycle ends, it does not hang
        WorldModelRegistry.resolve("wf-loop-1")
    WorldModelRegistry._aliases.pop("wf-loop-1")
    WorldModelRegistry._aliases.pop("wf-loop-2")


type_names = st.lists(
    st.from_regex(r"wfh_[a-z]{1,6}", fullmatch=True), min_size=1, max_size=6, unique=True
)


@given(names=type_names, data=st.data())
def test_register_alias_unregister_invariants(names: list[str], data: st.DataObject) -> None:
    """After any registrations and removals: ids resolve iff their type is registered."""
    aliases: dict[str, str] = {}
    try:
        for name in names:
            WorldModelRegistry.register(name)(make_model_class())
            WorldModelRegistry.register_catalog_entry(f"{name}:p", {"maturity": "skeleton"})
            alias = f"{name}-alias"
            aliases[alias] = f"{name}:p"
            WorldModelRegistry.register_alias(alias, aliases[alias])
        removed = set(data.draw(st.lists(st.sampled_from(names), unique=True), label="removed"))
        for name in removed:
            WorldModelRegistry.unregister(name)
        kept = set(names) - removed
        assert {n for n in WorldModelRegistry.list_types() if n.startswith("wfh_")} == kept
        known = set(WorldModelRegistry.known_ids())
        for name in names:
            alias = f"{name}-alias"
            if name in kept:
                assert WorldModelRegistry.resolve(alias) == (name, "p")
                assert {name, f"{name}:p", alias} <= known
                assert WorldModelRegistry.catalog()[f"{name}:p"] == {"maturity": "skeleton"}
            else:
                for model_id in (name, alias, f"{name}:p"):
                    assert model_id not in known
                    with pytest.raises(ModelNotFoundError):
                        WorldModelRegistry.resolve(model_id)
    finally:
        for name in names:
            WorldModelRegistry.unregister(name)
    assert not any(n.startswith("wfh_") for n in WorldModelRegistry.known_ids())


def test_config_class_defaults_to_the_base(clean_types: list[str]) -> None:
    from worldflux.core.config import WorldModelConfig

    class MyConfig(WorldModelConfig):
        width: int = 3

    clean_types.extend(["wf_cfg", "wf_nocfg"])
    WorldModelRegistry.register("wf_cfg", config_class=MyConfig)(make_model_class())
    WorldModelRegistry.register("wf_nocfg")(make_model_class())
    assert WorldModelRegistry.get_config_class("wf_cfg") is MyConfig
    assert WorldModelRegistry.get_config_class("wf_nocfg") is WorldModelConfig


# -- components -----------------------------------------------------------------------------------
class GRUParams(BaseModel):
    model_config = {"extra": "forbid"}
    hidden: int = 8


class FakeGRU(DynamicsModel):
    def __init__(self, ctx: Any, params: Any) -> None:
        super().__init__()


@pytest.fixture
def component_cleanup() -> Iterator[list[tuple[str, str]]]:
    added: list[tuple[str, str]] = []
    yield added
    for kind, key in added:
        unregister_component(kind, key)


def test_component_register_get_list_unregister(
    component_cleanup: list[tuple[str, str]],
) -> None:
    component_cleanup.append(("dynamics_model", "wftest/gru"))
    register_component("dynamics_model", "wftest/gru", params_model=GRUParams)(FakeGRU)
    register_component("dynamics_model", "wftest/gru", params_model=GRUParams)(FakeGRU)  # same
    entry = get_component("dynamics_model", "wftest/gru")
    assert entry.cls is FakeGRU and entry.origin.endswith("FakeGRU")
    assert "wftest/gru" in list_components("dynamics_model")["dynamics_model"]
    assert set(list_components()) == set(COMPONENT_KINDS)
    assert entry.validate_params({"hidden": 4}) == GRUParams(hidden=4)
    with pytest.raises(ConfigurationError, match="unknown param 'hiden'; did you mean 'hidden'"):
        entry.validate_params({"hiden": 4})
    with pytest.raises(ConfigurationError, match=r"params.hidden: Input should be a valid integer"):
        entry.validate_params({"hidden": "wide"})

    class Other(DynamicsModel):
        pass

    with pytest.raises(ConfigurationError, match=r"already registered by .*FakeGRU.*Other"):
        register_component("dynamics_model", "wftest/gru")(Other)
    register_component("dynamics_model", "wftest/gru", override=True)(Other)
    assert get_component("dynamics_model", "wftest/gru").cls is Other
    with pytest.raises(ConfigurationError, match="takes no params"):
        get_component("dynamics_model", "wftest/gru").validate_params({"x": 1})
    unregister_component("dynamics_model", "wftest/gru")
    with pytest.raises(ConfigurationError, match=r"no dynamics_model implementation .*wftest/gru"):
        get_component("dynamics_model", "wftest/gru")


def test_component_errors_name_kind_and_suggest() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown component kind 'decodr'.*'decoder'"):
        register_component("decodr", "x")
    with pytest.raises(ConfigurationError, match="non-empty name"):
        register_component("decoder", " x")
    with pytest.raises(ConfigurationError, match="decorates a class"):
        register_component("decoder", "wftest/fn")(lambda: None)  # type: ignore[type-var]
    with pytest.raises(ConfigurationError, match=r"@register_component\('decoder', 'nope'\)"):
        get_component("decoder", "nope")


# -- entry-point plugins ------------------------------------------------------------------------
PLUGIN = textwrap.dedent(
    """
    from worldflux.core.components import DynamicsModel, ObservationEncoder
    from worldflux.core.registry import register_component

    @register_component("dynamics_model", "acme/gru")
    class AcmeGRU(DynamicsModel):
        def __init__(self, ctx, params):
            super().__init__()

    class AcmeEncoder(ObservationEncoder):
        def __init__(self, ctx, params):
            super().__init__()
    """
)
BARE = textwrap.dedent(
    """
    from worldflux.core.components import Decoder
    from worldflux.core.registry import register_component

    @register_component("decoder", "heads")
    class Heads(Decoder):
        pass
    """
)


@pytest.fixture
def plugin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Install fake distributions' entry points: ``install(name, value)`` adds one."""
    (tmp_path / "acme_wf_plugin.py").write_text(PLUGIN)
    (tmp_path / "bare_wf_plugin.py").write_text(BARE)
    monkeypatch.syspath_prepend(str(tmp_path))
    points: list[importlib.metadata.EntryPoint] = []
    real = importlib.metadata.entry_points

    def fake(**params: Any) -> Any:
        if params.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints(points)
        return real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    monkeypatch.setattr(registry, "_plugins_loaded", False)

    def install(name: str, value: str) -> None:
        points.append(importlib.metadata.EntryPoint(name, value, ENTRY_POINT_GROUP))

    yield install
    for kind, key in [
        ("dynamics_model", "acme/gru"),
        ("observation_encoder", "acme/encoder"),
        ("decoder", "heads"),
    ]:
        unregister_component(kind, key)
    for module in ("acme_wf_plugin", "bare_wf_plugin", "broken_wf_plugin"):
        sys.modules.pop(module, None)


def test_plugins_are_discovered_lazily_with_namespaced_keys(plugin_env: Any) -> None:
    plugin_env("acme", "acme_wf_plugin")
    plugin_env("acme/encoder", "acme_wf_plugin:AcmeEncoder")  # a class: the name is its key
    assert "acme_wf_plugin" not in sys.modules
    entry = get_component("dynamics_model", "acme/gru")  # first miss loads the plugins
    assert entry.cls.__module__ == "acme_wf_plugin"
    assert get_component("observation_encoder", "acme/encoder").cls.__name__ == "AcmeEncoder"
    assert "acme/gru" in list_components("dynamics_model")["dynamics_model"]


def test_plugin_keys_must_be_namespaced(plugin_env: Any) -> None:
    plugin_env("bare", "bare_wf_plugin")
    with pytest.raises(ConfigurationError, match=r"'bare'.*without a 'package/' namespace"):
        registry.load_plugins(force=True)
    assert "heads" not in list_components("decoder")["decoder"]  # rolled back


def test_broken_plugin_names_its_entry_point(plugin_env: Any, tmp_path: Path) -> None:
    (tmp_path / "broken_wf_plugin.py").write_text("raise RuntimeError('boom')\n")
    plugin_env("broken", "broken_wf_plugin")
    with pytest.raises(ConfigurationError, match=r"entry point 'broken'.*RuntimeError: boom"):
        registry.load_plugins(force=True)
