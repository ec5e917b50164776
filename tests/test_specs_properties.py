"""Property tests over specs: valid documents composed of registered generic components generate
importable, registered, buildable models; mutated documents are rejected with located messages."""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from _spec_helpers import (  # noqa: F401
    REPO,
    dump,
    fixture_data,
    make_root,
    set_measured_params,
    single_torch_thread,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import worldflux
from worldflux.codegen.command import main
from worldflux.codegen.loading import import_generated, unload_generated
from worldflux.core.exceptions import SpecError
from worldflux.core.registry import WorldModelRegistry, list_components
from worldflux.speclang import load_spec_text, load_specs

#: ``file:line:col: <json path>: <message>``; keys that are not identifiers are ``['quoted']``.
JSON_PATH = r"""\$(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:\d+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\])*"""
LOCATED = re.compile(
    rf"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>{JSON_PATH}): (?P<msg>.+)$", re.S
)
NAME = st.from_regex(r"\A[a-z][a-z0-9]{2,8}\Z")
ACT = st.sampled_from(["relu", "elu", "silu", "mish", "tanh", "gelu"])
#: Free text (descriptions): quotes, backslashes, unicode, never only whitespace.
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")
_packages = itertools.count()


# -- strategies ---------------------------------------------------------------------------------
@st.composite
def extra_hyperparameters(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """Hyperparameters of every JSON type the config schema allows (unused by the components)."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["integer", "number", "boolean", "string", "array"]))
        name = f"extra_{kind}_{i}"
        if kind == "integer":
            low = draw(st.integers(-5, 5))
            prop = {"type": kind, "minimum": low, "default": draw(st.integers(low, low + 10))}
        elif kind == "number":
            prop = {
                "type": kind,
                "exclusiveMinimum": 0,
                "default": draw(st.floats(1e-6, 10.0, allow_nan=False)),
            }
        elif kind == "boolean":
            prop = {"type": kind, "default": draw(st.booleans())}
        elif kind == "string":
            options = draw(st.lists(NAME, min_size=1, max_size=3, unique=True))
            prop = {"type": kind, "enum": options, "default": draw(st.sampled_from(options))}
        else:
            prop = {
                "type": kind,
                "items": {"type": "integer", "minimum": 1},
                "minItems": 1,
                "default": draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)),
            }
        out[name] = {**prop, "description": draw(TEXT)}
    return out


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec document whose slots and objective are generic registered components."""
    model_type = "p_" + draw(NAME)
    image = draw(st.booleans())
    discrete = draw(st.booleans())
    action_dim = draw(st.integers(1, 4))
    if image:
        stages = draw(st.integers(1, 2))
        side = 2**stages * draw(st.integers(1, 2))
        obs_shape = [draw(st.integers(1, 3)), side, side]
        enc = {"impl": "cnn_encoder", "params": {"stages": stages, "depth": 4, "act": draw(ACT)}}
        dec_impl, dec_extra = "cnn_decoder", {"stages": stages, "depth": 4}
    else:
        obs_shape = [draw(st.integers(1, 8))]
        enc = {"impl": "mlp_encoder", "params": {"layers": draw(st.integers(0, 2))}}
        dec_impl, dec_extra = "mlp_decoder", {}
    flags = {
        "predict_obs": draw(st.booleans()),
        "predict_reward": draw(st.booleans()),
        "predict_continue": draw(st.booleans()),
    }
    decoder = {
        "impl": dec_impl,
        "params": {**dec_extra, **flags, "layers": draw(st.integers(0, 1))},
    }
    conditioner = draw(
        st.sampled_from(
            [
                {"impl": "concat"},
                {"impl": "film"},
                {"impl": "film", "params": {"hidden": "hidden_dim"}},
            ]
        )
    )
    dynamics = draw(
        st.sampled_from(
            [
                {"impl": "gru_dynamics"},
                {"impl": "mlp_dynamics", "params": {"residual": True}},
                {"impl": "mlp_dynamics", "params": {"residual": False, "layers": 1}},
            ]
        )
    )
    coefs = {
        name: draw(st.sampled_from([0.0, 0.5, 1.0]))
        for name in ("reconstruction_coef", "reward_coef", "continue_coef", "dynamics_coef")
    }
    components = [
        name
        for name, coef, needs in (
            ("reconstruction", coefs["reconstruction_coef"], flags["predict_obs"]),
            ("reward", coefs["reward_coef"], flags["predict_reward"]),
            ("continue", coefs["continue_coef"], flags["predict_continue"]),
            ("dynamics", coefs["dynamics_coef"], True),
        )
        if coef > 0 and needs
    ] or ["dynamics"]
    if components == ["dynamics"]:
        coefs["dynamics_coef"] = 1.0
    predictions: dict[str, Any] = {}
    capabilities = ["latent_dynamics"]
    if flags["predict_obs"]:
        predictions["obs"] = {"shape": ["*obs_shape"]}
        capabilities.append("obs_decoder")
    if flags["predict_reward"]:
        predictions["reward"] = {"shape": []}
        capabilities.append("reward_pred")
    if flags["predict_continue"]:
        predictions["continue"] = {"shape": [], "low": 0.0, "high": 1.0}
        capabilities.append("continue_pred")
    latent_default = draw(st.integers(2, 12))
    hidden_default = draw(st.integers(1, 12))
    presets = {
        f"p{i}": {
            "config": draw(
                st.fixed_dictionaries(
                    {},
                    optional={"latent_dim": st.integers(2, 8), "hidden_dim": st.integers(1, 8)},
                )
            ),
            "params": 0,
        }
        for i in range(draw(st.integers(1, 3)))
    }
    alias_targets = draw(st.lists(st.sampled_from(sorted(presets)), max_size=2))
    aliases = {
        f"{model_type.replace('_', '-')}-{i}": target for i, target in enumerate(alias_targets)
    }
    return {
        "spec_version": "worldflux/v1",
        "model_type": model_type,
        "class_name": "P" + model_type[2:].capitalize() + "WorldModel",
        "description": draw(TEXT),
        "maturity": draw(st.sampled_from(["experimental", "skeleton"])),
        "capabilities": capabilities,
        "default_obs": "image" if image else "vector",
        "default_env": {
            "obs_shape": obs_shape,
            "action_dim": action_dim,
            "action_type": "discrete" if discrete else "continuous",
        },
        "config": {
            "description": draw(TEXT),
            "properties": {
                "latent_dim": {
                    "type": "integer",
                    "minimum": 2,
                    "default": latent_default,
                    "description": "latent size",
                },
                "hidden_dim": {
                    "type": "integer",
                    "minimum": 1,
                    "default": hidden_default,
                    "description": "hidden width",
                },
                **draw(extra_hyperparameters()),
            },
        },
        "slots": {
            "observation_encoder": enc,
            "action_conditioner": conditioner,
            "dynamics_model": dynamics,
            "decoder": decoder,
            "rollout_executor": {"impl": "open_loop"},
        },
        "composable": draw(
            st.lists(st.sampled_from(["observation_encoder", "decoder"]), unique=True)
        ),
        "objective": {"impl": "generic", "params": coefs},
        "io_contract": {
            "observation": {"obs": {"shape": ["*obs_shape"], "dtype": "float32"}},
            "action": {"kind": "discrete" if discrete else "continuous", "dim": "action_dim"},
            "state": {"latent": {"shape": ["latent_dim"], "dtype": "float32"}},
            "predictions": predictions,
            "loss_components": components,
        },
        "presets": presets,
        "aliases": aliases,
    }


def _batch(spec: dict[str, Any], b: int = 2, t: int = 3) -> dict[str, torch.Tensor]:
    env = spec["default_env"]
    if env["action_type"] == "discrete":
        actions = torch.randint(0, env["action_dim"], (b, t))
    else:
        actions = torch.rand(b, t, env["action_dim"]) * 2 - 1
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "obs": torch.rand(b, t, *env["obs_shape"]),
        "actions": actions,
        "rewards": torch.randn(b, t),
        "terminated": torch.rand(b, t) < 0.2,
        "truncated": torch.zeros(b, t, dtype=torch.bool),
        "is_first": is_first,
    }


# -- valid specs generate working models --------------------------------------------------------
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=valid_specs())
def test_valid_specs_generate_importable_registered_buildable_models(spec: dict[str, Any]) -> None:
    model_type = spec["model_type"]
    package = f"wf_prop_generated_{next(_packages)}"
    spec = set_measured_params(spec)  # generate verifies every preset's declared count
    with tempfile.TemporaryDirectory() as tmp:
        root = make_root(Path(tmp), {model_type: dump(spec)})
        (loaded,) = load_specs(root)
        assert loaded.data == spec
        assert main(["--root", str(root)]) == 0
        assert main(["--root", str(root), "--check"]) == 0
        try:
            module = import_generated(root / "generated", package)
            cls = getattr(getattr(module.models, model_type), spec["class_name"])
            assert WorldModelRegistry.get(model_type) is cls
            assert cls.SPEC["slots"]["decoder"]["impl"] == spec["slots"]["decoder"]["impl"]
            for preset in spec["presets"]:
                model = worldflux.create_world_model(f"{model_type}:{preset}")
                assert isinstance(model, cls)
                trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
                assert trainable == spec["presets"][preset]["params"]
                batch = _batch(spec)
                out = model.loss(batch)
                assert set(out.components) == set(spec["io_contract"]["loss_components"])
                assert torch.isfinite(out.loss)
                state = model.encode(batch["obs"][:, 0])
                trajectory = model.rollout(state, batch["actions"][:, :2])
                assert trajectory.rewards.shape == (2, 2)
        finally:
            WorldModelRegistry.unregister(model_type)
            unload_generated(package)


