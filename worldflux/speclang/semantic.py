"""Semantic checks of specs: registered implementations, params, presets, contract symbols.

Structural checks (the JSON Schema) run first; these checks assume a structurally valid document.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from worldflux.core.components import Planner
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import ConfigurationError, did_you_mean
from worldflux.core.registry import SLOTS, get_component
from worldflux.core.spec import TensorSpec, resolve_dim
from worldflux.speclang.issues import Issue, JsonPath
from worldflux.speclang.model import RESERVED_CONFIG_FIELDS, Spec
from worldflux.speclang.schema import StrictValidator, describe_error

__all__ = ["check_spec", "check_specs"]

#: Capability -> the prediction it promises.
_CAPABILITY_PREDICTIONS = {
    "reward_pred": "reward",
    "continue_pred": "continue",
    "obs_decoder": "obs",
}


def _config_attrs() -> set[str]:
    return {name for name in dir(WorldModelConfig) if not name.startswith("_")}


def _component_issues(spec: Spec, kind: str, ref: Mapping[str, Any], path: JsonPath) -> list[Issue]:
    """The implementation exists for ``kind`` and accepts its params (each problem at its param)."""
    key = str(ref["impl"])
    try:
        entry = get_component(kind, key)
    except ConfigurationError as error:
        return [spec.doc.issue((*path, "impl"), error.message, key=False)]
    params: dict[str, Any] = dict(ref.get("params") or {})
    where: JsonPath = (*path, "params")
    owner = f"{kind} {key!r}"
    if entry.params_model is None:
        if params:
            return [spec.doc.issue(where, f"{owner} takes no params, found {sorted(params)}")]
        return []
    fields = set(entry.params_model.model_fields)
    issues = [
        spec.doc.issue(
            (*where, name), f"{owner}: unknown param {name!r}" + did_you_mean(name, fields)
        )
        for name in sorted(set(params) - fields)
    ]
    try:
        entry.params_model(**{k: v for k, v in params.items() if k in fields})
    except ValidationError as error:
        for item in error.errors():
            loc = tuple(str(part) if not isinstance(part, int) else part for part in item["loc"])
            issues.append(
                spec.doc.issue(
                    (*where, *loc),
                    f"{owner}: {item['msg']} (found {item.get('input')!r})",
                    key=False,
                )
            )
    except (ConfigurationError, TypeError, ValueError) as error:
        issues.append(spec.doc.issue(where, f"{owner}: {error}"))
    return issues


def _config_issues(spec: Spec) -> list[Issue]:
    issues: list[Issue] = []
    reserved = set(RESERVED_CONFIG_FIELDS)
    taken = _config_attrs() - reserved
    for name, prop in spec.config_properties.items():
        path: JsonPath = ("config", "properties", name)
        if name in reserved:
            issues.append(
                spec.doc.issue(
                    path, f"{name!r} is set by default_env and create_world_model, not by config"
                )
            )
        elif name in taken or keyword.iskeyword(name):
            issues.append(
                spec.doc.issue(path, f"{name!r} clashes with an attribute of WorldModelConfig")
            )
        validator = StrictValidator({k: v for k, v in prop.items() if k != "description"})
        for error in validator.iter_errors(prop.get("default")):
            issues.append(spec.doc.issue((*path, "default"), "default: " + describe_error(error)))
    return issues


def _preset_issues(spec: Spec) -> list[Issue]:
    issues: list[Issue] = []
    validator = StrictValidator(spec.config_json_schema())
    fields = sorted(spec.config_properties)
    for preset, body in spec.presets.items():
        overrides = body.get("config", {})
        base: JsonPath = ("presets", preset, "config")
        for name in sorted(overrides):
            if name not in spec.config_properties:
                issues.append(
                    spec.doc.issue(
                        (*base, name),
                        f"preset {preset!r} sets unknown config field {name!r}"
                        + did_you_mean(name, fields),
                    )
                )
        for error in validator.iter_errors(overrides):
            if error.validator == "additionalProperties":
                continue  # reported above, with a suggestion
            where = (*base, *error.absolute_path)
            issues.append(spec.doc.issue(where, f"preset {preset!r}: " + describe_error(error)))
    for alias, target in spec.aliases.items():
        if target not in spec.presets:
            issues.append(
                spec.doc.issue(
                    ("aliases", alias),
                    f"alias {alias!r} points to unknown preset {target!r}"
                    + did_you_mean(target, spec.presets),
                )
            )
    return issues


def _symbol_sets(spec: Spec) -> list[tuple[str, dict[str, Any]]]:
    env = spec.default_env
    env_symbols = {
        "obs_shape": tuple(env["obs_shape"]),
        "obs_dim": int(env["obs_shape"][-1]),
        "action_dim": int(env["action_dim"]),
    }
    defaults = spec.config_defaults
    out = [("defaults", {**defaults, **env_symbols})]
    for preset, body in spec.presets.items():
        out.append((f"preset {preset!r}", {**defaults, **body.get("config", {}), **env_symbols}))
    return out


def _dim_issue(spec: Spec, path: JsonPath, dim: Any, symbols: Mapping[str, Any], where: str) -> str:
    """An error message for ``dim`` under ``symbols``, or ``""``."""
    if isinstance(dim, bool) or not isinstance(dim, int | str):
        return f"dimension {dim!r} must be an int or a symbol expression"
    try:
        if isinstance(dim, str) and dim.startswith("*"):
            TensorSpec(shape=(dim,)).bind(symbols)
        else:
            value = resolve_dim(dim, symbols)
            if value < 0:
                return f"dimension {dim!r} is {value} with the {where}, expected >= 0"
    except ConfigurationError as error:
        return error.message
    except (ArithmeticError, AttributeError, TypeError, ValueError) as error:
        return f"dimension {dim!r} cannot be evaluated with the {where}: {error}"
    return ""


def _contract_issues(spec: Spec) -> list[Issue]:
    io = spec.data["io_contract"]
    dims: list[tuple[JsonPath, Any]] = [(("io_contract", "action", "dim"), io["action"]["dim"])]
    for group in ("observation", "state", "predictions"):
        for name, tensor in io.get(group, {}).items():
            for i, dim in enumerate(tensor.get("shape", [])):
                dims.append((("io_contract", group, name, "shape", i), dim))
    issues: list[Issue] = []
    for path, dim in dims:
        for where, symbols in _symbol_sets(spec):
            message = _dim_issue(spec, path, dim, symbols, where)
            if message:
                issues.append(spec.doc.issue(path, message, key=False))
                break
    kind = io["action"]["kind"]
    action_type = spec.default_env["action_type"]
    if kind != action_type:
        issues.append(
            spec.doc.issue(
                ("io_contract", "action", "kind"),
                f"action kind {kind!r} differs from default_env.action_type {action_type!r}",
                key=False,
            )
        )
    predictions = io.get("predictions", {})
    for capability in spec.data.get("capabilities", []):
        wanted = _CAPABILITY_PREDICTIONS.get(capability)
        if wanted is not None and wanted not in predictions:
            issues.append(
                spec.doc.issue(
                    ("io_contract", "predictions"),
                    f"capability {capability!r} needs a {wanted!r} prediction; "
                    f"declared: {sorted(predictions)}",
                )
            )
    return issues


def _parity_issues(spec: Spec) -> list[Issue]:
    parity = spec.data.get("parity")
    if not parity:
        return []
    issues: list[Issue] = []
    if spec.data["maturity"] != "reference":
        issues.append(
            spec.doc.issue(("parity",), "parity facts are only for maturity 'reference' models")
        )
    for i, golden in enumerate(parity.get("goldens", [])):
        if golden["preset"] not in spec.presets:
            issues.append(
                spec.doc.issue(
                    ("parity", "goldens", i, "preset"),
                    f"unknown preset {golden['preset']!r}"
                    + did_you_mean(golden["preset"], spec.presets),
                    key=False,
                )
            )
        if ".." in golden["file"].split("/"):
            issues.append(
                spec.doc.issue(
                    ("parity", "goldens", i, "file"), "golden paths may not contain '..'", key=False
                )
            )
    counts = parity.get("param_counts")
    env = spec.default_env
    if (
        counts
        and list(counts["obs_shape"]) == list(env["obs_shape"])
        and (counts["action_dim"] == env["action_dim"])
    ):
        for preset, count in counts["counts"].items():
            declared = spec.presets.get(preset, {}).get("params")
            if declared is not None and declared != count:
                issues.append(
                    spec.doc.issue(
                        ("presets", preset, "params"),
                        f"preset {preset!r} declares {declared} params but parity.param_counts "
                        f"says {count} in the same environment",
                        key=False,
                    )
                )
    return issues


def _component_refs(spec: Spec) -> list[Issue]:
    issues: list[Issue] = []
    for slot in SLOTS:
        issues += _component_issues(spec, slot, spec.data["slots"][slot], ("slots", slot))
    issues += _component_issues(spec, "objective", spec.data["objective"], ("objective",))
    behaviour_key = "behaviour" if "behaviour" in spec.data else "planner"
    behaviour = spec.data.get(behaviour_key)
    if "behaviour" in spec.data and "planner" in spec.data:
        issues.append(
            spec.doc.issue(
                ("planner",),
                "`planner` is the older name of `behaviour`; declare one of them, not both",
                key=True,
            )
        )
    if behaviour is not None:
        found = _component_issues(spec, "behaviour", behaviour, (behaviour_key,))
        issues += found
        if not found and "planning" in spec.data.get("capabilities", []):
            entry = get_component("behaviour", str(behaviour["impl"]))
            if not issubclass(entry.cls, Planner):
                issues.append(
                    spec.doc.issue(
                        (behaviour_key, "impl"),
                        f"capability 'planning' needs a planner behaviour (e.g. mppi, cem), "
                        f"found {behaviour['impl']!r} ({entry.cls.__name__})",
                        key=False,
                    )
                )
        if not found and "goal_planning" in spec.data.get("capabilities", []):
            entry = get_component("behaviour", str(behaviour["impl"]))
            if not getattr(entry.cls, "needs_goal", False):
                issues.append(
                    spec.doc.issue(
                        (behaviour_key, "impl"),
                        f"capability 'goal_planning' needs a goal behaviour (e.g. goal_cem), "
                        f"found {behaviour['impl']!r} ({entry.cls.__name__})",
                        key=False,
                    )
                )
    elif "planning" in spec.data.get("capabilities", []):
        issues.append(
            spec.doc.issue(("capabilities",), "capability 'planning' needs a `behaviour` entry")
        )
    return issues


def check_spec(spec: Spec) -> list[Issue]:
    """Every semantic problem of one spec."""
    stem = spec.source.rsplit("/", 1)[-1].removesuffix(".yaml")
    issues: list[Issue] = []
    if stem != spec.model_type:
        issues.append(
            spec.doc.issue(
                ("model_type",),
                f"model_type {spec.model_type!r} must match the file name ({stem}.yaml)",
                key=False,
            )
        )
    issues += _component_refs(spec)
    issues += _config_issues(spec)
    issues += _preset_issues(spec)
    issues += _contract_issues(spec)
    issues += _parity_issues(spec)
    issues += _class_name_issues(spec)
    return issues


#: Names the generated modules import or define beside the model and config classes.
GENERATED_MODULE_NAMES = frozenset(
    {
        "Any",
        "ClassVar",
        "ConfigDict",
        "Field",
        "Literal",
        "ModelMaturity",
        "PositiveFloat",
        "PositiveInt",
        "SpecWorldModel",
        "WorldModelConfig",
        "WorldModelRegistry",
        "annotations",
        "confloat",
        "conint",
        "constr",
    }
)


def _class_name_issues(spec: Spec) -> list[Issue]:
    """``class_name`` and ``<class_name>Config`` must not shadow what generated code imports."""
    clashes = sorted({spec.class_name, spec.config_class_name} & GENERATED_MODULE_NAMES)
    if not clashes:
        return []
    return [
        spec.doc.issue(
            ("class_name",),
            f"class_name {spec.class_name!r} makes the generated class {clashes[0]!r}, a name the "
            "generated module imports; choose another (e.g. 'MyModelWorldModel')",
            key=False,
        )
    ]


def check_specs(specs: Iterable[Spec]) -> list[Issue]:
    """Problems across specs: duplicate model types, class names and aliases."""
    issues: list[Issue] = []
    types: dict[str, Spec] = {}
    classes: dict[str, Spec] = {}
    aliases: dict[str, Spec] = {}
    ordered = sorted(specs, key=lambda s: s.source)
    for spec in ordered:
        for value, seen, path, what in (
            (spec.model_type, types, ("model_type",), "model_type"),
            (spec.class_name, classes, ("class_name",), "class_name"),
        ):
            other = seen.get(value)
            if other is not None:
                issues.append(
                    spec.doc.issue(
                        path, f"{what} {value!r} is already used by {other.source}", key=False
                    )
                )
            else:
                seen[value] = spec
    for spec in ordered:
        for alias in spec.aliases:
            other = aliases.get(alias)
            if other is not None:
                issues.append(
                    spec.doc.issue(
                        ("aliases", alias), f"alias {alias!r} is already defined by {other.source}"
                    )
                )
            else:
                aliases[alias] = spec
            owner = types.get(alias)
            if owner is not None and owner is not spec:
                issues.append(
                    spec.doc.issue(
                        ("aliases", alias),
                        f"alias {alias!r} would hide model type {alias!r} ({owner.source})",
                    )
                )
    return issues
