"""Check every preset's declared ``params`` by building it, before anything is written.

The catalog shows each preset's parameter count; ``generate`` builds every preset of every spec
on the meta device (no memory, no init cost) from the *rendered* config class and the spec's
slots, counts the trainable parameters and fails at ``file:line:col`` of the wrong ``params``.
Nothing is registered: the rendered code is executed in a private module.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from typing import Any

import torch

from worldflux.codegen.dcg import render_config
from worldflux.codegen.rendering import header_for, spec_constant
from worldflux.core.spec import ModelMaturity
from worldflux.core.spec_model import SpecWorldModel
from worldflux.discovery.project import Project, load_project
from worldflux.discovery.sources import ModelSource, other_sources
from worldflux.speclang import Issue, Spec
from worldflux.speclang.issues import JsonPath, raise_if_any

__all__ = ["count_preset_params", "measured_params", "shadowing_issues", "verify_param_counts"]


def shadowing_issues(specs: list[Spec], project: Project) -> list[Issue]:
    """A project's model types and aliases may not take a name that worldflux or an installed
    plugin already declares (the message names the other spec file)."""
    taken: dict[str, tuple[str, ModelSource]] = {}
    for source in other_sources(project):
        for model_type in source.types:
            taken.setdefault(model_type, ("model type", source))
        for alias in source.aliases:
            taken.setdefault(alias, ("alias", source))
    issues = []
    for spec in specs:
        names: list[tuple[JsonPath, str, bool]] = [(("model_type",), spec.model_type, False)]
        names += [(("aliases", alias), alias, True) for alias in spec.aliases]
        for path, name, key in names:
            if name in taken:
                what, source = taken[name]
                model_type = name if what == "model type" else source.aliases[name].split(":")[0]
                owner = source.spec_file(model_type)
                issues.append(
                    spec.doc.issue(
                        path,
                        f"{name!r} is already the {what} of {owner} ({source.label}); "
                        "a project model may not shadow it: choose another name",
                        key=key,
                    )
                )
    return issues


def _config_class(spec: Spec, text: str) -> Any:
    """Execute the rendered config module privately and return its config class."""
    name = f"_worldflux_verify_{spec.model_type}"
    module = types.ModuleType(name)
    module.__file__ = f"<generated config of {spec.source}>"
    sys.modules[name] = module  # pydantic resolves postponed annotations through sys.modules
    try:
        exec(compile(text, module.__file__, "exec"), module.__dict__)
        return getattr(module, spec.config_class_name)
    finally:
        del sys.modules[name]


def count_preset_params(
    spec: Spec, config_cls: Any, spec_constant: dict[str, Any]
) -> dict[str, Any]:
    """Preset -> trainable parameter count (or the exception that stopped its build)."""
    model_cls = type(
        spec.class_name,
        (SpecWorldModel,),
        {"SPEC": spec_constant, "maturity": ModelMaturity.parse(spec.data["maturity"])},
    )
    counts: dict[str, Any] = {}
    for preset, body in sorted(spec.presets.items()):
        try:
            config = config_cls(model_type=spec.model_type, **body["config"])
            with torch.device("meta"):
                model = model_cls(config)
            counts[preset] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        except Exception as error:  # reported at the preset, like a wrong count
            counts[preset] = error
    return counts


def measured_params(spec: Spec) -> dict[str, Any]:
    """Preset -> trainable parameter count (or the exception its build raised), from the spec
    alone (the config class is rendered, not formatted: formatting changes no behaviour)."""

    config_cls = _config_class(spec, render_config(spec, header_for(spec.source)))
    return count_preset_params(spec, config_cls, spec_constant(spec))


def verify_param_counts(specs: list[Spec], files: Mapping[str, str], root: Any) -> None:
    """Raise one SpecError listing every preset whose declared ``params`` is wrong.

    Raises:
        SpecError: ``file:line:col: $.presets.<p>.params: ... declares N, builds M``.
    """

    project = load_project(root)
    gen = project.display(project.generated_dir)
    issues: list[Issue] = []
    for spec in specs:
        config_cls = _config_class(spec, files[f"{gen}/configs/{spec.model_type}.py"])
        counts = count_preset_params(spec, config_cls, spec_constant(spec))
        for preset, found in counts.items():
            path = ("presets", preset, "params")
            declared = spec.presets[preset]["params"]
            if isinstance(found, Exception):
                message = f"preset {preset!r} does not build: {type(found).__name__}: {found}"
            elif found != declared:
                message = (
                    f"preset {preset!r} declares params: {declared}, but it builds with {found} "
                    f"trainable parameters (set params: {found})"
                )
            else:
                continue
            issues.append(spec.doc.issue(path, message, key=False))
    raise_if_any(issues, "specs")