# -- mutated specs are rejected with located messages -------------------------------------------
def _rejected(text: str, expected_path: str | None, file: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, file, root=REPO)
    issues = info.value.issues
    assert issues
    matches = [LOCATED.match(line) for line in issues]
    assert all(matches), issues
    if expected_path is not None:
        assert expected_path in {m["path"] for m in matches if m}, issues
    return issues


OBJECT_PATHS: list[tuple[str, ...]] = [
    (),
    ("default_env",),
    ("config",),
    ("slots",),
    ("slots", "decoder"),
    ("objective",),
    ("io_contract",),
    ("io_contract", "action"),
    ("io_contract", "state", "latent"),
    ("presets", "ci"),
    ("reference",),
]
SCALAR_PATHS: list[tuple[tuple[str, ...], Any]] = [
    (("model_type",), 3),
    (("maturity",), ["experimental"]),
    (("default_env", "action_dim"), "two"),
    (("default_env", "obs_shape"), 6),
    (("slots", "decoder", "impl"), 1.5),
    (("io_contract", "action", "low"), "low"),
    (("presets", "ci", "params"), -1),
    (("capabilities",), "reward_pred"),
    (("config", "properties", "latent_dim", "minimum"), "two"),
]


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for part in path:
        node = node[part]
    return node


