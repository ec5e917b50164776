"""Spec loading and validation: committed specs validate; bad specs give located messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _spec_helpers import FIXTURE, REPO, dump, fixture_data, make_root

from worldflux.core.exceptions import SpecError
from worldflux.speclang import load_spec_text, load_specs, spec_files
from worldflux.speclang.issues import json_path

#: ``file:line:col: <json path>: <message>``; keys that are not identifiers are ``['quoted']``.
JSON_PATH = r"""\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:\d+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\])*"""
LOCATED = re.compile(
    rf"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>{JSON_PATH}): (?P<msg>.+)$", re.S
)


def _errors(text: str, file: str = "specs/models/toy_generic.yaml") -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, file, root=REPO)
    issues = info.value.issues
    assert issues, "a SpecError must carry its issues"
    for line in issues:
        assert LOCATED.match(line), f"not located: {line!r}"
    return issues


def _one(issues: list[str], path: str) -> re.Match[str]:
    matches = [m for m in map(LOCATED.match, issues) if m and m["path"] == path]
    assert matches, f"no issue at {path}: {issues}"
    return matches[0]


# -- valid specs --------------------------------------------------------------------------------
def test_every_committed_spec_validates() -> None:
    specs = load_specs(REPO)
    assert [s.model_type for s in specs] == sorted(s.model_type for s in specs)
    assert {s.source for s in specs} == {p.relative_to(REPO).as_posix() for p in spec_files(REPO)}


def test_every_committed_spec_parses_with_the_generated_spec_models() -> None:
    from worldflux.generated.spec_models import ModelSpec

    for spec in load_specs(REPO):
        document = spec.document()
        assert isinstance(document, ModelSpec)
        assert document.model_type == spec.model_type


def test_fixture_spec_validates_and_exposes_its_facts() -> None:
    spec = load_spec_text(FIXTURE.read_text(), "specs/models/toy_generic.yaml", root=REPO)
    assert spec.model_type == "toy_generic"
    assert spec.config_class_name == "ToyGenericWorldModelConfig"
    assert spec.config_defaults == {"latent_dim": 32, "hidden_dim": 64}
    assert spec.aliases == {"toy-generic": "small", "toy-generic-ci": "ci"}


def test_json_path_rendering() -> None:
    assert json_path(()) == "$"
    assert json_path(("slots", "decoder", "impl")) == "$.slots.decoder.impl"
    assert json_path(("presets", "5m", "params")) == "$.presets['5m'].params"
    assert json_path(("parity", "goldens", 0)) == "$.parity.goldens[0]"


# -- structural errors --------------------------------------------------------------------------
def test_unknown_top_level_key_points_at_the_key_with_a_suggestion() -> None:
    text = dump(fixture_data()).replace("composable:", "composible:")
    issues = _errors(text)
    match = _one(issues, "$.composible")
    line = text.splitlines().index(next(x for x in text.splitlines() if x.startswith("composible")))
    assert int(match["line"]) == line + 1 and match["col"] == "1"
    assert "did you mean 'composable'" in match["msg"]


def test_unknown_slot_name_is_suggested() -> None:
    data = fixture_data()
    data["slots"]["dynamics_modle"] = data["slots"].pop("dynamics_model")
    issues = _errors(dump(data))
    assert "did you mean 'dynamics_model'" in _one(issues, "$.slots.dynamics_modle")["msg"]
    assert "missing required key 'dynamics_model'" in _one(issues, "$.slots")["msg"]


def test_wrong_type_names_expected_and_found() -> None:
    data = fixture_data()
    data["default_env"]["action_dim"] = "two"
    match = _one(_errors(dump(data)), "$.default_env.action_dim")
    assert "expected integer, found string 'two'" in match["msg"]


def test_bad_enum_suggests_the_closest_value() -> None:
    data = fixture_data()
    data["maturity"] = "experimantal"
    match = _one(_errors(dump(data)), "$.maturity")
    assert "did you mean 'experimental'" in match["msg"]


def test_version_must_be_the_v1_string() -> None:
    text = dump(fixture_data()).replace("spec_version: worldflux/v1", "spec_version: 1.0")
    assert "expected 'worldflux/v1'" in _one(_errors(text), "$.spec_version")["msg"]


def test_every_error_is_reported_at_once_and_sorted() -> None:
    data = fixture_data()
    data["maturity"] = "beta"
    data["default_env"]["action_dim"] = 0
    data["extra"] = 1
    issues = _errors(dump(data))
    assert len(issues) == 3
    positions = [(int(m["line"]), int(m["col"])) for m in map(LOCATED.match, issues) if m]
    assert positions == sorted(positions)


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    text = dump(fixture_data()).replace(
        "maturity: experimental\n", "maturity: experimental\nmaturity: skeleton\n"
    )
    (issue,) = _errors(text)
    assert "duplicate key" in issue and "first defined at line" in issue


def test_yaml_syntax_error_is_located() -> None:
    (issue,) = _errors(dump(fixture_data()) + "oops: [1, 2\n")
    assert "YAML error" in issue


def test_missing_modeline_is_reported() -> None:
    text = dump(fixture_data()).split("\n", 1)[1]
    assert "modeline" in _one(_errors(text), "$")["msg"]


def test_top_level_must_be_a_mapping() -> None:
    (issue,) = _errors(dump(fixture_data()).split("\n", 1)[0] + "\n- 1\n- 2\n")
    assert "expected a mapping" in issue


# -- semantic errors ----------------------------------------------------------------------------
def test_unknown_implementation_is_suggested() -> None:
    data = fixture_data()
    data["slots"]["decoder"]["impl"] = "mlp_decodr"
    match = _one(_errors(dump(data)), "$.slots.decoder.impl")
    assert "no decoder implementation is registered as 'mlp_decodr'" in match["msg"]
    assert "did you mean 'mlp_decoder'" in match["msg"]


def test_implementation_of_another_slot_is_rejected() -> None:
    data = fixture_data()
    data["slots"]["decoder"]["impl"] = "mlp_encoder"
    assert "no decoder implementation" in _one(_errors(dump(data)), "$.slots.decoder.impl")["msg"]


def test_component_params_are_validated_by_the_implementation() -> None:
    data = fixture_data()
    data["slots"]["decoder"]["params"] = {"layerz": 2}
    match = _one(_errors(dump(data)), "$.slots.decoder.params.layerz")
    assert "unknown param 'layerz'" in match["msg"] and "did you mean 'layers'" in match["msg"]
    data["slots"]["decoder"]["params"] = {"layers": -1}
    match = _one(_errors(dump(data)), "$.slots.decoder.params.layers")
    assert "decoder 'mlp_decoder': Input should be greater than or equal to 0" in match["msg"]
    assert "(found -1)" in match["msg"]
    data["slots"]["rollout_executor"]["params"] = {"x": 1}
    match = _one(_errors(dump(data)), "$.slots.rollout_executor.params")
    assert "takes no params, found ['x']" in match["msg"]


def test_objective_and_planner_must_exist() -> None:
    data = fixture_data()
    data["objective"]["impl"] = "generik"
    data["planner"] = {"impl": "no_such_planner"}
    issues = _errors(dump(data))
    assert "did you mean 'generic'" in _one(issues, "$.objective.impl")["msg"]
    assert "no behaviour implementation" in _one(issues, "$.planner.impl")["msg"]


@pytest.mark.parametrize("key", ["behaviour", "planner"])
def test_behaviour_must_exist_under_either_name(key: str) -> None:
    data = fixture_data()
    data[key] = {"impl": "actor_critc"}
    issues = _errors(dump(data))
    assert "did you mean 'actor_critic'" in _one(issues, f"$.{key}.impl")["msg"]


def test_behaviour_and_planner_are_exclusive() -> None:
    data = fixture_data()
    data["behaviour"] = {"impl": "cem"}
    data["planner"] = {"impl": "mppi"}
    issues = _errors(dump(data))
    assert "declare one of them, not both" in _one(issues, "$.planner")["msg"]


def test_goal_planning_capability_needs_a_goal_behaviour() -> None:
    data = fixture_data()
    data["capabilities"] = [*data["capabilities"], "goal_planning"]
    data["behaviour"] = {"impl": "cem"}
    issues = _errors(dump(data))
    assert "needs a goal behaviour" in _one(issues, "$.behaviour.impl")["msg"]


def test_planning_capability_needs_a_planner() -> None:
    data = fixture_data()
    data["capabilities"].append("planning")
    assert "needs a `behaviour`" in _one(_errors(dump(data)), "$.capabilities")["msg"]


def test_preset_with_unknown_field_and_bad_value() -> None:
    data = fixture_data()
    data["presets"]["ci"]["config"] = {"latent_dm": 8, "hidden_dim": 0}
    issues = _errors(dump(data))
    assert "did you mean 'latent_dim'" in _one(issues, "$.presets.ci.config.latent_dm")["msg"]
    assert ">= 1" in _one(issues, "$.presets.ci.config.hidden_dim")["msg"]


def test_default_must_satisfy_its_bounds() -> None:
    data = fixture_data()
    data["config"]["properties"]["latent_dim"]["default"] = 1
    match = _one(_errors(dump(data)), "$.config.properties.latent_dim.default")
    assert ">= 2" in match["msg"]


def test_reserved_and_clashing_config_names() -> None:
    data = fixture_data()
    props = data["config"]["properties"]
    props["obs_shape"] = {"type": "integer", "default": 1, "description": "x"}
    props["model_dump"] = {"type": "integer", "default": 1, "description": "x"}
    issues = _errors(dump(data))
    assert "default_env" in _one(issues, "$.config.properties.obs_shape")["msg"]
    assert "clashes" in _one(issues, "$.config.properties.model_dump")["msg"]


def test_alias_must_point_to_a_preset() -> None:
    data = fixture_data()
    data["aliases"]["toy-big"] = "big"
    assert "unknown preset 'big'" in _one(_errors(dump(data)), "$.aliases['toy-big']")["msg"]


def test_contract_symbols_must_resolve() -> None:
    data = fixture_data()
    data["io_contract"]["state"]["latent"]["shape"] = ["latnt_dim"]
    match = _one(_errors(dump(data)), "$.io_contract.state.latent.shape[0]")
    assert (
        "unknown symbol 'latnt_dim'" in match["msg"] and "did you mean 'latent_dim'" in match["msg"]
    )


def test_contract_expression_errors_are_located() -> None:
    data = fixture_data()
    data["io_contract"]["state"]["latent"]["shape"] = ["latent_dim // (hidden_dim - 64)"]
    match = _one(_errors(dump(data)), "$.io_contract.state.latent.shape[0]")
    assert "zero" in match["msg"] or "cannot be evaluated" in match["msg"]


def test_capability_needs_its_prediction() -> None:
    data = fixture_data()
    del data["io_contract"]["predictions"]["reward"]
    assert (
        "'reward_pred' needs a 'reward'"
        in _one(_errors(dump(data)), "$.io_contract.predictions")["msg"]
    )


def test_action_kind_must_match_default_env() -> None:
    data = fixture_data()
    data["default_env"]["action_type"] = "discrete"
    assert "differs" in _one(_errors(dump(data)), "$.io_contract.action.kind")["msg"]


def test_model_type_must_match_the_file_name() -> None:
    issues = _errors(dump(fixture_data()), "specs/models/other.yaml")
    assert "other.yaml" in _one(issues, "$.model_type")["msg"]


def test_parity_only_for_reference_models_and_goldens_name_presets() -> None:
    data = fixture_data()
    data["parity"] = {"goldens": [{"file": "specs/parity/x.safetensors", "preset": "tiny"}]}
    issues = _errors(dump(data))
    assert "only for maturity 'reference'" in _one(issues, "$.parity")["msg"]
    assert "unknown preset 'tiny'" in _one(issues, "$.parity.goldens[0].preset")["msg"]


def test_preset_params_must_agree_with_parity_counts() -> None:
    data = fixture_data()
    data["maturity"] = "reference"
    data["parity"] = {"param_counts": {"obs_shape": [6], "action_dim": 2, "counts": {"ci": 1}}}
    assert "parity.param_counts says 1" in _one(_errors(dump(data)), "$.presets.ci.params")["msg"]


# -- across specs -------------------------------------------------------------------------------
def _two_specs(tmp_path: Path, change: Any) -> list[str]:
    first = fixture_data()
    second = fixture_data()
    second["model_type"] = "toy_other"
    second["class_name"] = "ToyOtherWorldModel"
    second["aliases"] = {"toy-other": "ci"}
    change(second)
    root = make_root(tmp_path, {"toy_generic": dump(first), "toy_other": dump(second)})
    with pytest.raises(SpecError) as info:
        load_specs(root)
    return info.value.issues


def test_aliases_are_unique_across_specs(tmp_path: Path) -> None:
    issues = _two_specs(tmp_path, lambda d: d["aliases"].update({"toy-generic": "ci"}))
    (issue,) = issues
    assert issue.startswith("specs/models/toy_other.yaml:")
    assert "already defined by specs/models/toy_generic.yaml" in issue


def test_alias_may_not_hide_another_model_type(tmp_path: Path) -> None:
    issues = _two_specs(tmp_path, lambda d: d["aliases"].update({"toy_generic": "ci"}))
    assert any("would hide model type 'toy_generic'" in i for i in issues)


def test_class_names_are_unique(tmp_path: Path) -> None:
    issues = _two_specs(tmp_path, lambda d: d.update(class_name="ToyGenericWorldModel"))
    assert any("class_name 'ToyGenericWorldModel' is already used" in i for i in issues)


def test_yml_extension_is_rejected(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "specs/models/toy_generic.yml").write_text(dump(fixture_data()))
    with pytest.raises(SpecError, match=r"toy_generic\.yml:1:1: \$: spec files end in \.yaml"):
        load_specs(root)


# -- third-party implementations ----------------------------------------------------------------
def test_plugin_implementations_are_named_package_slash_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spec names a third-party slot as ``package/key``; it is found through the entry point."""
    import importlib.metadata
    import sys
    import types

    from worldflux.components.decoders import MLPDecoder, MLPDecoderParams
    from worldflux.core import registry

    module = types.ModuleType("wf_toyplugin_module")
    plugin_cls = type("ToyPluginDecoder", (MLPDecoder,), {"params_model": MLPDecoderParams})
    module.ToyPluginDecoder = plugin_cls  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wf_toyplugin_module", module)
    entry = importlib.metadata.EntryPoint(
        name="toyplugin/decoder",
        value="wf_toyplugin_module:ToyPluginDecoder",
        group=registry.ENTRY_POINT_GROUP,
    )

    def entry_points(*, group: str) -> list[importlib.metadata.EntryPoint]:
        return [entry] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    data = fixture_data()
    data["slots"]["decoder"]["impl"] = "toyplugin/decoder"
    try:
        spec = load_spec_text(dump(data), "specs/models/toy_generic.yaml", root=REPO)
        assert spec.data["slots"]["decoder"]["impl"] == "toyplugin/decoder"
        assert registry.get_component("decoder", "toyplugin/decoder").cls is plugin_cls
    finally:
        registry.unregister_component("decoder", "toyplugin/decoder")


