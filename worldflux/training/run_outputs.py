"""The outputs of an online run: ``run.json``, the metrics records, the progress bar and the
rate windows of the ``train`` records. :class:`RunOutputs` is a base class of
:class:`~worldflux.training.online.OnlineRun`, which provides the attributes it declares."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from worldflux.training.distributed import DistributedContext
from worldflux.training.metrics import MetricsLogger, Progress
from worldflux.training.run_data import RUN_FILE, LoopState, RunConfig
from worldflux.training.trainer import Trainer

__all__ = ["RunOutputs"]


class RunOutputs:
    """Run outputs (rank 0 writes them): ``run.json``, metrics, progress bar, rate windows."""

    config: RunConfig
    dist: DistributedContext
    out: Path
    state: LoopState
    trainer: Trainer

    def _open_outputs(self, resume: bool) -> None:
        """Write ``run.json``, open the metrics (rank 0; a resume drops records after the
        checkpoint) and the progress bar, and start the clocks."""
        main = self.dist.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / RUN_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        resume_step = self.state.env_step if resume else None
        self.logger = (
            MetricsLogger(self.out, resume_step=resume_step, tensorboard=self.config.tensorboard)
            if main
            else None
        )
        self.progress = Progress(self.config.steps, enabled=self.config.progress and main)
        self.start = time.perf_counter()
        self.window_start, self.window_updates, self.window_steps = time.perf_counter(), 0, 0
        #: episode returns finished since the last report (aggregated over ranks under DDP)
        self.window_returns: list[float] = []
        self.last_metrics: dict[str, float] = {}

    def _report(self, prev_step: int) -> None:
        """When the steps since ``prev_step`` pass a multiple of ``log_every`` (and at the
        last): a ``train`` record of the latest update's metrics and the rates since the
        previous one, and a full progress line; else the progress bar's step and return."""
        env_step, every = self.state.env_step, self.config.log_every
        if prev_step // every == env_step // every and env_step < self.config.steps:
            self.progress.update(env_step, self._returns())
            return
        now = time.perf_counter()
        elapsed = max(now - self.window_start, 1e-9)
        rates = {
            "updates_per_s": self.window_updates / elapsed,
            "env_steps_per_s": self.window_steps / elapsed,
        }
        if self.dist.enabled:
            # every rank reaches each report at the same env step: a safe collective
            total, count = self.dist.all_sum([sum(self.window_returns), len(self.window_returns)])
            if count:
                rates["return_all_ranks"] = total / count
            rates["episodes_all_ranks"] = count
        self.window_returns = []
        if self.last_metrics:
            self.record("train", {**self.last_metrics, **rates})
        self.window_start, self.window_updates, self.window_steps = now, 0, 0
        fields = {"upd/s": rates["updates_per_s"]}
        fields.update({k: v for k, v in self.last_metrics.items() if "loss" in k})
        fields.update(self._returns())
        self.progress.update(env_step, fields, force=True)

    def _returns(self) -> dict[str, float]:
        """The bar's return fields, always the same names: ``last return`` (the last finished
        episode, as in the ``episode`` records) and ``eval`` (the last evaluation's mean)."""
        fields: dict[str, float] = {}
        if self.state.returns:
            fields["last return"] = self.state.returns[-1]
        if self.state.eval_returns:
            fields["eval"] = self.state.eval_returns[-1]
        return fields

    def record(self, kind: str, values: dict[str, Any]) -> None:
        """One metrics record (rank 0 only), stamped with time, env step, update, episode."""
        if self.logger is not None:
            self.logger.log(
                {
                    "kind": kind,
                    "time_s": round(time.perf_counter() - self.start, 3),
                    "env_step": self.state.env_step,
                    "update": self.trainer.step,
                    "episode": self.state.episode,
                    **values,
                }
            )
