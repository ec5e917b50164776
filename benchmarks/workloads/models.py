"""Shared pieces of the model workloads (models_dreamer.py, models_tdmpc2.py).

Only the public API is used (``worldflux.create_world_model``, ``model.encode``,
``model.rollout``, ``model.transition``, ``model.plan`` and the ``Trainer`` update protocol built
on ``objective.make_optimizers``), so the figures hold whatever the families' internals. A model
that is not registered yet makes its workloads "skipped". Models are built for DMC Walker
proprio shapes unless a workload says otherwise: ``obs_shape=(24,)``, ``action_dim=6``, seed 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from benchmarks import Skipped

__all__ = [
    "ACTION_DIM",
    "IMAGINE_HORIZON",
    "OBS_DIM",
    "actions",
    "build",
    "common_details",
    "config_mismatches",
    "observations",
    "update_op",
    "walker_batch",
]

OBS_DIM, ACTION_DIM = 24, 6
IMAGINE_HORIZON = 15


def config_mismatches(
    config: Any, expected: Mapping[str, Any], fields: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Expected dims that the model config states differently: ``{dim: {expected, config}}``.

    Fields the config lacks are not mismatches (the FLOP count then assumes the reference value).
    """
    out: dict[str, dict[str, Any]] = {}
    for dim, value in expected.items():
        found = getattr(config, (fields or {}).get(dim, dim), None)
        if isinstance(found, list | tuple) and isinstance(value, list | tuple):
            found, value = list(found), list(value)  # a config's list, a dataclass's tuple
        if found is not None and found != value:
            out[dim] = {"expected": value, "config": found}
    return out


def build(model_id: str, obs_shape: tuple[int, ...] = (OBS_DIM,)) -> Any:
    """The registered model ``model_id`` for ``obs_shape`` and 6 actions, in eval mode, seeded.

    Raises:
        Skipped: ``model_id`` is not registered (yet), or this worldflux (an older revision
            under ``--baseline``) lacks the API.
    """
    import torch

    import worldflux

    if not hasattr(worldflux, "list_models") or not hasattr(worldflux, "create_world_model"):
        raise Skipped("this worldflux has no list_models/create_world_model")
    available = worldflux.list_models()
    if model_id not in available:
        raise Skipped(f"model {model_id!r} is not registered yet")
    torch.manual_seed(0)
    model = worldflux.create_world_model(model_id, obs_shape=obs_shape, action_dim=ACTION_DIM)
    return model.eval()


def common_details(
    model: Any, dims: Mapping[str, Any], fields: Mapping[str, str] | None
) -> dict[str, Any]:
    """Model class, trainable parameters, the FLOP formula's dims and config mismatches."""
    return {
        "model_class": type(model).__name__,
        "trainable_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "flop_dims": dict(dims),
        "config_mismatches": config_mismatches(model.config, dims, fields),
    }


def actions(*shape: int) -> Any:
    """Seeded uniform actions in [-1, 1] of ``shape``."""
    import torch

    gen = torch.Generator().manual_seed(1)
    return torch.rand(*shape, generator=gen) * 2 - 1


def observations(*shape: int) -> Any:
    """Seeded standard-normal observations of ``shape``."""
    import torch

    gen = torch.Generator().manual_seed(2)
    return torch.randn(*shape, generator=gen)


def walker_batch(batch: int, seq_len: int, obs_shape: tuple[int, ...] = (OBS_DIM,)) -> Any:
    """A seeded training batch ``[batch, seq_len]``: normal observations of ``obs_shape`` (or
    uniform uint8 frames for a 3-dim shape), actions in [-1, 1], episode starts at t = 0."""
    import torch

    from worldflux.core.types import Batch

    gen = torch.Generator().manual_seed(3)
    is_first = torch.zeros(batch, seq_len, dtype=torch.bool)
    is_first[:, 0] = True
    if len(obs_shape) == 3:
        obs = torch.randint(0, 256, (batch, seq_len, *obs_shape), dtype=torch.uint8, generator=gen)
    else:
        obs = torch.randn(batch, seq_len, *obs_shape, generator=gen)
    return Batch(
        obs=obs,
        actions=torch.rand(batch, seq_len, ACTION_DIM, generator=gen) * 2 - 1,
        rewards=torch.randn(batch, seq_len, generator=gen),
        terminated=torch.zeros(batch, seq_len, dtype=torch.bool),
        truncated=torch.zeros(batch, seq_len, dtype=torch.bool),
        is_first=is_first,
    )


def update_op(model: Any, batch: Any) -> Callable[[], None]:
    """One full update through the project's update protocol (Trainer.train_step).

    uint8 frames are converted to [0, 1] floats inside the op, as the training loop does for
    every sampled batch (the model contracts take float observations).
    """
    try:
        from worldflux.training.trainer import Trainer
    except ImportError as error:
        raise Skipped(f"worldflux.training.trainer is not available yet ({error})") from None
    import torch

    trainer = Trainer(model)
    frames = batch["obs"].dtype == torch.uint8

    def op() -> None:
        trainer.train_step(type(batch)({**batch, "obs": batch["obs"] / 255.0}) if frames else batch)

    return op


def compiled_update_op(model: Any, batch: Any) -> tuple[Callable[[], None], dict[str, Any]]:
    """``compile_model(model)``, then :func:`update_op`, whose first two calls (the compiling
    ones) run here; returns the op and the compile details (regions, graphs, compile seconds,
    cache hits, the two updates' seconds).

    Raises:
        Skipped: this worldflux has no compiled path (an older revision).
    """
    import time

    try:
        from worldflux.training.compile import compile_model
    except ImportError as error:
        raise Skipped(f"worldflux.training.compile is not available ({error})") from None
    report = compile_model(model)
    op = update_op(model, batch)
    start = time.perf_counter()
    with report.timing():
        op()
        op()
    first_two = time.perf_counter() - start
    return op, {**report.as_dict(), "first_two_updates_s": round(first_two, 3)}


def prepared_update_op(
    model: Any, batch: Any, details: dict[str, Any], *, compile: bool
) -> Callable[[], None]:
    """:func:`update_op`, or with ``compile`` :func:`compiled_update_op` (its details go to
    ``details["compile"]`` and the call description gains the ``compile_model`` prefix)."""
    if not compile:
        return update_op(model, batch)
    op, compiled = compiled_update_op(model, batch)
    details.update(call=f"compile_model(model); {details.get('call', '')}", compile=compiled)
    return op
