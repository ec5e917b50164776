"""Wall-clock workloads that run a fresh interpreter: ``import worldflux``, CLI start-up and two
CLI commands.

Each op is one subprocess with the worker's thread count exported (``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``). A command that exits 0 or 1 (1 = "a check failed", e.g. a stale generated
tree or a failing model) still yields a valid time; its exit codes are kept in the details. Any
other exit status, or a timeout, makes the workload an error.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import BenchmarkError, Skipped
from benchmarks.harness import Prepared, RunSettings, Target, Workload

__all__ = ["WORKLOADS", "child_env", "run_command"]

#: `import worldflux` is lazy (no torch); the cold cost of a usable API is the import plus the
#: first registry lookup, which imports torch, the model code and every source's catalog.
_IMPORT_CODE = (
    "import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter(); "
    "import worldflux; worldflux.list_models(); t2 = time.perf_counter(); "
    "print('IMPORT_SECONDS', repr(t2 - t0), repr(t1 - t0))"
)


def child_env(threads: int) -> dict[str, str]:
    """This environment with the thread count pinned for torch/OpenMP/MKL in the child."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def run_command(
    argv: Sequence[str], threads: int, timeout_s: float, accept: Sequence[int] = (0, 1)
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``argv``; return its wall time (s) and the completed process.

    Raises:
        BenchmarkError: a timeout or an exit status outside ``accept`` (with the output tail).
    """
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(argv),
            env=child_env(threads),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{' '.join(argv)}: no exit after {timeout_s:.0f} s") from None
    elapsed = time.perf_counter() - start
    if done.returncode not in accept:
        tail = (done.stdout + done.stderr)[-1500:]
        raise BenchmarkError(
            f"{' '.join(argv)}: expected exit status in {list(accept)}, found "
            f"{done.returncode}\n{tail}"
        )
    return elapsed, done


def _prepare_import(settings: RunSettings) -> Prepared:
    details: dict[str, Any] = {
        "command": [sys.executable, "-c", _IMPORT_CODE],
        "wall_s": [],  # whole-process wall time of every call, warm-ups first
        "torch_s": [],  # the `import torch` part of every call, warm-ups first
    }

    def op() -> float:
        wall, done = run_command(details["command"], settings.threads, 120.0, accept=(0,))
        details["wall_s"].append(wall)
        for line in done.stdout.splitlines():
            if line.startswith("IMPORT_SECONDS "):
                _, total, torch_part = line.split()
                details["torch_s"].append(float(torch_part))
                return float(total)
        raise BenchmarkError(f"import worldflux printed no timing; stdout: {done.stdout[-500:]!r}")

    return Prepared(op=op, count_flops=False, details=details)


def _cli_workload(
    module: str, args: Sequence[str], timeout_s: float
) -> Callable[[RunSettings], Prepared]:
    """A ``prepare`` timing ``python -m worldflux.cli ARGS`` (skipped if ``module`` is absent)."""

    def prepare(settings: RunSettings) -> Prepared:
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            present = False
        if not present:
            raise Skipped(f"{module} is not available yet")
        argv = [sys.executable, "-m", "worldflux.cli", *args]
        details: dict[str, Any] = {"command": argv, "exit_codes": []}

        def op() -> float:
            wall, done = run_command(argv, settings.threads, timeout_s)
            details["exit_codes"].append(done.returncode)
            details["output_tail"] = (done.stdout + done.stderr)[-600:]
            return wall

        return Prepared(op=op, count_flops=False, details=details)

    return prepare


def _startup_workload(args: Sequence[str]) -> Callable[[RunSettings], Prepared]:
    """A ``prepare`` timing ``python -X importtime -m worldflux.cli ARGS`` (the wall time of the
    whole process; details keep how many modules it imported and the slowest, from importtime)."""

    def prepare(settings: RunSettings) -> Prepared:
        argv = [sys.executable, "-X", "importtime", "-m", "worldflux.cli", *args]
        details: dict[str, Any] = {"command": argv}

        def op() -> float:
            wall, done = run_command(argv, settings.threads, 120.0, accept=(0,))
            rows = [
                line.split("|")
                for line in done.stderr.splitlines()
                if line.startswith("import time:") and "|" in line
            ]
            cumulative = sorted(
                ((int(r[1]), r[2].strip()) for r in rows if r[1].strip().isdigit()), reverse=True
            )
            details["modules_imported"] = len(rows)
            details["torch_imported"] = any(name == "torch" for _, name in cumulative)
            details["slowest_us"] = cumulative[:5]
            return wall

        return Prepared(op=op, count_flops=False, details=details)

    return prepare


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="import.cold",
        description="`import worldflux` + first registry lookup in a fresh interpreter (torch)",
        unit="s",
        prepare=_prepare_import,
        target=Target(2.0, scales_with_calibration=False),
        runs=5,
        warmup=1,
        quick_runs=2,
        timeout_s=600.0,
    ),
    Workload(
        name="cli.help",
        description="`worldflux --help` in a fresh interpreter (no torch, no model code)",
        unit="s",
        prepare=_startup_workload(["--help"]),
        target=Target(0.5, scales_with_calibration=False),
        runs=5,
        warmup=1,
        quick_runs=2,
        timeout_s=300.0,
    ),
    Workload(
        name="cli.models_list",
        description="`worldflux models list` in a fresh interpreter (catalogs only, no torch)",
        unit="s",
        prepare=_startup_workload(["models", "list"]),
        target=Target(0.5, scales_with_calibration=False),
        runs=5,
        warmup=1,
        quick_runs=2,
        timeout_s=300.0,
    ),
    Workload(
        name="cli.generate_check",
        description="`worldflux generate --check`: regenerate in memory and diff generated/",
        unit="s",
        prepare=_cli_workload("worldflux.codegen.cli", ["generate", "--check"], 300.0),
        runs=5,
        warmup=1,
        quick_runs=1,
        quick_warmup=0,
        timeout_s=1200.0,
    ),
    Workload(
        name="cli.conformance_ci",
        description="`worldflux conformance run --all --profile ci`: every model, ci profile",
        unit="s",
        prepare=_cli_workload(
            "worldflux.conformance.cli", ["conformance", "run", "--all", "--profile", "ci"], 900.0
        ),
        target=Target(120.0, scales_with_calibration=False),
        runs=5,
        warmup=0,
        quick_runs=1,
        quick_warmup=0,
        timeout_s=3600.0,
    ),
)
