"""The workload catalogue and name/glob selection.

Workload modules define :class:`~benchmarks.harness.Workload` objects whose ``prepare`` imports
worldflux lazily, so importing the catalogue is cheap and never builds a model.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from benchmarks import BenchmarkError
from benchmarks.harness import Workload
from benchmarks.workloads import commands, compiled, models_dreamer, models_tdmpc2, replay

__all__ = ["WORKLOADS", "get", "select"]

#: Every workload, in the order a full run executes them.
WORKLOADS: tuple[Workload, ...] = (
    *commands.WORKLOADS[:1],  # import first: the cheapest smoke test of the tree
    *replay.WORKLOADS,
    *models_dreamer.WORKLOADS,
    *models_tdmpc2.WORKLOADS,
    *compiled.WORKLOADS,  # compile_model on the update workloads (docs/compile.md)
    *commands.WORKLOADS[1:],
)


def _index(workloads: Sequence[Workload]) -> dict[str, Workload]:
    index: dict[str, Workload] = {}
    for workload in workloads:
        if workload.name in index:
            raise BenchmarkError(f"workload name {workload.name!r} is defined twice")
        index[workload.name] = workload
    return index


def get(name: str, workloads: Sequence[Workload] = WORKLOADS) -> Workload:
    """The workload called ``name``.

    Raises:
        BenchmarkError: no such workload (the message lists the names).
    """
    index = _index(workloads)
    try:
        return index[name]
    except KeyError:
        raise BenchmarkError(f"unknown workload {name!r}; workloads: {', '.join(index)}") from None


def select(
    patterns: Sequence[str] | None, workloads: Sequence[Workload] = WORKLOADS
) -> list[Workload]:
    """Workloads whose name matches any shell-style pattern (``tdmpc2.*``), in catalogue order.

    Patterns may be comma-separated; None or empty selects everything.

    Raises:
        BenchmarkError: a pattern that matches no workload (the message lists the names).
    """
    index = _index(workloads)
    wanted = [p.strip() for item in (patterns or ()) for p in item.split(",") if p.strip()]
    if not wanted:
        return list(index.values())
    for pattern in wanted:
        if not fnmatch.filter(index, pattern):
            raise BenchmarkError(
                f"--only {pattern!r} matches no workload; workloads: {', '.join(index)}"
            )
    return [w for name, w in index.items() if any(fnmatch.fnmatchcase(name, p) for p in wanted)]
