"""Process-level CPU tuning: keep freed tensor memory in the process (glibc ``mallopt``).

PyTorch's CPU tensors come straight from ``malloc``. With glibc's defaults a freed block larger
than the (adaptive) mmap threshold, or a large free block at the top of the heap, goes back to the
operating system, and the next tensor of that size page-faults its memory in again, zeroed. Eager
world-model code allocates and frees the same few activation sizes thousands of times per second
(an MPPI plan allocates ~600 tensors of 0.1-2 MiB), so those page faults cost it about a third
of its time (TD-MPC2 5m MPPI on 2 cores: ~350 ms/action with glibc's defaults, ~230 tuned).
Raising the mmap threshold to 32 MiB and the trim threshold to 256 MiB keeps blocks of those
sizes in the heap for reuse; the cost is that up to ~256 MiB of freed memory may stay resident.

The ``worldflux`` command line, :func:`worldflux.training.train` and the benchmark workers call
:func:`tune_cpu_allocator` at start-up; other Python users call it once themselves (it is never
applied on import). Set ``WORLDFLUX_ALLOCATOR_TUNING=0`` to opt out everywhere. Elsewhere than
glibc-based Linux it does nothing and says why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AllocatorTuning", "tune_cpu_allocator"]

#: ``mallopt`` parameter numbers (glibc ``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: glibc caps M_MMAP_THRESHOLD at 32 MiB on 64-bit systems.
DEFAULT_MMAP_THRESHOLD = 32 << 20
DEFAULT_TRIM_THRESHOLD = 256 << 20

#: Environment switch: "0", "false", "no" or "off" disables the tuning.
OPT_OUT_ENV = "WORLDFLUX_ALLOCATOR_TUNING"

_applied: AllocatorTuning | None = None


@dataclass(frozen=True)
class AllocatorTuning:
    """What :func:`tune_cpu_allocator` did.

    Attributes:
        applied: whether the thresholds are now in effect.
        mmap_threshold: bytes; allocations below it are served from the heap (None: unchanged).
        trim_threshold: bytes of free heap top kept before memory is returned (None: unchanged).
        reason: why nothing was applied, when ``applied`` is False.
    """

    applied: bool
    mmap_threshold: int | None = None
    trim_threshold: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT_ENV, "1").strip().lower() in {"0", "false", "no", "off"}


def tune_cpu_allocator(
    mmap_threshold: int = DEFAULT_MMAP_THRESHOLD,
    trim_threshold: int = DEFAULT_TRIM_THRESHOLD,
) -> AllocatorTuning:
    """Raise glibc's mmap and trim thresholds for this process (idempotent).

    Args:
        mmap_threshold: bytes, at most 32 MiB (glibc's cap on 64-bit systems).
        trim_threshold: bytes of free memory at the heap top kept before trimming.

    Returns:
        An :class:`AllocatorTuning` record (``applied=False`` with a reason when the platform
        is not glibc, ``WORLDFLUX_ALLOCATOR_TUNING=0`` is set, or ``mallopt`` refused).

    Raises:
        ValueError: a threshold is not positive, or the mmap threshold exceeds 32 MiB.
    """
    global _applied
    if mmap_threshold <= 0 or trim_threshold <= 0:
        raise ValueError(
            f"allocator thresholds must be positive, found mmap_threshold={mmap_threshold}, "
            f"trim_threshold={trim_threshold}"
        )
    if mmap_threshold > DEFAULT_MMAP_THRESHOLD:
        raise ValueError(
            f"mmap_threshold: expected at most {DEFAULT_MMAP_THRESHOLD} bytes (glibc's cap), "
            f"found {mmap_threshold}"
        )
    if _opted_out():
        return AllocatorTuning(False, reason=f"disabled by {OPT_OUT_ENV}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return AllocatorTuning(False, reason="not a glibc-based Linux")
    if _applied is not None and _applied == AllocatorTuning(True, mmap_threshold, trim_threshold):
        return _applied
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    except (OSError, AttributeError) as error:
        return AllocatorTuning(False, reason=f"mallopt unavailable ({error})")
    if not ok:
        return AllocatorTuning(False, reason="mallopt refused the thresholds")
    _applied = AllocatorTuning(True, mmap_threshold, trim_threshold)
    return _applied