def _render(path: tuple[str, ...]) -> str:
    from worldflux.speclang.issues import json_path

    return json_path(path)


@settings(max_examples=25, deadline=None)
@given(where=st.sampled_from(OBJECT_PATHS), key=st.from_regex(r"\A[a-z][a-z_]{0,10}\Z"))
def test_unknown_keys_are_rejected_at_the_key(where: tuple[str, ...], key: str) -> None:
    data = fixture_data()
    target = _get(data, where)
    if key in target:
        return
    target[key] = 1
    issues = _rejected(dump(data), _render((*where, key)), "specs/models/toy_generic.yaml")
    assert any("unknown key" in i for i in issues)


@settings(max_examples=15, deadline=None)
@given(case=st.sampled_from(SCALAR_PATHS))
def test_wrong_types_are_rejected_at_the_value(case: tuple[tuple[str, ...], Any]) -> None:
    path, value = case
    data = fixture_data()
    parent = _get(data, path[:-1])
    parent[path[-1]] = value
    _rejected(dump(data), _render(path), "specs/models/toy_generic.yaml")


@settings(max_examples=15, deadline=None)
@given(
    slot=st.sampled_from(
        [
            "observation_encoder",
            "action_conditioner",
            "dynamics_model",
            "decoder",
            "rollout_executor",
        ]
    ),
    impl=st.from_regex(r"\A[a-z][a-z0-9_]{0,12}\Z"),
)
def test_unknown_implementations_are_rejected(slot: str, impl: str) -> None:
    if impl in list_components(slot)[slot]:
        return
    data = fixture_data()
    data["slots"][slot] = {"impl": impl}
    issues = _rejected(dump(data), f"$.slots.{slot}.impl", "specs/models/toy_generic.yaml")
    assert any(f"no {slot} implementation is registered as {impl!r}" in i for i in issues)


