"""Opt-in compiled regions: ``torch.compile`` (inductor) of a model's small hot per-step cells.

Compiling a whole loss unrolls its Python loops over time and horizon into one huge graph (slow
to compile, often slower to run on CPU). Instead every module class names the methods worth
compiling in its ``compile_regions`` class attribute (default empty, see
:class:`~worldflux.core.components.SlotModule`), e.g. DreamerV3's RSSM declares its one-step
``img_step`` / ``obs_step``. :func:`compile_model` walks the model's modules and replaces each
such method *on that instance* with ``torch.compile(method, dynamic=False)``:

* eager stays the default: nothing is compiled unless a run asks (``worldflux train --compile``,
  ``compile_model(model)``); a model whose classes declare no regions reports "nothing to
  compile";
* parameters, buffers, ``state_dict`` keys and checkpoints are unchanged (only instance
  attributes holding the compiled callables are added; :func:`uncompile_model` removes them);
* random draws are the eager ones (inductor's ``fallback_random``), so a compiled model samples
  what the eager model samples from the same seed;
* compiled code is cached on disk (inductor's FX-graph and AOT-autograd caches) under
  ``$TORCHINDUCTOR_CACHE_DIR``, by default ``~/.cache/worldflux/inductor``; compilation happens on
  the first calls, which :meth:`CompileReport.timing` measures apart from steady-state time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CACHE_ENV",
    "CompileReport",
    "CompiledRegion",
    "compile_model",
    "compiled_regions",
    "configure_cache",
    "default_cache_dir",
    "uncompile_model",
]

#: The environment variable inductor reads for its on-disk caches.
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
#: Instance attribute listing the methods :func:`compile_model` replaced on a module.
_MARK = "_worldflux_compiled_regions"
#: dynamo timers (``torch._dynamo.utils.compilation_time_metrics``) that hold compile work:
#: frame compilation (forward and eager AOT backward) and a lazily compiled backward.
_COMPILE_TIMERS = ("_compile.compile_inner", "backward._backward_impl")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/worldflux/inductor`` (``~/.cache/worldflux/inductor`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "worldflux" / "inductor"


def _user_cache_dir() -> str | None:
    """``$TORCHINDUCTOR_CACHE_DIR`` when the user chose it, else None.

    Importing ``torch._inductor.config`` (which other torch modules may do first) writes
    inductor's own default (``/tmp/torchinductor_<user>``) into the variable, so that value
    counts as unset.
    """
    chosen = os.environ.get(CACHE_ENV)
    if not chosen:
        return None
    try:
        # deferred: torch._dynamo/_inductor take seconds to import; eager never needs them
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir as torch_default
    except ImportError:  # pragma: no cover - private API moved: trust the variable
        return chosen
    return None if os.path.abspath(chosen) == os.path.abspath(torch_default()) else chosen


def configure_cache() -> str:
    """Point inductor's on-disk caches at the worldflux cache dir unless the user chose one
    (``$TORCHINDUCTOR_CACHE_DIR``), and turn the FX-graph cache on. Returns the directory."""
    if _user_cache_dir() is None:
        os.environ[CACHE_ENV] = str(default_cache_dir())
    # deferred: torch._dynamo/_inductor take seconds to import; eager never needs them
    from torch._inductor import config as inductor_config

    inductor_config.fx_graph_cache = True
    return os.environ[CACHE_ENV]


def _compile_seconds() -> float:
    """Seconds dynamo/inductor have spent compiling in this process so far."""
    try:
        # deferred: torch._dynamo/_inductor take seconds to import; eager never needs them
        from torch._dynamo.utils import compilation_time_metrics
    except ImportError:  # pragma: no cover - private API moved
        return 0.0
    return float(sum(sum(compilation_time_metrics.get(k, ())) for k in _COMPILE_TIMERS))


def _cache_counts() -> tuple[int, int]:
    """(FX-graph cache hits, misses) so far in this process."""
    try:
        # deferred: torch._dynamo/_inductor take seconds to import; eager never needs them
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - private API moved
        return 0, 0
    inductor = counters["inductor"]
    return int(inductor["fxgraph_cache_hit"]), int(inductor["fxgraph_cache_miss"])


@dataclass
class CompileReport:
    """What :func:`compile_model` compiled, and (after :meth:`timing`) what compiling cost.

    Attributes:
        regions: compiled methods as ``"<module path>.<method>"`` (``""`` is the model itself).
        cache_dir: inductor's on-disk cache directory.
        mode: the ``torch.compile`` mode (None: default).
        compile_seconds: compile time measured inside :meth:`timing` blocks (graphs are built
            on first calls, forward and backward).
        cache_hits / cache_misses: FX-graph cache lookups inside :meth:`timing` blocks; all hits
            means the disk cache was warm.
        graphs: graphs compiled inside :meth:`timing` blocks.
    """

    regions: tuple[str, ...] = ()
    cache_dir: str = ""
    mode: str | None = None
    compile_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    graphs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def compiled(self) -> bool:
        """Whether any region was compiled."""
        return bool(self.regions)

    @property
    def cache_warm(self) -> bool | None:
        """True when every graph came from the disk cache, False when any was built, None when
        nothing was looked up yet."""
        if not self.cache_hits + self.cache_misses:
            return None
        return self.cache_misses == 0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        """Add the compile time, cache lookups and graphs of the calls inside the block."""
        seconds, (hits, misses) = _compile_seconds(), _cache_counts()
        graphs = _graph_count()
        try:
            yield
        finally:
            self.compile_seconds += _compile_seconds() - seconds
            now_hits, now_misses = _cache_counts()
            self.cache_hits += now_hits - hits
            self.cache_misses += now_misses - misses
            self.graphs += _graph_count() - graphs

    def summary(self) -> str:
        """One line for logs and run summaries."""
        if not self.compiled:
            return "compile: nothing to compile (no module of this model declares compile_regions)"
        warm = {None: "not compiled yet", True: "warm", False: "cold"}[self.cache_warm]
        return (
            f"compile: {len(self.regions)} region(s), {self.graphs} graph(s) in "
            f"{self.compile_seconds:.1f} s (cache {warm}: {self.cache_hits} hit(s), "
            f"{self.cache_misses} miss(es), {self.cache_dir})"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (run summaries, benchmark details)."""
        return {
            "regions": list(self.regions),
            "cache_dir": self.cache_dir,
            "mode": self.mode,
            "compile_seconds": round(self.compile_seconds, 3),
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "cache_warm": self.cache_warm,
            "graphs": self.graphs,
        }


