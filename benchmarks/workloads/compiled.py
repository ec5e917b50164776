"""Compiled-path workloads: the eager update workloads with ``worldflux.compile_model`` applied
(docs/compile.md). Compilation happens in ``prepare`` (two updates, timed apart); its seconds,
the regions, the graphs and the disk-cache hits go to ``details["compile"]``. Each workload is
compared (``compare_to``) with its eager twin, on ``--baseline REV`` REV's eager path.
"""

from __future__ import annotations

from benchmarks.harness import Workload
from benchmarks.workloads.models_dreamer import dreamer_train
from benchmarks.workloads.models_tdmpc2 import tdmpc2_update_workload

__all__ = ["WORKLOADS"]

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="dreamerv3.train.ci.compiled",
        description="dreamerv3.train.ci with compile_model (DreamerV3's 8 regions), "
        "compilation in prepare",
        unit="s/update",
        prepare=dreamer_train("ci", 32, 16, compile=True),
        runs=10,
        warmup=3,
        quick_runs=3,
        timeout_s=1200.0,
        compare_to="dreamerv3.train.ci",
        speedup_target=6.0,
    ),
    Workload(
        name="tdmpc2.update.compiled",
        description="tdmpc2.update with compile_model (TD-MPC2 declares no region: nothing "
        "pays on CPU, so this is the eager update)",
        unit="s/update",
        prepare=tdmpc2_update_workload(compile=True),
        runs=7,
        warmup=2,
        timeout_s=1200.0,
        compare_to="tdmpc2.update",
    ),
)
