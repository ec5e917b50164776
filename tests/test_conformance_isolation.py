"""Isolation: a target that exits, segfaults, leaves threads or writes into its CWD fails the
check it was in, in a report that is always complete."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from torch import Tensor
from worldflux.conformance.engine import check_model
from worldflux.conformance.example_adapter import PlainWorldAdapter

from worldflux.core.types import LossOutput, ModelOutput, State

CHECKS = ["io.encode", "io.decode", "io.loss"]


class ExitsInDecode(PlainWorldAdapter):
    def decode(self, state: Mapping[str, Tensor]) -> ModelOutput:
        os._exit(3)


class SegfaultsInLoss(PlainWorldAdapter):
    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        ctypes.string_at(0)
        raise AssertionError("unreachable")


class HangsAtExit(PlainWorldAdapter):
    def encode(self, obs: Tensor) -> State:
        threading.Thread(target=time.sleep, args=(600,)).start()  # non-daemon
        return super().encode(obs)


class WritesIntoCwd(PlainWorldAdapter):
    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        Path("debug_dump.txt").write_text("x")
        return super().loss(batch)


def _run(cls: type, tmp: Path, isolate: str = "target", **kw: Any) -> dict[str, Any]:
    report = check_model(
        cls, profile="ci", seed=0, checks=CHECKS, crash_dir=tmp, isolate=isolate, **kw
    )
    return {c.id: c for c in report.results[0].checks}


@pytest.mark.parametrize("isolate", ["target", "check"])
def test_os_exit_fails_only_the_check_it_happened_in(isolate: str, tmp_path: Path) -> None:
    found = _run(ExitsInDecode, tmp_path, isolate)
    assert set(found) == set(CHECKS)
    assert (
        found["io.decode"].status == "fail" and "exited with code 3" in found["io.decode"].message
    )
    assert found["io.encode"].status == "pass" and found["io.loss"].status == "pass"


def test_segfault_is_a_failure(tmp_path: Path) -> None:
    found = _run(SegfaultsInLoss, tmp_path)
    assert found["io.loss"].status == "fail" and "SIGSEGV" in found["io.loss"].message
    assert found["io.decode"].status == "pass"


def test_a_non_daemon_thread_neither_hangs_nor_passes(tmp_path: Path) -> None:
    start = time.perf_counter()
    found = _run(HangsAtExit, tmp_path)
    assert found["io.encode"].status == "fail" and "thread" in found["io.encode"].message
    assert time.perf_counter() - start < 120


def test_writes_into_the_cwd_are_reported(tmp_path: Path) -> None:
    found = _run(WritesIntoCwd, tmp_path)
    assert "debug_dump.txt" in found["io.loss"].message
    assert not Path("debug_dump.txt").exists()
    strict = check_model(
        WritesIntoCwd,
        profile="ci",
        seed=0,
        checks=["io.loss"],
        crash_dir=tmp_path,
        isolate="target",
        strict=True,
    )
    assert strict.results[0].checks[0].status == "fail"


@pytest.mark.parametrize("cls", [WritesIntoCwd, ExitsInDecode])
def test_the_temporary_working_directories_are_removed(
    cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every subprocess's scratch CWD is gone afterwards, even when the target killed it."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    _run(cls, tmp_path, isolate="check")
    assert [p.name for p in scratch.iterdir() if p.name.startswith("wf-")] == []
