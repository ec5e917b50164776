"""What a world model predicts, measured on held-out episodes.

For ``W`` windows of ``C + H + 1`` steps drawn from held-out episodes: the model encodes the
first ``C + 1`` observations (teacher forcing, carrying its state), then rolls out open loop for
``H`` steps with the recorded actions. Per open-loop step ``h = 1..H``:

- ``obs_mse``: mean squared error of the decoded observation (models with an ``obs`` prediction),
  next to ``copy_last_mse`` (predict the last observed frame) and ``mean_mse`` (predict the mean
  observation of the training episodes);
- ``probe_obs_mse`` (latent-only models): the same error through a ridge-regression probe from
  the latent state to the observation, fitted on teacher-forced states of training windows, its
  strength (``probe_ridge``) chosen on one in five training episodes held aside;
  ``mlp_probe_obs_mse`` (with ``mlp_probe=True``): through an MLP probe fitted the same way
  (worldflux/evaluation/probes.py: a linear map of a small state cannot draw a moving object);
- ``reward_mse`` and ``continue_mse`` against the recorded reward and ``1 - terminated``;
- ``latent_mse``: open-loop latent state against the teacher-forced one (latent consistency).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from worldflux.core.exceptions import ConfigurationError
from worldflux.core.model import WorldModel
from worldflux.core.types import Batch, State
from worldflux.datasets.format import DatasetError
from worldflux.datasets.sampler import WindowSampler
from worldflux.datasets.source import Dataset
from worldflux.evaluation.probes import (
    RIDGE_GRID,
    Probe,
    fit_linear_probe,
    fit_mlp_probe,
    fit_validated_linear_probe,
    held_aside,
)

__all__ = ["EvalResult", "default_context", "evaluate_predictions"]


@dataclass
class EvalResult:
    """Per-horizon errors (lists of length H; None where the model has no such prediction)."""

    horizon: int
    context: int
    windows: int
    obs_mse: list[float] | None = None
    copy_last_mse: list[float] | None = None
    mean_mse: list[float] | None = None
    probe_obs_mse: list[float] | None = None
    mlp_probe_obs_mse: list[float] | None = None
    probe_ridge: float | None = None
    reward_mse: list[float] | None = None
    continue_mse: list[float] | None = None
    latent_mse: list[float] | None = None
    example: dict[str, Tensor] = field(default_factory=dict, repr=False)


def _features(state: State) -> Tensor:
    """Every floating state tensor ``[B, ...]`` flattened and concatenated: ``[B, F]``."""
    parts = [v.flatten(1).float() for _, v in sorted(state.items()) if v.is_floating_point()]
    return torch.cat(parts, dim=1)


def _per_step(errors: Tensor) -> list[float]:
    """``[B, H, ...]`` squared errors -> mean per horizon step."""
    flat = errors.reshape(errors.shape[0], errors.shape[1], -1)
    return [float(v) for v in flat.mean(dim=(0, 2))]


def _teacher_forced(model: WorldModel, batch: Batch, steps: int) -> list[State]:
    """States after encoding observations ``0..steps-1`` with the recorded actions."""
    states: list[State] = []
    state: State | None = None
    for t in range(steps):
        obs = _at(batch["obs"], t)
        action = None if t == 0 else batch["actions"][:, t - 1]
        state = model.encode(obs, state, action)
        states.append(state)
    return states


def _at(obs: Any, t: int) -> Any:
    return {k: v[:, t] for k, v in obs.items()} if isinstance(obs, dict) else obs[:, t]


def _mean_obs(dataset: Dataset, episodes: list[int]) -> Tensor | None:
    total: Tensor | None = None
    count = 0
    for index in episodes:
        obs = dataset.episode(index).observations
        if isinstance(obs, dict):
            return None
        raw = torch.from_numpy(obs)
        value = raw.float() / 255.0 if raw.dtype == torch.uint8 else raw.float()
        total = value.sum(0) if total is None else total + value.sum(0)
        count += value.shape[0]
    return None if total is None else total / max(count, 1)


def _windows(
    dataset: Dataset,
    episodes: list[int],
    context: int,
    horizon: int,
    windows: int,
    seed: int,
    *,
    fallback: int | None = None,
) -> tuple[int, Batch]:
    """``windows`` windows of ``context + horizon + 1`` steps and the context they hold; with a
    ``fallback`` context, windows of that when no episode is long enough for ``context``.

    Raises:
        DatasetError: no episode holds a window (of the fallback, when given).
    """

    def draw(observed: int) -> Batch:
        remedy = f"a window is --context {observed} + --horizon {horizon} + 1 steps"
        sampler = WindowSampler(dataset, episodes, seed=seed)
        return sampler.sample(windows, observed + horizon + 1, remedy=remedy)

    try:
        return context, draw(context)
    except DatasetError:
        if fallback is None or fallback == context:
            raise
        return fallback, draw(fallback)


def default_context(model: WorldModel) -> int:
    """Observed steps before the open-loop rollout when none are asked for: the objective's
    ``eval_context`` (a recurrent filter such as DreamerV3's RSSM needs several observations
    to settle), else 1 (a model whose encoder reads one observation)."""
    return int(getattr(model.objective, "eval_context", 1))


@torch.no_grad()
def evaluate_predictions(
    model: WorldModel,
    dataset: Dataset,
    *,
    eval_episodes: list[int],
    train_episodes: list[int],
    horizon: int = 5,
    context: int | None = None,
    windows: int = 64,
    seed: int = 0,
    mlp_probe: bool = False,
) -> EvalResult:
    """Open-loop prediction errors of ``model`` on ``windows`` windows of ``eval_episodes``:
    ``context`` observed steps, then ``horizon`` imagined ones. Without ``context``: the
    model's :func:`default_context`, or 1 when no episode holds a window that long (short
    episodes, e.g. a random CartPole policy's, during training's model evaluation).

    A latent-only model is read through the ridge probe, and with ``mlp_probe`` also through
    the MLP probe (fitted on ``max(windows, 1024)`` training windows; seconds to a minute).

    Deterministic for a given ``seed``: the windows and the model's own sampling (stochastic
    latents) draw from streams seeded with it; the caller's torch stream is left as it was.

    Raises:
        DatasetError: no episode holds ``context + horizon + 1`` steps.
    """
    if context is not None and context < 1:
        raise ConfigurationError(
            f"evaluation context: expected >= 1 observed step, found {context}"
        )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model.eval()
        if context is None:
            context, batch = _windows(
                dataset, eval_episodes, default_context(model), horizon, windows, seed, fallback=1
            )
        else:
            context, batch = _windows(dataset, eval_episodes, context, horizon, windows, seed)
        steps = context + horizon + 1
        forced = _teacher_forced(model, batch, steps)
        start = forced[context]
        actions = batch["actions"][:, context : context + horizon]
        trajectory = model.rollout(start, actions)
        result = EvalResult(horizon=horizon, context=context, windows=windows)
        open_loop = [
            State({k: v[:, h] for k, v in trajectory.states.items()}) for h in range(1, horizon + 1)
        ]
        result.latent_mse = [
            float(((_features(a) - _features(b)) ** 2).mean())
            for a, b in zip(open_loop, forced[context + 1 :], strict=True)
        ]
        rewards = batch["rewards"][:, context : context + horizon]
        result.reward_mse = _per_step((trajectory.rewards.float() - rewards) ** 2)
        alive = 1.0 - batch["terminated"][:, context : context + horizon].float()
        result.continue_mse = _per_step((trajectory.continues.float() - alive) ** 2)
        obs = batch["obs"]
        if isinstance(obs, dict):
            return result
        truth = obs[:, context + 1 : context + 1 + horizon].float()
        last = obs[:, context : context + 1].float().expand_as(truth)
        result.copy_last_mse = _per_step((last - truth) ** 2)
        fit_episodes = train_episodes or eval_episodes
        mean = _mean_obs(dataset, fit_episodes)
        if mean is not None:
            result.mean_mse = _per_step((mean.expand_as(truth) - truth) ** 2)
        predicted = trajectory.predictions.get("obs")
        if predicted is not None and tuple(predicted.shape) == tuple(truth.shape):
            result.obs_mse = _per_step((predicted.float() - truth) ** 2)
            result.example = {"truth": truth[0], "prediction": predicted[0].float()}
        else:
            linear, result.probe_ridge = _ridge_probe(
                model, dataset, fit_episodes, windows, steps, seed
            )
            result.probe_obs_mse = _probe_errors(linear, open_loop, truth)
            if mlp_probe:
                data = _probe_data(model, dataset, fit_episodes, max(windows, 1024), steps, seed)
                mlp = fit_mlp_probe(*data, seed=seed)
                result.mlp_probe_obs_mse = _probe_errors(mlp, open_loop, truth)
        return result


def _probe_data(
    model: WorldModel, dataset: Dataset, episodes: list[int], windows: int, steps: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Teacher-forced state features ``[N, F]`` and observations ``[N, D]`` of
    ``max(windows, 32)`` training windows of ``steps`` steps (what a probe is fitted on)."""
    fit_batch = WindowSampler(dataset, episodes, seed=seed + 1).sample(max(windows, 32), steps)
    states = _teacher_forced(model, fit_batch, steps)
    features = torch.cat([_features(s) for s in states])
    targets = torch.cat([fit_batch["obs"][:, t].flatten(1).float() for t in range(steps)])
    return features, targets


