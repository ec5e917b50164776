"""Run one load in a forked child with a time limit (SIGALRM), an address-space limit
(RLIMIT_AS above what the process already maps) and a peak-memory measurement; report what it
raised. A case that hangs, allocates without bound or crashes the interpreter shows up as a
signal or an error other than the expected one, never as a stuck or swapping test run."""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = ["Outcome", "record", "requires_fork", "run_bounded"]

requires_fork = pytest.mark.skipif(
    not hasattr(os, "fork") or not sys.platform.startswith("linux"),
    reason="the bounded runner forks and reads /proc (Linux)",
)


@dataclass(frozen=True)
class Outcome:
    """What the child did: the exception it raised (or None), its message, the seconds the call
    took, the peak memory it added (MiB), and how the child ended."""

    error_type: str | None
    message: str
    seconds: float
    peak_mib: float
    status: str


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _child(
    call: Callable[[Any], object],
    prepare: Callable[[], Any],
    seconds: int,
    memory_mib: int,
    fd: int,
) -> None:
    import torch

    torch.set_num_threads(1)
    prepared = prepare()
    mapped = _status_kib("VmSize") * 1024
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = mapped + (memory_mib << 20)
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard < 0 else min(soft, hard), hard))
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset the peak-RSS counter to the current RSS
    except OSError:
        pass
    start_rss = _status_kib("VmRSS")
    signal.alarm(seconds)
    start = time.perf_counter()
    result: dict[str, object]
    try:
        call(prepared)
        result = {"error_type": None, "message": ""}
    except BaseException as error:
        result = {"error_type": type(error).__name__, "message": str(error)[:2000]}
    result["seconds"] = time.perf_counter() - start
    result["peak_mib"] = max(0, _status_kib("VmHWM") - start_rss) / 1024
    os.write(fd, json.dumps(result).encode())


def run_bounded(
    call: Callable[[Any], object],
    prepare: Callable[[], Any] = lambda: None,
    seconds: int = 20,
    memory_mib: int = 1024,
) -> Outcome:
    """Run ``call(prepare())`` in a forked child; only ``call`` is limited to ``seconds`` and
    ``memory_mib`` more memory (and measured)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            _child(call, prepare, seconds, memory_mib, write_fd)
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return Outcome(None, "", float(seconds), 0.0, f"killed by {name}")
    if not chunks:
        return Outcome(None, "", 0.0, 0.0, f"exited {os.WEXITSTATUS(status)} without a report")
    data = json.loads(b"".join(chunks))
    return Outcome(data["error_type"], data["message"], data["seconds"], data["peak_mib"], "exited")


def record(key: str, value: dict[str, Any]) -> None:
    """Merge ``value`` under ``key`` into ``$WORLDFLUX_RELIABILITY_REPORT`` (when set)."""
    target = os.environ.get("WORLDFLUX_RELIABILITY_REPORT")
    if not target:
        return
    try:
        with open(target) as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        report = {}
    report[key] = value
    with open(target, "w") as handle:
        json.dump(report, handle, indent=1, sort_keys=True)
        handle.write("\n")
