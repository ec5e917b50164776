"""The contract-checked :class:`Trainer`: one validated, guarded optimisation step at a time.

Update protocol (docs/training.md, "The update protocol"):

* The optimisers come from the model's objective: ``objective.make_optimizers(model)`` returns a
  ``dict[str, Optimizer]`` (e.g. ``{"model": ..., "policy": ...}``). Models without an objective
  get one Adam over every trainable parameter, named ``"model"``.
* Default update (the objective has no ``update`` method): ``LossOutput = objective(model,
  batch)`` (``model.loss(batch)`` for spec models: the objective plus a learned behaviour's
  terms); the Trainer checks the loss is finite, back-propagates
  ``LossOutput.loss`` once, averages gradients across processes, checks every gradient is
  finite, clips each optimiser's gradient norm to ``grad_clip`` and steps *every* optimiser, then
  calls ``objective.after_step(model)`` (EMA / Polyak targets).
* Custom update: an objective with ``update(model, batch, optimizers) -> dict[str, float] |
  LossOutput`` runs the whole update itself, in its own order (TD-MPC2: world-model backward,
  clip, ``optimizers["model"].step()``; then the policy loss on detached latents, clip,
  ``optimizers["policy"].step()``; then its Polyak ``after_step``). The Trainer hands it
  :class:`GuardedOptimizer` wrappers: their ``step()`` first averages the gradients of that
  optimiser's parameters across processes and checks they are finite, then steps.
* A non-finite loss or gradient raises :class:`NonFiniteError`; parameters, buffers, optimiser
  states and :attr:`Trainer.step` are left as they were before the update (a custom update is
  rolled back from a snapshot taken before it).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.core.model import WorldModel
from worldflux.core.numerics import all_finite, first_non_finite
from worldflux.core.spec_model import SpecWorldModel
from worldflux.core.types import Batch, LossOutput
from worldflux.training.compile import compile_model
from worldflux.training.distributed import DistributedContext
from worldflux.training.errors import NonFiniteError, TrainingError

__all__ = ["GuardedOptimizer", "StepResult", "Trainer", "TrainerConfig"]


@dataclass
class TrainerConfig:
    """How the Trainer steps.

    Attributes:
        grad_clip: maximum gradient norm per optimiser in the default update; ``None`` uses the
            objective's ``grad_clip`` attribute when it has one (else no clipping); ``<= 0``
            disables. Custom updates clip themselves.
        lr: learning rate of the fallback Adam (models without an objective only).
        device: where batches are moved before the step.
        check_finite: check the loss and every gradient before stepping.
        compile: compile the model's declared regions (:func:`~.compile.compile_model`) before
            the first update; compile time is measured apart from update time
            (:meth:`Trainer.compile_info`).
    """

    grad_clip: float | None = None
    lr: float = 3e-4
    device: str = "cpu"
    check_finite: bool = True
    compile: bool = False


@dataclass
class StepResult:
    """Floats logged for one update: ``loss``, each loss component as ``loss/<name>``,
    ``grad_norm/<optimiser>`` (default update) and whatever the objective reports."""

    step: int
    metrics: dict[str, float] = field(default_factory=dict)


def _params_of(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


class GuardedOptimizer:
    """An optimiser as a custom ``update`` sees it: ``step()`` averages gradients across
    processes and refuses NaN/inf gradients before stepping; everything else is delegated."""

    def __init__(
        self,
        name: str,
        optimizer: torch.optim.Optimizer,
        guard: Callable[[str, list[Tensor]], None],
    ) -> None:
        self.name = name
        self.optimizer = optimizer
        self._guard = guard

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> Any:
        """Average + check the gradients, then step (raises NonFiniteError instead)."""
        self._guard(self.name, [p for p in _params_of(self.optimizer) if p.grad is not None])
        return self.optimizer.step(closure)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> Any:
        return self.optimizer.state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


class Trainer:
    """Validates every batch against the model's bound I/O contract, then runs one guarded update.

    Args:
        model: any WorldModel; spec-built ones supply optimisers, update and after-step hooks
            through ``model.objective``.
        config: step options.
        optimizers: override the objective's optimisers (name -> optimiser).
        dist: the process group wrapper (default: from ``torch.distributed`` if initialised);
            parameters and buffers are broadcast from rank 0 when it has several processes.

    Attributes:
        step: number of updates applied.
    """

    def __init__(
        self,
        model: WorldModel,
        config: TrainerConfig | None = None,
        *,
        optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
        dist: DistributedContext | None = None,
    ) -> None:
        self.model = model
        self.config = config or TrainerConfig()
        self.contract = model.bound_contract()
        self.objective: Any = getattr(model, "objective", None)
        self.dist = dist if dist is not None else DistributedContext.from_environment()
        self.dist.broadcast_module(model)
        if optimizers is not None:
            self.optimizers = dict(optimizers)
        elif self.objective is not None:
            self.optimizers = dict(self.objective.make_optimizers(model))
        else:
            params = [p for p in model.parameters() if p.requires_grad]
            self.optimizers = {"model": torch.optim.Adam(params, lr=self.config.lr)}
        if not self.optimizers:
            raise TrainingError(f"{type(model).__name__}: the objective made no optimisers")
        self.step = 0
        #: What ``TrainerConfig(compile=True)`` compiled (None: eager).
        self.compile_report = compile_model(model) if self.config.compile else None
        #: Wall-clock seconds spent in the :meth:`train_step` calls of this process (compilation
        #: included), and how many calls that was (``step`` also counts restored updates).
        self.update_seconds, self.timed_updates = 0.0, 0

    # -- options ------------------------------------------------------------------------------
    @property
    def grad_clip(self) -> float | None:
        """The effective clipping norm (None = no clipping)."""
        clip = self.config.grad_clip
        if clip is None:
            clip = getattr(self.objective, "grad_clip", None)
        if clip is None or float(clip) <= 0:
            return None
        return float(clip)

    @property
    def has_custom_update(self) -> bool:
        return callable(getattr(self.objective, "update", None))

    # -- validation ---------------------------------------------------------------------------
    def validate(self, batch: Batch | Mapping[str, Any]) -> Batch:
        """Check ``batch`` against the bound contract (no compute happens before this).

        Raises:
            ContractViolation: naming the key, the expected and the found shape/dtype.
        """
        if not isinstance(batch, Batch):
            batch = Batch(batch)
        self.contract.validate_batch(batch)
        return batch

    def check_gradients(self, params: Iterable[Tensor], names: Sequence[str]) -> None:
        """Raise NonFiniteError naming the first parameter whose gradient is NaN/inf."""
        with_grad = [p for p in params if p.grad is not None]
        if first_non_finite([p.grad for p in with_grad]) is None:  # type: ignore[misc]
            return
        bad = [p for p in with_grad if not all_finite(p.grad)]  # type: ignore[arg-type]
        lookup = {id(p): n for n, p in self.model.named_parameters()}
        label = lookup.get(id(bad[0]), "<parameter outside the model>")
        raise NonFiniteError(
            f"gradient of {label!r} (optimiser(s) {list(names)}) holds NaN/inf at update "
            f"{self.step}; {len(bad)} parameter(s) affected, the update was not applied"
        )

    # -- the step -----------------------------------------------------------------------------
    def _guard(self, name: str, params: list[Tensor]) -> None:
        """Average ``params``' gradients across processes, then check they are finite."""
        self.dist.average_gradients(params)
        if self.config.check_finite:
            self.check_gradients(params, [name])

    def _default_update(self, batch: Batch) -> dict[str, float]:
        """One backward of ``LossOutput.loss``; every optimiser steps (see module docs)."""
        if self.objective is not None and not isinstance(self.model, SpecWorldModel):
            out: LossOutput = self.objective(self.model, batch)
        else:  # a spec model's loss adds its learned behaviour's terms to the objective's
            out = self.model.loss(batch)
        if out.loss.dim() != 0:
            raise TrainingError(
                f"loss: expected a scalar tensor, found shape {list(out.loss.shape)}"
            )
        if self.config.check_finite and not bool(torch.isfinite(out.loss.detach())):
            bad = {
                k: float(v.detach())
                for k, v in out.components.items()
                if not torch.isfinite(v).all()
            }
            raise NonFiniteError(
                f"loss is {float(out.loss.detach())} at update {self.step} (non-finite components: "
                f"{bad or 'none'}); the update was not applied"
            )
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        torch.autograd.backward(out.loss)
        params = [p for o in self.optimizers.values() for p in _params_of(o) if p.grad is not None]
        self.dist.average_gradients(params)
        if self.config.check_finite:
            self.check_gradients(params, list(self.optimizers))
        metrics = self._loss_metrics(out)
        clip = self.grad_clip
        for name, opt in self.optimizers.items():
            own = [p for p in _params_of(opt) if p.grad is not None]
            if own:
                norm = nn.utils.clip_grad_norm_(own, clip if clip is not None else float("inf"))
                metrics[f"grad_norm/{name}"] = float(norm)
            opt.step()
        if self.objective is not None:
            self.objective.after_step(self.model)
        behaviour = getattr(self.model, "behaviour", None)
        if behaviour is not None:
            behaviour.after_step(self.model)
        return metrics

    @staticmethod
    def _loss_metrics(out: LossOutput) -> dict[str, float]:
        metrics: dict[str, float] = {"loss": float(out.loss.detach())}
        for name, value in out.components.items():
            metrics[f"loss/{name}"] = float(value.detach())
        for name, metric in out.metrics.items():
            metrics[name] = float(metric)
        return metrics

    def _custom_update(self, batch: Batch) -> dict[str, float]:
        """The objective's own ``update`` with guarded optimisers, rolled back on NaN/inf."""
        snapshot = self._snapshot()
        guarded = {
            name: GuardedOptimizer(name, o, self._guard) for name, o in self.optimizers.items()
        }
        try:
            result = self.objective.update(self.model, batch, guarded)
        except NonFiniteError:
            self._restore(snapshot)
            raise
        if isinstance(result, LossOutput):
            return self._loss_metrics(result)
        metrics = {k: float(v) for k, v in dict(result or {}).items()}
        if "loss" not in metrics and "total_loss" in metrics:
            metrics["loss"] = metrics["total_loss"]
        return metrics

    def _snapshot(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        params = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        opts = {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()}
        return params, opts

    def _restore(self, snapshot: tuple[dict[str, Tensor], dict[str, Any]]) -> None:
        params, opts = snapshot
        self.model.load_state_dict(params)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(opts[name])
            opt.zero_grad(set_to_none=True)

    def train_step(self, batch: Batch | Mapping[str, Any]) -> StepResult:
        """Validate ``batch`` (``[B, T, ...]``), then run one update (default or custom).

        Returns:
            the number of updates applied so far and this update's metrics.

        Raises:
            ContractViolation: the batch does not match the contract (nothing was computed).
            NonFiniteError: a NaN/inf loss or gradient; the last good state is kept.
        """
        batch = self.validate(batch)
        if self.config.device != "cpu":
            batch = batch.to(self.config.device)
        self.model.train()
        start = time.perf_counter()
        report = self.compile_report
        with report.timing() if report is not None else contextlib.nullcontext():
            if self.has_custom_update:
                metrics = self._custom_update(batch)
            else:
                metrics = self._default_update(batch)
        self.update_seconds += time.perf_counter() - start
        self.timed_updates += 1
        self.step += 1
        return StepResult(self.step, metrics)

    def compile_info(self) -> dict[str, Any] | None:
        """None when eager; else the compile report (regions, graphs, compile seconds, cache
        hits) and the updates' time without compilation (``s_per_update``)."""
        report = self.compile_report
        if report is None:
            return None
        steady = max(self.update_seconds - report.compile_seconds, 0.0)
        count = self.timed_updates
        per_update = steady / count if count else None
        return {**report.as_dict(), "updates": count, "s_per_update": per_update}

    def compile_summary(self) -> str | None:
        """One line for run summaries: :meth:`CompileReport.summary` plus update speed."""
        info = self.compile_info()
        if info is None or self.compile_report is None:
            return None
        line = self.compile_report.summary()
        if info["s_per_update"] is not None:
            line += f"; updates without compilation: {info['s_per_update']:.4f} s/update"
        return line

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimiser states and the step counter (the model is saved separately)."""
        return {
            "step": self.step,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            TrainingError: the saved optimiser names differ from this Trainer's.
        """
        saved = dict(state["optimizers"])
        if set(saved) != set(self.optimizers):
            raise TrainingError(
                f"checkpoint optimisers {sorted(saved)} differ from the objective's "
                f"{sorted(self.optimizers)}"
            )
        for name, opt in self.optimizers.items():
            opt.load_state_dict(saved[name])
        self.step = int(state["step"])
