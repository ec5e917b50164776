"""Spec, registry and parity checks (``spec.*``, ``registry.*``, ``parity.*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from worldflux.conformance.checks.common import MUST
from worldflux.conformance.checks.external_parity import external_goldens, external_param_counts
from worldflux.conformance.context import CheckContext, CheckFailed, CheckSkipped
from worldflux.conformance.registry import Cost, check

from worldflux.core.exceptions import SpecError
from worldflux.core.registry import SLOTS, WorldModelRegistry, get_component
from worldflux.core.spec import Capability, ModelIOContract, ModelMaturity
from worldflux.discovery.sources import source_of
from worldflux.parity import check_golden

PARITY = ("n/a", "n/a", "must")


def _trainable_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _config_class(ctx: CheckContext) -> Any:
    return WorldModelRegistry.get_config_class(ctx.target.model_type or "")


def _build_preset(ctx: CheckContext, preset: str, meta: bool, **env: Any) -> Any:
    """Build ``preset`` of the target's registered class (on the meta device when ``meta``)."""
    cls = ctx.target.model_cls
    assert cls is not None and ctx.target.model_type is not None
    presets: dict[str, dict[str, Any]] = getattr(cls, "presets", {})
    overrides = dict(presets[preset])
    overrides.update({k: v for k, v in env.items() if v is not None})
    config = _config_class(ctx)(model_type=ctx.target.model_type, **overrides)
    if meta:
        with torch.device("meta"):
            return cls(config)
    return cls(config)


@check(
    "spec.valid",
    clause="The declared facts are well-formed: slots and objective name registered "
    "implementations, capabilities and composable slots are known names, maturity matches, and "
    "the io_contract declares observations and state and binds with the model's config.",
    levels=MUST,
    code="WFC001",
    example="""
SPEC = {"slots": {...five slots...},
        "io_contract": {"observation": {"obs": {"shape": ["*obs_shape"]}},
                        "state": {"latent": {"shape": ["latent_dim"]}}, ...},
        "capabilities": ["reward_pred"]}
""",
)
def spec_valid(ctx: CheckContext) -> None:
    spec = ctx.spec
    problems: list[str] = []
    source = spec.get("source")
    if isinstance(source, str) and source.endswith((".yaml", ".yml")):
        problems += _validate_source(ctx, source)
    for cap in spec.get("capabilities", []) or []:
        try:
            Capability(cap)
        except ValueError:
            valid = ", ".join(c.value for c in Capability)
            problems.append(f"capabilities: unknown capability {cap!r} (valid: {valid})")
    for slot in spec.get("composable", []) or []:
        if slot not in SLOTS:
            problems.append(f"composable: unknown slot {slot!r} (valid: {', '.join(SLOTS)})")
    if "maturity" in spec and ctx.target.model_cls is not None and not ctx.target.spec_file:
        declared = getattr(ctx.target.model_cls, "maturity", None)
        if declared is not None and ModelMaturity.parse(spec["maturity"]) != declared:
            problems.append(f"maturity: spec says {spec['maturity']!r}, class says {declared}")
    slots = spec.get("slots")
    if slots is not None:
        for slot in SLOTS:
            entry = slots.get(slot) if isinstance(slots, dict) else None
            if not isinstance(entry, dict) or "impl" not in entry:
                problems.append(f"slots.{slot}: missing (expected {{impl: <registry key>}})")
                continue
            try:
                get_component(slot, entry["impl"])
            except Exception as error:
                problems.append(f"slots.{slot}: {error}")
    for kind in ("objective", "planner"):
        entry = spec.get(kind)
        if isinstance(entry, dict) and "impl" in entry:
            try:
                get_component(kind, entry["impl"])
            except Exception as error:
                problems.append(f"{kind}: {error}")
    if "io_contract" in spec:
        try:
            ModelIOContract.from_dict(spec["io_contract"])
        except Exception as error:
            problems.append(f"io_contract: {error}")
    if problems:
        raise CheckFailed("; ".join(problems))
    contract = ctx.contract  # fails with the binding error when the contract does not bind
    if not contract.observation:
        raise CheckFailed("io_contract declares no observation: nothing to check encode against")
    if not contract.state:
        raise CheckFailed("io_contract declares no state tensors: nothing to check states against")


def _validate_source(ctx: CheckContext, source: str) -> list[str]:
    """Re-validate the spec file the model was generated from (schema + semantics)."""
    # deferred: speclang (jsonschema, ruamel.yaml) loads only when a spec file is re-validated
    from worldflux.speclang import load_spec_text

    path = Path(source)
    candidates = (
        [path] if path.is_absolute() else [d / "models" / path.name for d in spec_dirs(ctx)]
    )
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return []  # a plugin that does not ship its specs: the generated SPEC is all we have
    try:
        load_spec_text(found.read_text(), source)
    except SpecError as error:
        return [f"{source} does not validate: {error.message}"]
    return []


