"""Acting for ``N`` environments at once: one batched model call per vector step.

:class:`BatchActor` wraps the model's actor (:func:`worldflux.training.actors.make_actor`) and
acts on ``N`` observations stacked into ``[N, ...]``, with each environment's own episode
state:

* planner (``model.plan(obs [N, ...], eval_mode=, t0=)``): the MPPI/CEM warm start is a
  ``[H, N, A]`` mean, one row per environment; an environment that starts an episode gets its row
  zeroed, which is exactly what ``t0=True`` does for the whole batch (``t0=True`` when every
  environment starts). A planner without such a warm start gets ``t0=True`` whenever any
  environment starts.
* policy (``model.act(obs [N, ...], carry, is_first=, eval_mode=)``): one carry for the batch;
  when only some environments start an episode, the starting rows act from a fresh carry
  (``carry=None, is_first=True``) and the others from their rows of the carry, in two calls whose
  carries are merged back into one (every tensor of a carry is ``[N, ...]``).

For ``N = 1`` this makes exactly the calls the one-environment actors make.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldflux.core.model import WorldModel
from worldflux.core.types import State
from worldflux.training.actors import PlannerActor, PolicyActor
from worldflux.training.envs import Obs

__all__ = ["BatchActor", "stack_obs"]


def stack_obs(obs: Sequence[Obs], model: WorldModel, normalize_images: bool) -> Any:
    """``N`` observations (arrays, or dicts of arrays) as ``[N, ...]`` tensors on the model's
    device (uint8 frames as ``[0, 1]`` floats when ``normalize_images``)."""
    first = obs[0]
    if isinstance(first, dict):
        return {k: stack_obs([o[k] for o in obs], model, normalize_images) for k in first}
    tensor = torch.from_numpy(np.stack([np.asarray(o) for o in obs]))
    if tensor.dtype == torch.uint8 and normalize_images:
        tensor = tensor.float().div_(255.0)
    return tensor.to(next(model.parameters()).device)


def _take(tree: Any, rows: Tensor) -> Any:
    """The ``rows`` of every ``[N, ...]`` tensor of a carry (other leaves as they are)."""
    if isinstance(tree, Tensor):
        return tree[rows.to(tree.device)]
    if isinstance(tree, State):
        return State({k: _take(v, rows) for k, v in tree.items()})
    if isinstance(tree, Mapping):
        return {k: _take(v, rows) for k, v in tree.items()}
    if isinstance(tree, tuple | list):
        return type(tree)(_take(v, rows) for v in tree)
    return tree


def _merge(a: Any, rows_a: Tensor, b: Any, rows_b: Tensor, n: int) -> Any:
    """One ``[N, ...]`` carry from the carries of two row subsets."""
    if isinstance(a, Tensor):
        out = a.new_empty((n, *a.shape[1:]))
        out[rows_a.to(a.device)] = a
        out[rows_b.to(a.device)] = b
        return out
    if isinstance(a, State):
        return State({k: _merge(a[k], rows_a, b[k], rows_b, n) for k in a})
    if isinstance(a, Mapping):
        return {k: _merge(a[k], rows_a, b[k], rows_b, n) for k in a}
    if isinstance(a, tuple | list):
        return type(a)(_merge(x, rows_a, y, rows_b, n) for x, y in zip(a, b, strict=True))
    return a


class BatchActor:
    """The model's planner or policy acting on ``N`` environments (see the module docstring).

    Args:
        actor: the one-environment actor whose model (and kind) to use.
        num_envs: ``N``.
    """

    def __init__(self, actor: PlannerActor | PolicyActor, num_envs: int) -> None:
        self.model = actor.model
        self.kind = actor.name
        self.normalize_images = actor.normalize_images
        self.num_envs = num_envs
        self.carry: Any = None

    def act(self, obs: Sequence[Obs], is_first: np.ndarray, eval_mode: bool = False) -> list[Any]:
        """Actions for ``obs`` (one per environment; ``is_first`` bool ``[N]``), as numpy."""
        tensor = stack_obs(obs, self.model, self.normalize_images)
        first = np.asarray(is_first, dtype=bool)
        with torch.no_grad():
            if self.kind == "planner":
                action = self._plan(tensor, first, eval_mode)
            else:
                action = self._policy(tensor, first, eval_mode)
        return [a.detach().cpu().numpy() for a in action]

    # -- planner ------------------------------------------------------------------------------
    def _warm_start(self) -> Tensor | None:
        prev = getattr(getattr(self.model, "planner", None), "_prev_mean", None)
        ok = isinstance(prev, Tensor) and prev.dim() == 3 and prev.shape[1] == self.num_envs
        return prev if ok else None

    def _plan(self, obs: Any, first: np.ndarray, eval_mode: bool) -> Tensor:
        plan: Any = getattr(self.model, "plan")  # noqa: B009 - SpecWorldModel.plan
        t0 = bool(first.all())
        if not t0 and first.any():
            prev = self._warm_start()
            if prev is None:
                t0 = True  # no per-row warm start to reset: reset them all
            else:
                prev[:, torch.from_numpy(first).to(prev.device)] = 0.0  # == t0 for those rows
        action: Tensor = plan(obs, eval_mode=eval_mode, t0=t0)
        return action

    @contextmanager
    def planner_kept(self) -> Iterator[None]:
        """Keep the planner's warm start across a block that plans for something else (an
        evaluation on another environment)."""
        planner: Any = getattr(self.model, "planner", None)
        saved = getattr(planner, "_prev_mean", None)
        try:
            yield
        finally:
            if planner is not None and hasattr(planner, "_prev_mean"):
                planner._prev_mean = saved

    # -- policy -------------------------------------------------------------------------------
    def _policy(self, obs: Any, first: np.ndarray, eval_mode: bool) -> Tensor:
        act: Any = getattr(self.model, "act")  # noqa: B009 - optional policy protocol
        action: Tensor
        if self.carry is None or first.all() or not first.any():
            carry = None if first.all() else self.carry
            action, self.carry = act(obs, carry, is_first=bool(first.all()), eval_mode=eval_mode)
            return action
        n = self.num_envs
        rows_new = torch.from_numpy(np.flatnonzero(first))
        rows_old = torch.from_numpy(np.flatnonzero(~first))
        a_new, c_new = act(_take(obs, rows_new), None, is_first=True, eval_mode=eval_mode)
        a_old, c_old = act(
            _take(obs, rows_old), _take(self.carry, rows_old), is_first=False, eval_mode=eval_mode
        )
        self.carry = _merge(c_new, rows_new, c_old, rows_old, n)
        merged: Tensor = _merge(a_new, rows_new, a_old, rows_old, n)
        return merged
