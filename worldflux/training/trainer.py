"""The contract-checked :class:`Trainer`: one validated, guarded optimisation step at a time.

Update protocol (see docs/training.md, "The update protocol"):

* The optimisers come from the model's objective: ``objective.make_optimizers(model)`` returns a
  ``dict[str, Optimizer]`` (e.g. ``{"model": ..., "policy": ...}``). Models without an objective
  get one Adam over every trainable parameter, named ``"model"``.
* Default update: ``LossOutput = objective(model, batch)`` (or ``model.loss(batch)``); the Trainer
  back-propagates ``LossOutput.loss`` once and steps *every* optimiser.
* Custom update: an objective that defines ``update(model, batch, ctx: UpdateContext) ->
  LossOutput`` decides the order itself and calls ``ctx.step(names, loss)`` for each stage, e.g.
  TD-MPC2: ``ctx.step("model", model_loss)`` then ``ctx.step("policy", policy_loss)``. It returns
  the LossOutput to log (its ``loss`` is only logged).
* ``ctx.step`` zeroes the named optimisers' gradients, checks the loss is finite, back-propagates,
  averages gradients across processes (torch.distributed), checks every gradient is finite, clips
  the gradient norm and steps. After the update the Trainer calls ``objective.after_step(model)``
  (EMA / Polyak targets) and increments :attr:`Trainer.step`.
* A non-finite loss or gradient raises :class:`NonFiniteError` and leaves parameters, optimiser
  states and :attr:`Trainer.step` as they were before the update.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.core.model import WorldModel
from worldflux.core.types import Batch, LossOutput
from worldflux.training.distributed import DistributedContext
from worldflux.training.errors import NonFiniteError, TrainingError

__all__ = ["StepResult", "Trainer", "TrainerConfig", "UpdateContext"]


@dataclass
class TrainerConfig:
    """How the Trainer steps.

    Attributes:
        grad_clip: maximum gradient norm per optimiser; ``None`` uses the objective's
            ``grad_clip`` attribute when it has one (else no clipping); ``<= 0`` disables.
        lr: learning rate of the fallback Adam (models without an objective only).
        device: where batches are moved before the step.
        check_finite: check the loss and every gradient before stepping.
    """

    grad_clip: float | None = None
    lr: float = 3e-4
    device: str = "cpu"
    check_finite: bool = True


@dataclass
class StepResult:
    """Floats logged for one update: ``loss``, each loss component, ``grad_norm/<optimiser>``
    and the objective's metrics."""

    step: int
    metrics: dict[str, float] = field(default_factory=dict)


def _params_of(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


class UpdateContext:
    """Handed to an objective's custom ``update``; :meth:`step` runs one guarded optimiser stage.

    Attributes:
        optimizers: name -> optimiser (read-only use: call :meth:`step`, not ``.step()``).
        grad_norms: name -> gradient norm of the last stage that stepped it.
    """

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer
        self.optimizers = trainer.optimizers
        self.grad_norms: dict[str, float] = {}

    def step(self, names: str | Sequence[str], loss: Tensor) -> None:
        """Zero the named optimisers' grads, back-propagate ``loss`` (a scalar), average
        gradients across processes, check finiteness, clip and step those optimisers.

        Raises:
            TrainingError: an unknown optimiser name.
            NonFiniteError: ``loss`` or a gradient is NaN/inf (nothing is stepped).
        """
        wanted = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in wanted if n not in self.optimizers]
        if unknown:
            raise TrainingError(
                f"optimiser {unknown[0]!r} does not exist; the objective made "
                f"{sorted(self.optimizers)}"
            )
        trainer = self._trainer
        if loss.dim() != 0:
            raise TrainingError(f"loss: expected a scalar tensor, found shape {list(loss.shape)}")
        if trainer.config.check_finite and not bool(torch.isfinite(loss)):
            raise NonFiniteError(
                f"loss for optimiser(s) {wanted} is {loss.item()} at update {trainer.step}; "
                "the update was not applied"
            )
        opts = [self.optimizers[n] for n in wanted]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for opt in opts for p in _params_of(opt) if p.grad is not None]
        trainer.dist.average_gradients(params)
        if trainer.config.check_finite:
            trainer.check_gradients(params, wanted)
        for name, opt in zip(wanted, opts, strict=True):
            own = [p for p in _params_of(opt) if p.grad is not None]
            clip = trainer.grad_clip
            if clip is not None and own:
                norm = nn.utils.clip_grad_norm_(own, clip)
            elif own:
                norm = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.grad) for p in own])
                )
            else:
                norm = torch.zeros(())
            self.grad_norms[name] = float(norm)
            opt.step()


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
        self._update_seconds = 0.0

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
        bad = [p for p in params if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if not bad:
            return
        lookup = {id(p): n for n, p in self.model.named_parameters()}
        label = lookup.get(id(bad[0]), "<parameter outside the model>")
        raise NonFiniteError(
            f"gradient of {label!r} (optimiser(s) {list(names)}) holds NaN/inf at update "
            f"{self.step}; {len(bad)} parameter(s) affected, the update was not applied"
        )

    # -- the step -----------------------------------------------------------------------------
    def _loss(self, batch: Batch) -> LossOutput:
        if self.objective is not None:
            result: LossOutput = self.objective(self.model, batch)
            return result
        return self.model.loss(batch)

    def _snapshot(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        params = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        opts = {k: copy.deepcopy(o.state_dict()) for k, o in self.optimizers.items()}
        return params, opts

    def _restore(self, snapshot: tuple[dict[str, Tensor], dict[str, Any]]) -> None:
        params, opts = snapshot
        self.model.load_state_dict(params)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(opts[name])

    def train_step(self, batch: Batch | Mapping[str, Any]) -> StepResult:
        """Validate ``batch`` (``[B, T, ...]``), update, run after-step hooks.

        Returns:
            the step number after the update and its metrics.

        Raises:
            ContractViolation: the batch does not match the contract (nothing was computed).
            NonFiniteError: a NaN/inf loss or gradient; the last good state is kept.
        """
        batch = self.validate(batch)
        if self.config.device != "cpu":
            batch = batch.to(self.config.device)
        start = time.perf_counter()
        self.model.train()
        ctx = UpdateContext(self)
        if self.has_custom_update:
            # a multi-stage update may have stepped one optimiser before a later stage fails
            snapshot = self._snapshot()
            try:
                out: LossOutput = self.objective.update(self.model, batch, ctx)
            except NonFiniteError:
                self._restore(snapshot)
                raise
        else:
            out = self._loss(batch)
            ctx.step(list(self.optimizers), out.loss)
        if self.objective is not None:
            self.objective.after_step(self.model)
        self.step += 1
        self._update_seconds += time.perf_counter() - start
        metrics: dict[str, float] = {"loss": float(out.loss.detach())}
        for name, value in out.components.items():
            metrics[f"loss/{name}"] = float(value.detach())
        for name, norm in ctx.grad_norms.items():
            metrics[f"grad_norm/{name}"] = norm
        for name, metric in out.metrics.items():
            metrics[name] = float(metric)
        return StepResult(self.step, metrics)

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