@check(
    "spec.presets_build",
    clause="Every preset builds (large presets on the meta device) and its trainable parameter "
    "count equals the declared preset_params; an unregistered target builds from its factory.",
    levels=MUST,
    code="WFC002",
    cost=Cost.MEDIUM,
    example="""
for preset in cls.presets:
    with torch.device("meta"):
        cls(config_cls(**cls.presets[preset]))
""",
)
def spec_presets_build(ctx: CheckContext) -> None:
    target = ctx.target
    presets = dict(getattr(target.model_cls, "presets", {}) or {})
    if target.model_type is None or not WorldModelRegistry.is_registered(target.model_type):
        ctx.call("building the target", ctx.build, ctx.options.seed)
        return
    if not presets:
        ctx.call("building the model", ctx.build, ctx.options.seed)
        return
    declared = ctx.spec.get("preset_params") or {}
    env = dict(ctx.spec.get("default_env") or {})
    problems: list[str] = []
    for preset in sorted(presets):
        try:
            model = _build_preset(ctx, preset, meta=preset != target.preset, **env)
        except Exception as error:
            problems.append(f"preset {preset!r} does not build: {type(error).__name__}: {error}")
            continue
        want = declared.get(preset)
        if isinstance(want, int) and _trainable_count(model) != want:
            problems.append(
                f"preset {preset!r}: preset_params says {want:,} trainable parameters, "
                f"found {_trainable_count(model):,}"
            )
    if problems:
        raise CheckFailed("; ".join(problems))


@check(
    "registry.registered",
    clause="A registered model resolves by its type to its class, and every catalog entry of "
    "the type states the declared maturity.",
    levels=MUST,
    code="WFC011",
    example="""
assert WorldModelRegistry.get("tdmpc2") is TDMPC2WorldModel
""",
)
def registry_registered(ctx: CheckContext) -> None:
    target = ctx.target
    if target.model_type is None:
        raise CheckSkipped("n/a: not a registered model (external target)")
    if not WorldModelRegistry.is_registered(target.model_type):
        raise CheckFailed(
            f"{target.name}: model_type {target.model_type!r} is not registered "
            "(decorate the class with @WorldModelRegistry.register)"
        )
    found = WorldModelRegistry.get(target.model_type)
    if target.model_cls is not None and found is not target.model_cls:
        raise CheckFailed(
            f"model_type {target.model_type!r} resolves to {found.__qualname__}, "
            f"expected {target.model_cls.__qualname__}"
        )
    for model_id, entry in WorldModelRegistry.catalog().items():
        if model_id.split(":")[0] != target.model_type or "maturity" not in entry:
            continue
        if str(entry["maturity"]).lower() != target.declared.value:
            raise CheckFailed(
                f"catalog entry {model_id!r} says maturity {entry['maturity']!r}, the class "
                f"declares {target.declared.value!r}"
            )


@check(
    "registry.aliases",
    clause="Every alias of the model (declared in the spec or registered) resolves to this "
    "model type and to one of its presets.",
    levels=MUST,
    code="WFC012",
    example="""
assert WorldModelRegistry.resolve("tdmpc2-ci") == ("tdmpc2", "ci")
""",
)
def registry_aliases(ctx: CheckContext) -> None:
    target = ctx.target
    if target.model_type is None:
        raise CheckSkipped("n/a: not a registered model (external target)")
    presets = set(getattr(target.model_cls, "presets", {}) or {})
    declared = dict(ctx.spec.get("aliases") or {})
    registered = {
        a: t
        for a, t in WorldModelRegistry.aliases().items()
        if t.split(":")[0] == target.model_type
    }
    if not declared and not registered:
        raise CheckSkipped("n/a: the model has no aliases")
    problems: list[str] = []
    for alias, preset in sorted(declared.items()):
        want = f"{target.model_type}:{preset}" if preset else target.model_type
        if registered.get(alias) != want:
            problems.append(
                f"alias {alias!r}: declared -> {want!r}, registered -> {registered.get(alias)!r}"
            )
    for alias in sorted(set(declared) | set(registered)):
        try:
            model_type, preset = WorldModelRegistry.resolve(alias)
        except Exception as error:
            problems.append(f"alias {alias!r} does not resolve: {error}")
            continue
        if model_type != target.model_type:
            problems.append(f"alias {alias!r} resolves to {model_type!r}")
        elif preset is not None and preset not in presets:
            problems.append(
                f"alias {alias!r} -> preset {preset!r}, which the model does not have "
                f"(presets: {sorted(presets)})"
            )
    if problems:
        raise CheckFailed("; ".join(problems))


