"""Compiled-path workloads: the eager update workloads with ``worldflux.compile_model`` applied
(docs/compile.md). Compilation happens in ``prepare`` (two updates, timed apart); its seconds,
the regions, the graphs and the disk-cache hits go to ``details["compile"]``. Each workload is
compared (``compare_to``) with its eager twin, on ``--baseline REV`` REV's eager path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import Skipped
from benchmarks.flops import DREAMERV3_PRESETS, TDMPC2_PRESETS, dreamer_train_step, tdmpc2_update
from benchmarks.harness import Prepared, RunSettings, Workload
from benchmarks.workloads.models import (
    IMAGINE_HORIZON,
    build,
    common_details,
    update_op,
    walker_batch,
)

__all__ = ["WORKLOADS"]

#: TD-MPC2 config field of each flops.TDMPC2Dims field (as in models_tdmpc2).
_TDMPC2_FIELDS = {"latent": "latent_dim", "mlp": "mlp_dim", "enc": "enc_dim"}


def _compiled_update(model: Any, batch: Any) -> tuple[Callable[[], None], dict[str, Any]]:
    """``compile_model(model)``, then an update op whose first two calls (the compiling ones)
    run here; returns the op and the compile details.

    Raises:
        Skipped: this worldflux has no compiled path (an older revision).
    """
    import time

    try:
        from worldflux.training.compile import compile_model
    except ImportError as error:
        raise Skipped(f"worldflux.training.compile is not available ({error})") from None
    report = compile_model(model)
    op = update_op(model, batch)
    start = time.perf_counter()
    with report.timing():
        op()
        op()
    first_two = time.perf_counter() - start
    return op, {**report.as_dict(), "first_two_updates_s": round(first_two, 3)}


def _dreamer_train_ci(settings: RunSettings) -> Prepared:
    batch_size, seq_len = 32, 16
    model = build("dreamerv3:ci")
    dims = DREAMERV3_PRESETS["ci"]
    op, compiled = _compiled_update(model, walker_batch(batch_size, seq_len))
    details = common_details(model, dims.as_dict(), None)
    details.update(
        batch=batch_size,
        seq_len=seq_len,
        call="compile_model(model); Trainer(model).train_step(batch)",
        compile=compiled,
    )
    return Prepared(
        op=op,
        flops_per_op=dreamer_train_step(dims, batch_size, seq_len, IMAGINE_HORIZON),
        details=details,
    )


def _tdmpc2_update(settings: RunSettings) -> Prepared:
    batch_size, horizon = 256, 3
    model = build("tdmpc2:5m")
    dims = TDMPC2_PRESETS["5m"]
    op, compiled = _compiled_update(model, walker_batch(batch_size, horizon + 1))
    details = common_details(model, dims.as_dict(), _TDMPC2_FIELDS)
    details.update(
        batch=batch_size,
        horizon=horizon,
        call="compile_model(model); Trainer(model).train_step(batch[256, 4])",
        compile=compiled,
    )
    return Prepared(op=op, flops_per_op=tdmpc2_update(dims, batch_size, horizon), details=details)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="dreamerv3.train.ci.compiled",
        description="dreamerv3.train.ci with compile_model (DreamerV3's 8 regions), "
        "compilation in prepare",
        unit="s/update",
        prepare=_dreamer_train_ci,
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
        prepare=_tdmpc2_update,
        runs=7,
        warmup=2,
        timeout_s=1200.0,
        compare_to="tdmpc2.update",
    ),
)
