"""TD-MPC2 workloads: the 5m model's latent transition, MPPI planning and full update (see
:mod:`benchmarks.workloads.models` for the shared pieces)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import Skipped
from benchmarks.flops import TDMPC2_PRESETS, tdmpc2_dynamics_step, tdmpc2_mppi, tdmpc2_update
from benchmarks.harness import Prepared, RunSettings, Target, Workload
from benchmarks.workloads.models import (
    ACTION_DIM,
    OBS_DIM,
    actions,
    build,
    common_details,
    observations,
    prepared_update_op,
    walker_batch,
)

__all__ = ["MPPI_OFFICIAL", "WORKLOADS", "tdmpc2_update_workload"]

#: TD-MPC2 config field of each flops.TDMPC2Dims field (DreamerV3 config names match flops').
_TDMPC2_FIELDS = {"latent": "latent_dim", "mlp": "mlp_dim", "enc": "enc_dim"}

#: Official MPPI settings (tdmpc2 config.yaml) for a 6-dim action.
MPPI_OFFICIAL = {
    "iterations": 6,
    "num_samples": 512,
    "num_elites": 64,
    "num_pi_trajs": 24,
    "horizon": 3,
    "temperature": 0.5,
    "min_std": 0.05,
    "max_std": 2.0,
}


def _tdmpc2_transition(settings: RunSettings) -> Prepared:
    import torch

    batch = 256
    model = build("tdmpc2:5m")
    dims = TDMPC2_PRESETS["5m"]
    with torch.no_grad():
        state = model.encode(observations(batch, OBS_DIM))
    action = actions(batch, ACTION_DIM)
    steps = 20  # independent transitions per op: one alone (~2 ms) is too short to time well

    def op() -> None:
        with torch.no_grad():
            for _ in range(steps):
                model.transition(state, action)

    details = common_details(model, dims.as_dict(), _TDMPC2_FIELDS)
    details.update(
        batch=batch,
        transitions_per_op=steps,
        call="model.transition(state, action[256, 6]) under no_grad, 20 per op",
    )
    return Prepared(
        op=op,
        work_per_op=float(batch * steps),
        flops_per_op=batch * steps * tdmpc2_dynamics_step(dims),
        details=details,
    )


def _planner_settings(planner: Any) -> dict[str, Any]:
    """The planner's MPPI settings it exposes (attributes or a ``params`` object)."""
    found: dict[str, Any] = {}
    sources = [planner, getattr(planner, "params", None), getattr(planner, "cfg", None)]
    for key in MPPI_OFFICIAL:
        for source in sources:
            value = getattr(source, key, None) if source is not None else None
            if isinstance(value, int | float):
                found[key] = value
                break
    return found


def _tdmpc2_mppi(settings: RunSettings) -> Prepared:
    import torch

    model = build("tdmpc2:5m")
    dims = TDMPC2_PRESETS["5m"]
    if getattr(model, "planner", None) is None:
        raise Skipped("tdmpc2:5m has no planner yet")
    obs = observations(1, OBS_DIM)
    with torch.no_grad():
        model.plan(obs, t0=True)  # first step of an episode: no warm start

    def op() -> None:
        with torch.no_grad():
            model.plan(obs)

    planner = _planner_settings(model.planner)
    details = common_details(model, dims.as_dict(), _TDMPC2_FIELDS)
    details.update(
        call="model.plan(obs[1, 24]) (warm-started, training mode) under no_grad",
        planner_settings=planner,
        planner_differs_from_official={
            k: {"official": MPPI_OFFICIAL[k], "planner": v}
            for k, v in planner.items()
            if v != MPPI_OFFICIAL[k]
        },
        flops_note="floor: only the 2 sampled Q heads at the horizon (all 5: see flops_all_q)",
        flops_all_q=tdmpc2_mppi(dims, q_heads=dims.num_q),
    )
    return Prepared(op=op, flops_per_op=tdmpc2_mppi(dims, q_heads=2), details=details)


def tdmpc2_update_workload(*, compile: bool = False) -> Callable[[RunSettings], Prepared]:
    """A ``prepare`` timing one ``Trainer.train_step`` of ``tdmpc2:5m``, B=256, H=3; with
    ``compile``, of the model after ``compile_model`` (compilation happens in prepare)."""

    def prepare(settings: RunSettings) -> Prepared:
        batch_size, horizon = 256, 3
        model = build("tdmpc2:5m")
        dims = TDMPC2_PRESETS["5m"]
        details = common_details(model, dims.as_dict(), _TDMPC2_FIELDS)
        details.update(
            batch=batch_size, horizon=horizon, call="Trainer(model).train_step(batch[256, 4])"
        )
        batch = walker_batch(batch_size, horizon + 1)
        op = prepared_update_op(model, batch, details, compile=compile)
        flops = tdmpc2_update(dims, batch_size, horizon)
        return Prepared(op=op, flops_per_op=flops, details=details)

    return prepare


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="tdmpc2.transition.b256",
        description="tdmpc2:5m one latent transition, B=256",
        unit="latent steps/s",
        prepare=_tdmpc2_transition,
        target=Target(90000.0, reference=66000.0),
        runs=20,
        warmup=5,
        quick_runs=5,
        speedup_target=1.2,
    ),
    Workload(
        name="tdmpc2.mppi",
        description="tdmpc2:5m MPPI, official settings (6 it x 512 samples, H=3), one action",
        unit="ms/action",
        prepare=_tdmpc2_mppi,
        target=Target(250.0, reference=410.0),
        runs=7,
        warmup=2,
        speedup_target=1.1,
    ),
    Workload(
        name="tdmpc2.update",
        description="tdmpc2:5m full update B=256 H=3 (model and policy stages)",
        unit="s/update",
        prepare=tdmpc2_update_workload(),
        target=Target(0.30, reference=0.38),
        runs=7,
        warmup=2,
        speedup_target=1.2,
    ),
)