def _parity(ctx: CheckContext) -> dict[str, Any]:
    parity = ctx.spec.get("parity")
    if not isinstance(parity, dict):
        raise CheckFailed(
            "a REFERENCE model must declare parity facts (spec `parity:` with param_counts and "
            "goldens); none found"
        )
    if ctx.target.model_type is None or ctx.target.model_cls is None:
        raise CheckFailed("parity checks need a registered model type")
    return parity


@check(
    "parity.param_counts",
    clause="The exact trainable parameter count of every preset listed in "
    "parity.param_counts (in its obs_shape / action_dim) holds.",
    levels=PARITY,
    code="WFC951",
    cost=Cost.MEDIUM,
    example="""
parity: {param_counts: {obs_shape: [24], action_dim: 6, counts: {ci: 12345, 5m: 4960618}}}
""",
)
def parity_param_counts(ctx: CheckContext) -> None:
    if ctx.target.model_type is None:  # an external target: its own facts, n/a without
        external_param_counts(ctx)
        return
    facts = _parity(ctx).get("param_counts")
    if not isinstance(facts, dict) or not facts.get("counts"):
        raise CheckFailed("parity.param_counts: missing (expected obs_shape, action_dim, counts)")
    env = {
        "obs_shape": tuple(facts["obs_shape"]) if facts.get("obs_shape") else None,
        "action_dim": facts.get("action_dim"),
        "action_type": facts.get("action_type"),
    }
    problems: list[str] = []
    presets = getattr(ctx.target.model_cls, "presets", {}) or {}
    for preset, want in sorted(facts["counts"].items()):
        if preset not in presets:
            problems.append(f"{preset}: no such preset (presets: {sorted(presets)})")
            continue
        try:
            found = _trainable_count(_build_preset(ctx, preset, meta=True, **env))
        except Exception as error:
            problems.append(f"{preset}: does not build: {type(error).__name__}: {error}")
            continue
        if found != int(want):
            problems.append(
                f"{preset}: expected {int(want):,} trainable parameters, found {found:,}"
            )
    if problems:
        raise CheckFailed("parity.param_counts: " + "; ".join(problems))


def spec_dirs(ctx: CheckContext) -> list[Path]:
    """Where the target's spec files and goldens live: the specs directory of the source that
    registered it (built-in: the installed ``worldflux.specs``; a plugin's or project's own), and
    for ``--spec FILE`` the directory holding that file (``specs/`` when it sits in
    ``specs/models/``). Never a guess from the current directory."""
    dirs: list[Path] = []
    source = source_of(ctx.target.model_type) if ctx.target.model_type else None
    if source is not None and source.specs_dir is not None:
        dirs.append(source.specs_dir)
    if ctx.target.spec_file:
        file = Path(ctx.target.spec_file).resolve()
        dirs.append(file.parent.parent if file.parent.name == "models" else file.parent)
    return dirs


@check(
    "parity.goldens",
    clause="Every golden file in parity.goldens exists (relative to the specs directory that "
    "ships with the model: worldflux.specs for built-ins, a plugin's or project's own) and "
    "worldflux.parity.check_golden reproduces every output it documents within its tolerance.",
    levels=PARITY,
    code="WFC952",
    cost=Cost.EXPENSIVE,
    allows_reseed=True,
    example="""
parity: {goldens: [{file: parity/tdmpc2/tiny.safetensors, preset: ci}]}
rows = worldflux.parity.check_golden("tdmpc2:ci", path); assert all(r.passed for r in rows)
""",
)
def parity_goldens(ctx: CheckContext) -> None:
    if ctx.target.model_type is None:  # an external target: its own goldens, n/a without
        external_goldens(ctx)
        return
    goldens = _parity(ctx).get("goldens")
    if not goldens:
        raise CheckFailed("parity.goldens: a REFERENCE model must list at least one golden file")
    dirs = spec_dirs(ctx)
    problems: list[str] = []
    for entry in goldens:
        rel, preset = str(entry.get("file", "")), entry.get("preset")
        path = Path(rel)
        if not path.is_absolute():
            path = next((d / rel for d in dirs if (d / rel).is_file()), Path(rel))
        if not path.is_file():
            looked = ", ".join(str(d) for d in dirs) or "no specs directory ships with the model"
            problems.append(f"golden file {rel!r} not found (looked under: {looked})")
            continue
        model_id = f"{ctx.target.model_type}:{preset}" if preset else str(ctx.target.model_type)
        try:
            rows = check_golden(model_id, path)
        except Exception as error:
            problems.append(f"{rel}: check_golden raised {type(error).__name__}: {error}")
            continue
        if not rows:
            problems.append(f"{rel}: check_golden compared nothing")
        for row in rows:
            if not row.passed:
                problems.append(f"{rel}: {row.summary()}")  # worst element and where
    if problems:
        raise CheckFailed("; ".join(problems))