def _ridge_probe(
    model: WorldModel, dataset: Dataset, episodes: list[int], windows: int, steps: int, seed: int
) -> tuple[Probe, float]:
    """The ridge probe and its strength: chosen (:func:`select_ridge`) by fitting on four in
    five of ``episodes`` and scoring on the fifth (every fifth in sorted order), then refitted
    on all. With no held-aside episode long enough for a window (fewer than five episodes, or
    only short ones aside) the weakest ridge of the grid is used."""
    kept, aside = held_aside(episodes)
    if aside:
        try:
            fit = _probe_data(model, dataset, kept, windows, steps, seed)
            validation = _probe_data(model, dataset, aside, max(windows // 4, 32), steps, seed)
        except DatasetError:
            pass  # the episodes held aside are too short for a window
        else:
            return fit_validated_linear_probe(fit, validation)
    ridge = min(RIDGE_GRID)
    data = _probe_data(model, dataset, sorted(episodes), windows, steps, seed)
    return fit_linear_probe(*data, ridge=ridge), ridge


def _probe_errors(probe: Probe, open_loop: list[State], truth: Tensor) -> list[float]:
    """Per-step error of the probe's reading of the open-loop states (``truth [B, H, ...]``)."""
    probed = torch.stack([probe(_features(s)) for s in open_loop], dim=1)
    return _per_step((probed - truth.flatten(2)) ** 2)