@settings(max_examples=15, deadline=None)
@given(
    field=st.sampled_from(["latent_dim", "hidden_dim", "latnt_dim", "hidden"]),
    value=st.one_of(st.integers(-3, 1), st.text(max_size=3), st.booleans()),
)
def test_bad_presets_are_rejected(field: str, value: Any) -> None:
    data = fixture_data()
    valid = field in data["config"]["properties"]
    if valid and isinstance(value, int) and not isinstance(value, bool):
        minimum = data["config"]["properties"][field]["minimum"]
        if value >= minimum:
            return
    data["presets"]["ci"]["config"][field] = value
    _rejected(dump(data), f"$.presets.ci.config.{field}", "specs/models/toy_generic.yaml")


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(alias=st.from_regex(r"\A[a-z][a-z0-9-]{1,8}\Z"))
def test_duplicate_aliases_across_specs_are_rejected(tmp_path: Path, alias: str) -> None:
    first = fixture_data()
    second = fixture_data()
    second.update(model_type="toy_other", class_name="ToyOtherWorldModel")
    first["aliases"] = {alias: "ci"}
    second["aliases"] = {alias: "small"}
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        root = make_root(Path(tmp), {"toy_generic": dump(first), "toy_other": dump(second)})
        with pytest.raises(SpecError) as info:
            load_specs(root)
    (issue,) = info.value.issues
    match = LOCATED.match(issue)
    assert match is not None and match["file"] == "specs/models/toy_other.yaml"
    assert "already defined by specs/models/toy_generic.yaml" in issue


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=st.sampled_from(["unknown_key", "wrong_type", "unknown_impl", "bad_preset", "dup"]))
def test_cli_never_prints_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutation: str
) -> None:
    data = fixture_data()
    text = ""
    if mutation == "unknown_key":
        data["slotz"] = {}
    elif mutation == "wrong_type":
        data["presets"]["ci"]["params"] = "many"
    elif mutation == "unknown_impl":
        data["objective"]["impl"] = "nope"
    elif mutation == "bad_preset":
        data["presets"]["ci"]["config"]["latent_dim"] = 0
    else:
        text = dump(data).replace("maturity:", "maturity: skeleton\nmaturity:", 1)
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        root = make_root(Path(tmp), {"toy_generic": text or dump(data)})
        assert main(["--root", str(root)]) == 2
        assert main(["--root", str(root), "--check"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"specs/models/toy_generic\.yaml:\d+:\d+: \$", err), err


# -- arbitrary damage never escapes as a traceback ----------------------------------------------
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


FIXTURE_PATHS = _paths(fixture_data())[1:]


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(FIXTURE_PATHS), value=JSON_VALUES)
def test_any_replaced_subtree_is_accepted_or_rejected_with_located_issues(
    path: tuple[Any, ...], value: Any
) -> None:
    data = fixture_data()
    parent = _get(data, path[:-1])  # type: ignore[arg-type]
    parent[path[-1]] = value
    try:
        load_spec_text(dump(data), "specs/models/toy_generic.yaml", root=REPO)
    except SpecError as error:
        assert error.issues
        assert all(LOCATED.match(line) for line in error.issues), error.issues


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_is_rejected_with_located_issues(text: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "specs/models/toy_generic.yaml", root=REPO)
    assert all(LOCATED.match(line) for line in info.value.issues), info.value.issues