def _graph_count() -> int:
    try:
        # deferred: torch._dynamo/_inductor take seconds to import; eager never needs them
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - private API moved
        return 0
    return int(counters["stats"]["unique_graphs"])


def _options(mode: str | None) -> dict[str, Any]:
    """Inductor options of ``mode`` plus ``fallback_random`` (eager random draws)."""
    options: dict[str, Any] = {}
    if mode is not None and mode != "default":
        # deferred: torch._dynamo/_inductor take seconds to import; eager never needs them
        from torch._inductor import list_mode_options

        options.update(list_mode_options(mode))
    options["fallback_random"] = True
    return options


class CompiledRegion:
    """A compiled method of one module instance (what :func:`compile_model` installs).

    Calls go to ``compiled`` (``torch.compile`` of the bound method). A ``copy.deepcopy`` of the
    model (conformance, slow targets, snapshots) gets a region compiled for the *copy*: the
    compiled function of the original would otherwise keep computing with the original's
    parameters.
    """

    def __init__(self, module: nn.Module, name: str, compile_fn: Callable[..., Any]) -> None:
        self.module, self.name, self._compile_fn = module, name, compile_fn
        method = getattr(type(module), name, None)
        if not callable(method):
            raise AttributeError(
                f"{type(module).__name__}.compile_regions names {name!r}, not a method"
            )
        self.compiled = compile_fn(method.__get__(module, type(module)))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.compiled(*args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> CompiledRegion:
        module = memo.get(id(self.module))
        if module is None:  # the region alone is copied: keep it on the same module
            return self
        return CompiledRegion(module, self.name, self._compile_fn)

    def __repr__(self) -> str:
        return f"CompiledRegion({type(self.module).__name__}.{self.name})"


def _regions_of(module: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(type(module), "compile_regions", ()) or ())


def compile_model(
    model: nn.Module,
    *,
    mode: str | None = None,
    compiler: Callable[..., Any] | None = None,
) -> CompileReport:
    """Replace every declared compile region of ``model``'s modules by its compiled version.

    Walks ``model.named_modules()`` (slots, objective, behaviour and their submodules); for each
    module whose class lists method names in ``compile_regions``, sets an instance attribute
    :class:`CompiledRegion` calling ``torch.compile(bound_method, dynamic=False)``. Compiling
    twice is a no-op for regions already compiled.

    Args:
        model: any module (a WorldModel built from a spec, usually).
        mode: ``torch.compile`` mode (e.g. ``"max-autotune-no-cudagraphs"``); None: default.
        compiler: ``torch.compile`` itself unless given (tests pass a stand-in).

    Returns:
        the report; its ``compile_seconds`` stay 0 until the first calls run inside
        :meth:`CompileReport.timing`.

    Raises:
        AttributeError: a class names a region that is not one of its methods.
    """
    cache_dir = configure_cache()
    compiler = compiler if compiler is not None else torch.compile
    options = _options(mode)

    def compile_fn(method: Callable[..., Any]) -> Any:
        return compiler(method, dynamic=False, options=options)

    regions: list[str] = []
    for path, module in model.named_modules():
        names = _regions_of(module)
        if not names:
            continue
        done: list[str] = list(module.__dict__.get(_MARK, ()))
        for name in names:
            if name not in done:
                object.__setattr__(module, name, CompiledRegion(module, name, compile_fn))
                done.append(name)
            regions.append(f"{path}.{name}" if path else name)
        object.__setattr__(module, _MARK, tuple(done))
    return CompileReport(regions=tuple(regions), cache_dir=cache_dir, mode=mode)


def compiled_regions(model: nn.Module) -> tuple[str, ...]:
    """The regions currently compiled on ``model`` (``"<module path>.<method>"``)."""
    found: list[str] = []
    for path, module in model.named_modules():
        for name in module.__dict__.get(_MARK, ()):
            found.append(f"{path}.{name}" if path else name)
    return tuple(found)


def uncompile_model(model: nn.Module) -> None:
    """Remove every compiled region from ``model`` (back to the classes' eager methods)."""
    for module in model.modules():
        for name in module.__dict__.pop(_MARK, ()):
            module.__dict__.pop(name, None)