def test_import_paths_are_not_implementation_keys() -> None:
    data = fixture_data()
    data["slots"]["decoder"]["impl"] = "mypkg.decoders:Decoder"
    match = _one(_errors(dump(data)), "$.slots.decoder.impl")
    assert "does not match" in match["msg"]


# -- schema evolution ---------------------------------------------------------------------------
def _objects(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every object schema by name: the root and each ``$defs`` entry."""
    return {"<root>": schema, **schema.get("$defs", {})}


def test_schema_v1_only_grows() -> None:
    """Like ``buf breaking``: against the frozen v1 snapshot, nothing is removed or newly required.

    Breaking changes need a v2 schema (and a migration), not an edit of v1.
    """
    import json

    frozen = json.loads((REPO / "tests/fixtures/specs/model-spec.v1.frozen.json").read_text())
    current = json.loads((REPO / "specs/schema/model-spec.v1.schema.json").read_text())
    assert current["$id"] == frozen["$id"] and current["$id"].endswith("v1.schema.json")
    assert current["properties"]["spec_version"] == frozen["properties"]["spec_version"]
    now = _objects(current)
    for name, old in _objects(frozen).items():
        assert name in now, f"{name} was removed"
        new = now[name]
        assert set(old.get("properties", {})) <= set(new.get("properties", {})), name
        assert set(new.get("required", [])) <= set(old.get("required", [])), f"{name}: new required"
        if "enum" in old:
            assert set(old["enum"]) <= set(new["enum"]), f"{name}: enum values removed"
        for prop, body in old.get("properties", {}).items():
            if "enum" in body:
                assert set(body["enum"]) <= set(new["properties"][prop]["enum"]), f"{name}.{prop}"


def test_schema_is_described_and_closed() -> None:
    import json

    schema = json.loads((REPO / "specs/schema/model-spec.v1.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for name, obj in _objects(schema).items():
        assert obj.get("description"), f"{name} has no description"
        if obj.get("type") == "object":
            assert obj.get("additionalProperties") is False, f"{name} is not closed"
        for prop, body in obj.get("properties", {}).items():
            assert body.get("description"), f"{name}.{prop} has no description"
    banned = {"unevaluatedProperties", "prefixItems", "$dynamicRef", "dependentRequired"}
    assert not banned & set(json.dumps(schema).replace('"', " ").split()), "not draft-07 friendly"
