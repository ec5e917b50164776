"""What the suite checks: registered models, import paths and duck-typed adapters.

A *target* is resolved from a registered id or alias (``tdmpc2-ci``), an import path
(``package.module:attr`` or ``path/to/file.py:attr``) naming a WorldModel class, a factory or an
instance, or a Python object. External implementations need not subclass ``WorldModel``: they
satisfy :class:`WorldModelLike` (the adapter protocol, see docs/conformance.md).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from ruamel.yaml import YAML
from torch import Tensor, nn

from worldflux.core.exceptions import ConfigurationError, ModelNotFoundError, SpecError
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.spec import Capability, ModelIOContract, ModelMaturity
from worldflux.factory import create_world_model

__all__ = [
    "Target",
    "WorldModelLike",
    "bind_contract",
    "import_attr",
    "load_conformance_spec",
    "resolve_all",
    "resolve_target",
]


@runtime_checkable
class WorldModelLike(Protocol):
    """The duck-typed adapter protocol: what the suite calls on a model.

    ``WorldModel`` satisfies it. An adapter around a model written without worldflux implements
    these methods with worldflux types (``State`` / ``ModelOutput`` / ``Trajectory`` /
    ``LossOutput``; plain ``dict[str, Tensor]`` is accepted for a State and for predictions).
    Optional attributes: ``maturity``, ``capabilities``, ``composable_support``,
    ``swap_component(slot, key)``, ``slot_modules()``, ``plan(obs)``, ``config``, ``eval()``.
    """

    def io_contract(self) -> ModelIOContract:
        """The (symbolic or bound) I/O contract."""
        ...

    def encode(self, obs: Any) -> Mapping[str, Tensor]:
        """``obs [B, *obs_shape]`` -> State ``[B, ...]``."""
        ...

    def transition(self, state: Any, action: Tensor) -> Mapping[str, Tensor]:
        """State ``[B, ...]``, action ``[B, A]`` (or ``[B]`` int64) -> next State."""
        ...

    def decode(self, state: Any) -> Any:
        """State -> ``ModelOutput`` (or a dict of predictions ``[B, ...]``)."""
        ...

    def rollout(self, state: Any, actions: Tensor) -> Any:
        """State and ``actions [B, H, ...]`` -> ``Trajectory`` (states ``[B, H+1, ...]``)."""
        ...

    def loss(self, batch: Any) -> Any:
        """``[B, T, ...]`` batch -> ``LossOutput``."""
        ...

    def parameters(self) -> Iterator[nn.Parameter]: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def state_dict(self) -> Mapping[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> Any: ...


@dataclass
class Target:
    """A resolved target.

    Attributes:
        name: display name (the id, alias or import path as given).
        ref: how to resolve it again (for repro commands and replay); "" for in-memory objects.
        factory: builds a fresh model (the caller seeds the global RNG first).
        declared: the declared maturity.
        model_type: the registered type, or None for unregistered targets.
        preset: the preset the cheap checks build (``ci`` when it exists, else the smallest).
        spec: the SPEC dict (spec-generated models) or the ``--spec`` file content, else None.
        symbols: extra symbols that bind an external contract (``default_env``, ``symbols``).
        external: True when the target does not come from the registry.
        spec_file: the ``--spec`` file, if any.
        cwd: the directory it was resolved from (the import root of ``package.module:attr``
            targets and the project whose models were seen), for crash files and replay.
    """

    name: str
    ref: str
    factory: Callable[[], Any]
    declared: ModelMaturity
    model_type: str | None = None
    preset: str | None = None
    spec: dict[str, Any] | None = None
    symbols: dict[str, Any] = field(default_factory=dict)
    external: bool = False
    spec_file: str | None = None
    model_cls: type | None = None
    cwd: str = field(default_factory=os.getcwd)


def absolute_ref(ref: str) -> str:
    """``ref`` with a file path made absolute (``path/to/file.py:attr``), so a crash file
    replays from any directory; ids and ``package.module:attr`` are kept as given."""
    module, sep, attr = ref.rpartition(":")
    if sep and (module.endswith(".py") or os.sep in module):
        return f"{Path(module).resolve()}:{attr}"
    return ref


def _count_params(cls: type, config: Any) -> int:
    with torch.device("meta"):
        model = cls(config)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cheapest_preset(model_type: str) -> str | None:
    """``ci`` when the model has it, else the preset with the fewest trainable parameters
    (from ``SPEC["preset_params"]``, or counted on the meta device), else None."""
    cls = WorldModelRegistry.get(model_type)
    presets = dict(getattr(cls, "presets", {}) or {})
    if not presets:
        return None
    if "ci" in presets:
        return "ci"
    declared = (getattr(cls, "SPEC", {}) or {}).get("preset_params") or {}
    counts: dict[str, int] = {}
    config_cls = WorldModelRegistry.get_config_class(model_type)
    for name, overrides in presets.items():
        if isinstance(declared.get(name), int):
            counts[name] = int(declared[name])
            continue
        try:
            counts[name] = _count_params(cls, config_cls(model_type=model_type, **overrides))
        except Exception:  # a preset that fails to build is reported by spec.presets_build
            counts[name] = 2**62
    return min(sorted(counts), key=lambda n: counts[n])


def _registered(name: str, model_type: str, preset: str | None) -> Target:
    cls = WorldModelRegistry.get(model_type)
    chosen = preset  # None: the config defaults, as create_world_model builds them
    model_id = f"{model_type}:{chosen}" if chosen else model_type
    spec = dict(getattr(cls, "SPEC", {}) or {}) or None
    return Target(
        name=name,
        ref=name,
        factory=lambda: create_world_model(model_id),
        declared=ModelMaturity.parse(getattr(cls, "maturity", ModelMaturity.EXPERIMENTAL)),
        model_type=model_type,
        preset=chosen,
        spec=spec,
        model_cls=cls,
    )


def import_attr(path: str) -> Any:
    module_part, _, attr_part = path.rpartition(":")
    if not module_part or not attr_part:
        raise ConfigurationError(f"import path {path!r}: expected 'package.module:attr'")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if module_part.endswith(".py") or os.sep in module_part:
            file = Path(module_part).resolve()
            if not file.is_file():
                raise ConfigurationError(f"import path {path!r}: no such file {file}")
            name = f"_wf_conformance_target_{abs(hash(str(file)))}"
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise ConfigurationError(f"import path {path!r}: cannot load {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_part)
    except ConfigurationError:
        raise
    except Exception as error:
        raise ConfigurationError(
            f"import path {path!r}: importing {module_part!r} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    obj: Any = module
    for part in attr_part.split("."):
        if not hasattr(obj, part):
            raise ConfigurationError(
                f"import path {path!r}: module {module_part!r} has no attribute {attr_part!r}"
            )
        obj = getattr(obj, part)
    return obj


def load_conformance_spec(path: str | Path) -> dict[str, Any]:
    """Read a ``--spec`` file (YAML or JSON): ``maturity``, ``io_contract``, optional
    ``capabilities``, ``composable``, ``default_env`` (obs_shape, action_dim, action_type),
    ``symbols`` (extra dims), ``parity``, ``conformance`` (hints such as ``seq_lens``).

    A full model spec (specs/models/*.yaml) is accepted too: unknown keys are ignored.

    Raises:
        SpecError: missing file, unparsable text, or invalid values, naming the file and key.
    """
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"{file}: no such spec file")
    # deferred: speclang (jsonschema, ruamel.yaml) loads only when a spec file is read
    from worldflux.speclang import load_spec_text
    from worldflux.speclang.budget import check_budget, read_spec_file

    raw, unreadable = read_spec_file(file, str(file))  # untrusted: bounded before parsing
    try:
        text = raw.decode("utf-8") if raw is not None else ""
    except UnicodeDecodeError as error:
        raise SpecError(f"{file}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    over = unreadable or check_budget(text, str(file))
    if over is not None:
        raise SpecError(str(over))
    try:
        data = YAML(typ="safe").load(text)
    except Exception as error:
        raise SpecError(f"{file}: not valid YAML/JSON ({error})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{file}: expected a mapping at the top level, found {type(data).__name__}")
    if "spec_version" in data:  # a full model spec: the spec loader validates it (located errors)
        data = dict(load_spec_text(text, str(file)).data)
    if "maturity" not in data:
        raise SpecError(f"{file}: missing key 'maturity' (reference | experimental | skeleton)")
    try:
        data["maturity"] = ModelMaturity.parse(data["maturity"]).value
        if "io_contract" in data:
            ModelIOContract.from_dict(data["io_contract"])
        for cap in data.get("capabilities", []) or []:
            Capability(cap)
    except (ValueError, TypeError, ConfigurationError) as error:
        raise SpecError(f"{file}: {error}") from None
    return dict(data)


def _external(
    name: str, ref: str, obj: Any, spec: dict[str, Any] | None, spec_file: str | None
) -> Target:
    factory: Callable[[], Any]
    model_cls: type | None = None
    if inspect.isclass(obj):
        model_cls = obj
        factory = obj
    elif callable(obj) and not hasattr(obj, "encode"):
        factory = obj
    else:
        instance = obj

        def factory() -> Any:
            return copy.deepcopy(instance)

    maturity: Any = (spec or {}).get("maturity")
    if maturity is None:
        maturity = getattr(model_cls or obj, "maturity", None)
    if maturity is None and model_cls is None and factory is obj:
        try:  # a factory: its product may declare the maturity
            maturity = getattr(factory(), "maturity", None)
        except Exception as error:
            raise ConfigurationError(
                f"target {name!r}: calling the factory failed: {type(error).__name__}: {error}"
            ) from error
    if maturity is None:
        raise SpecError(
            f"target {name!r} declares no maturity: set a `maturity` attribute on it or pass "
            "--spec FILE with `maturity: skeleton | experimental | reference`"
        )
    symbols: dict[str, Any] = {}
    env = (spec or {}).get("default_env") or {}
    symbols.update({k: v for k, v in env.items() if k != "action_type"})
    symbols.update((spec or {}).get("symbols") or {})
    model_type = None
    if model_cls is not None and issubclass(model_cls, WorldModel) and model_cls.model_type:
        model_type = model_cls.model_type
    class_spec = dict(getattr(model_cls, "SPEC", {}) or {}) if model_cls is not None else {}
    return Target(
        name=name,
        ref=ref,
        factory=factory,
        declared=ModelMaturity.parse(maturity),
        model_type=model_type,
        spec=spec if spec is not None else (class_spec or None),
        symbols=symbols,
        external=True,
        spec_file=spec_file,
        model_cls=model_cls,
    )


def resolve_target(target: Any, spec_file: str | Path | None = None) -> Target:
    """Resolve a registered id / alias, an import path, or an object (class, factory, instance).

    Raises:
        ModelNotFoundError: an unknown id that is not an import path.
        ConfigurationError / SpecError: an import path or spec file that cannot be used.
    """
    spec = load_conformance_spec(spec_file) if spec_file is not None else None
    spec_name = None if spec_file is None else str(Path(spec_file).resolve())
    if not isinstance(target, str):
        name = getattr(target, "__qualname__", None) or type(target).__name__
        return _external(name, "", target, spec, spec_name)
    if spec is None:
        # one meaning for an id everywhere: what the registry resolves it to (`tdmpc2` is the
        # alias of `tdmpc2:5m`, as in create_world_model); `--all` names each `type:ci` itself
        try:
            model_type, preset = WorldModelRegistry.resolve(target)
        except ModelNotFoundError:
            if ":" not in target:
                raise
        else:
            return _registered(target, model_type, preset)
    if ":" not in target:
        raise ModelNotFoundError(f"target {target!r} is neither a registered id nor an import path")
    return _external(target, absolute_ref(target), import_attr(target), spec, spec_name)


def resolve_all() -> list[Target]:
    """One target per registered model type, named ``type:preset`` at its ``ci`` (or smallest)
    preset, so reports and repro commands name exactly what was checked."""
    targets = []
    for model_type in WorldModelRegistry.list_types():
        preset = cheapest_preset(model_type)
        name = f"{model_type}:{preset}" if preset else model_type
        targets.append(_registered(name, model_type, preset))
    return targets


def bind_contract(model: Any, target: Target) -> ModelIOContract:
    """The model's contract with every symbol bound.

    WorldModels bind from their config; adapters from ``--spec`` (``io_contract``,
    ``default_env``, ``symbols``) or their own ``io_contract()`` and ``config``.

    Raises:
        ConfigurationError: a symbol that nothing binds (naming it).
    """
    if target.spec_file is None and hasattr(model, "bound_contract"):
        bound: ModelIOContract = model.bound_contract()
        return bound
    spec = target.spec or {}
    if target.spec_file is not None and "io_contract" in spec:
        contract = ModelIOContract.from_dict(spec["io_contract"])
    elif hasattr(model, "io_contract"):
        contract = model.io_contract()
    else:
        raise SpecError(f"target {target.name!r} has no io_contract(): add one or pass --spec FILE")
    if contract.is_bound:
        return contract
    config = getattr(model, "config", None)
    symbols = dict(target.symbols)
    obs_shape = symbols.pop("obs_shape", None) or getattr(config, "obs_shape", None)
    action_dim = symbols.pop("action_dim", None) or getattr(config, "action_dim", None)
    return contract.bind(config, obs_shape, action_dim, **symbols)
