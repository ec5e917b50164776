"""worldflux.runtime.tune_cpu_allocator: opt-out, argument checks, and its effect (page faults)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from worldflux.runtime import OPT_OUT_ENV, tune_cpu_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

#: Allocates and frees MPPI-sized activations 200 times; prints the minor page faults it took.
#: Both modes first pin glibc's own starting thresholds (128 KiB; setting them also stops glibc's
#: dynamic threshold, which otherwise rises or not depending on what the imports happened to
#: free, so an untuned process took anywhere from 0 to 200,000 faults here); "tuned" then
#: applies tune_cpu_allocator, which must replace them.
_FAULTS = textwrap.dedent(
    """
    import ctypes, resource, sys, torch
    import worldflux.families
    libc = ctypes.CDLL("libc.so.6")
    assert libc.mallopt(-3, 128 * 1024) == 1 and libc.mallopt(-1, 128 * 1024) == 1
    if sys.argv[1] == "tuned":  # the tuning must override the pinned starting thresholds
        from worldflux.runtime import tune_cpu_allocator
        assert tune_cpu_allocator().applied
    sizes = [(512, 512), (512, 518), (2, 512, 512), (512, 101), (256, 1024)]
    for _ in range(3):
        keep = [torch.ones(s) for s in sizes]
        del keep
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        keep = [torch.ones(s) for s in sizes]
        del keep
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def test_opt_out_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPT_OUT_ENV, "0")
    result = tune_cpu_allocator()
    assert not result.applied
    assert OPT_OUT_ENV in result.reason


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mmap_threshold": 0}, "must be positive"),
        ({"trim_threshold": -5}, "must be positive"),
        ({"mmap_threshold": 64 << 20}, "at most 33554432 bytes"),
    ],
)
def test_bad_thresholds_are_refused(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tune_cpu_allocator(**kwargs)


@pytest.mark.skipif(not GLIBC, reason="mallopt tuning applies to glibc-based Linux only")
def test_applied_and_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPT_OUT_ENV, raising=False)
    first = tune_cpu_allocator()
    assert first.applied and first.mmap_threshold == 32 << 20
    assert tune_cpu_allocator() == first
    assert first.as_dict()["trim_threshold"] == 256 << 20


@pytest.mark.skipif(not GLIBC, reason="mallopt tuning applies to glibc-based Linux only")
def test_tuning_removes_the_page_faults_of_reallocation() -> None:
    env = {k: v for k, v in os.environ.items() if k != OPT_OUT_ENV}

    def faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return int(done.stdout.split()[-1])

    untuned, tuned = faults("untuned"), faults("tuned")
    assert untuned > 10_000, untuned  # every reallocation maps fresh pages
    assert tuned * 20 <= untuned, (untuned, tuned)
