"""Stopping a run without losing it: Ctrl-C and SIGTERM ask the loop to stop cleanly.

The first SIGINT or SIGTERM sets a flag; the training loop finishes the current episode (so the
checkpoint it writes resumes bitwise exactly, like every checkpoint, taken at an episode end),
writes a checkpoint and raises :class:`TrainingInterrupted`. A second Ctrl-C stops at once
(``KeyboardInterrupt``): the previous checkpoint stays valid.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from worldflux.training.errors import TrainingError

__all__ = ["StopRequest", "TrainingInterrupted"]


class TrainingInterrupted(TrainingError):
    """The run stopped on request after writing a resumable checkpoint."""

    def __init__(self, env_step: int, out: Path, signal_name: str) -> None:
        super().__init__(
            f"{signal_name}: stopped at env step {env_step} after writing a checkpoint; "
            f"continue with: worldflux train --resume {out}"
        )
        self.env_step = env_step
        self.out = out


class StopRequest:
    """Installs SIGINT / SIGTERM handlers (main thread only) that request a clean stop."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(
            f"\n{self.signal_name}: finishing the current episode to write a resumable "
            "checkpoint (Ctrl-C again to stop at once and keep the previous checkpoint)",
            file=sys.stderr,
            flush=True,
        )

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only; leave its handlers alone
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
