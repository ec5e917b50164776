"""Run metrics: ``metrics.jsonl`` (every record), ``metrics.csv`` (fixed columns) and a
terminal progress line.

Records are of three kinds: ``"episode"`` (``episode_return``, ``episode_length``), ``"eval"``
(``eval_return``: mean over the evaluation episodes, ``eval_returns``) and ``"train"``
(``loss``, ``loss/<component>``, ``grad_norm/<optimiser>``, ``updates_per_s``,
``env_steps_per_s``). Every record has ``kind``, ``time_s``, ``env_step``, ``update`` and
``episode``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from worldflux.training.errors import TrainingError

__all__ = [
    "CSV_FILE",
    "JSONL_FILE",
    "TENSORBOARD_DIR",
    "MetricsLogger",
    "Progress",
    "read_metrics",
]

JSONL_FILE = "metrics.jsonl"
CSV_FILE = "metrics.csv"
BASE_COLUMNS = (
    "kind",
    "time_s",
    "env_step",
    "update",
    "episode",
    "episode_return",
    "episode_length",
    "eval_return",
    "loss",
)
RATE_COLUMNS = ("updates_per_s", "env_steps_per_s")
TENSORBOARD_DIR = "tensorboard"
#: record fields that are coordinates, not TensorBoard scalars
_NOT_SCALARS = frozenset({"kind", "env_step"})


def read_metrics(directory: str | Path) -> list[dict[str, Any]]:
    """Every record of ``directory/metrics.jsonl`` (skipping a torn last line)."""
    path = Path(directory) / JSONL_FILE
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLogger:
    """Appends records to ``metrics.jsonl`` and ``metrics.csv`` in ``directory``.

    The CSV columns are the base columns, then the keys of the first ``train`` record (sorted),
    then the rates; records logged before it are buffered. Keys that appear only later go to
    the JSONL file alone.

    Args:
        directory: the run directory.
        resume_step: when resuming, drop records written after this env step (they belong to
            the interrupted part of the run that is about to be redone).
        tensorboard: also write every numeric field of every record as a TensorBoard scalar
            ``<kind>/<field>`` at its ``env_step``, to ``directory/tensorboard`` (events after
            ``resume_step`` are purged on resume, like the JSONL records).
    """

    def __init__(
        self, directory: str | Path, resume_step: int | None = None, tensorboard: bool = False
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._board: Any = None
        if tensorboard:
            try:
                # deferred: optional dependency (extra "tensorboard")
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainingError(
                    "tensorboard logging needs the tensorboard package: pip install "
                    '"worldflux[tensorboard]"'
                ) from None
            purge = None if resume_step is None else resume_step + 1
            self._board = SummaryWriter(str(self.directory / TENSORBOARD_DIR), purge_step=purge)
        jsonl = self.directory / JSONL_FILE
        kept: list[dict[str, Any]] = []
        if resume_step is not None and jsonl.exists():
            kept = [r for r in read_metrics(self.directory) if r.get("env_step", 0) <= resume_step]
        self.columns: list[str] | None = None
        self._pending: list[dict[str, Any]] = []
        self._jsonl = jsonl.open("w")
        self._csv_file = (self.directory / CSV_FILE).open("w", newline="")
        self._csv: csv.DictWriter[str] | None = None
        for record in kept:
            self._write(record)
        self.flush()

    def _start_csv(self, keys: Sequence[str]) -> None:
        extra = sorted(k for k in keys if k not in BASE_COLUMNS and k not in RATE_COLUMNS)
        self.columns = [*BASE_COLUMNS, *extra, *RATE_COLUMNS]
        self._csv = csv.DictWriter(self._csv_file, fieldnames=self.columns, extrasaction="ignore")
        self._csv.writeheader()
        for record in self._pending:
            self._csv.writerow({k: record.get(k, "") for k in self.columns})
        self._pending.clear()

    def _write(self, record: Mapping[str, Any]) -> None:
        self._jsonl.write(json.dumps(dict(record), sort_keys=True) + "\n")
        if self._csv is None and record.get("kind") == "train":
            self._start_csv(list(record))
        if self._csv is None or self.columns is None:
            self._pending.append(dict(record))
        else:
            columns = self.columns
            self._csv.writerow({k: record.get(k, "") for k in columns})

    def log(self, record: Mapping[str, Any]) -> None:
        """Write one record (non-finite floats are written as JSON ``NaN``/``Infinity``)."""
        self._write(record)
        if self._board is not None:
            self._scalars(record)
        self.flush()

    def _scalars(self, record: Mapping[str, Any]) -> None:
        # online runs step by environment steps, offline ones (no environment) by updates
        kind = str(record.get("kind", "record"))
        step = int(record.get("env_step", record.get("update", 0)))
        for key, value in record.items():
            if key in _NOT_SCALARS or isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                self._board.add_scalar(f"{kind}/{key}", float(value), step)

    def flush(self) -> None:
        self._jsonl.flush()
        self._csv_file.flush()
        if self._board is not None:
            self._board.flush()

    def close(self) -> None:
        if self._csv is None:
            self._start_csv([])
        self._jsonl.close()
        self._csv_file.close()
        if self._board is not None:
            self._board.close()


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.3f}"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A one-line progress bar: env steps, elapsed time and ETA, updates/s, loss components.

    The ETA extrapolates the pace since the first update of this process (a resumed run counts
    from where it resumed).

    Redraws in place on a terminal (at most every ``interval`` seconds); on a pipe or a file it
    prints a full line each time :meth:`update` is called with ``force=True``.
    """

    def __init__(
        self,
        total: int,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 0.25,
        width: int = 24,
    ) -> None:
        self.total = max(1, int(total))
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.width = width
        self._last = 0.0
        self._start: tuple[float, int] | None = None

    def timing(self, env_step: int, now: float | None = None) -> str:
        """``elapsed m:ss, ETA m:ss`` (the ETA once a step has been timed)."""
        now = time.monotonic() if now is None else now
        if self._start is None:
            self._start = (now, env_step)
        started, first = self._start
        elapsed = now - started
        text = f"{_clock(elapsed)} elapsed"
        if env_step > first:
            remaining = max(self.total - env_step, 0) * elapsed / (env_step - first)
            text += f", ETA {_clock(remaining)}"
        return text

    def render(self, env_step: int, fields: Mapping[str, float], now: float | None = None) -> str:
        """The line for ``env_step`` with ``fields`` (e.g. ``upd/s``, ``loss``, ``return``)."""
        filled = int(self.width * min(env_step, self.total) / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        parts = [f"[{bar}] {env_step}/{self.total} env steps", self.timing(env_step, now)]
        parts += [f"{name} {_fmt(float(value))}" for name, value in fields.items()]
        return " | ".join(parts)

    def update(self, env_step: int, fields: Mapping[str, float], force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self._last >= self.interval:
                self.stream.write("\r\033[K" + self.render(env_step, fields))
                self.stream.flush()
                self._last = now
        elif force:
            self.stream.write(self.render(env_step, fields) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
