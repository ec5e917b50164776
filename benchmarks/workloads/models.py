"""Model workloads: DreamerV3 imagination and training, TD-MPC2 transition, MPPI and update.

Only the public API is used (``worldflux.create_world_model``, ``model.encode``,
``model.rollout``, ``model.transition``, ``model.plan`` and the ``Trainer`` update protocol built
on ``objective.make_optimizers``), so the figures hold whatever the families' internals. A model
that is not registered yet makes its workloads "skipped". Every model is built for DMC Walker
proprio shapes: ``obs_shape=(24,)``, ``action_dim=6``, seed 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from benchmarks import Skipped
from benchmarks.flops import (
    DREAMERV3_PRESETS,
    TDMPC2_PRESETS,
    dreamer_imagine_step,
    dreamer_rollout_step,
    dreamer_train_step,
    tdmpc2_dynamics_step,
    tdmpc2_mppi,
    tdmpc2_update,
)
from benchmarks.harness import Prepared, RunSettings, Target, Workload

__all__ = ["WORKLOADS", "config_mismatches"]

OBS_DIM, ACTION_DIM = 24, 6
IMAGINE_HORIZON = 15

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


def config_mismatches(
    config: Any, expected: Mapping[str, Any], fields: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Expected dims that the model config states differently: ``{dim: {expected, config}}``.

    Fields the config lacks are not mismatches (the FLOP count then assumes the reference value).
    """
    out: dict[str, dict[str, Any]] = {}
    for dim, value in expected.items():
        found = getattr(config, (fields or {}).get(dim, dim), None)
        if found is not None and found != value:
            out[dim] = {"expected": value, "config": found}
    return out


def _build(model_id: str) -> Any:
    """The registered model ``model_id`` for Walker shapes, in eval mode, seeded.

    Raises:
        Skipped: ``model_id`` is not registered (yet).
    """
    import torch

    import worldflux

    available = worldflux.list_models()
    if model_id not in available:
        raise Skipped(f"model {model_id!r} is not registered yet")
    torch.manual_seed(0)
    model = worldflux.create_world_model(model_id, obs_shape=(OBS_DIM,), action_dim=ACTION_DIM)
    return model.eval()


def _common_details(
    model: Any, dims: Mapping[str, Any], fields: Mapping[str, str] | None
) -> dict[str, Any]:
    return {
        "model_class": type(model).__name__,
        "trainable_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "flop_dims": dict(dims),
        "config_mismatches": config_mismatches(model.config, dims, fields),
    }


def _actions(*shape: int) -> Any:
    import torch

    gen = torch.Generator().manual_seed(1)
    return torch.rand(*shape, generator=gen) * 2 - 1


def _observations(*shape: int) -> Any:
    import torch

    gen = torch.Generator().manual_seed(2)
    return torch.randn(*shape, generator=gen)


def _dreamer_size12m(batch: int, *, decode: bool) -> Callable[[RunSettings], Prepared]:
    """DreamerV3 size12m from ``batch`` encoded observations, 15 given actions per sample.

    ``decode=False``: latent imagination, H ``model.transition`` calls (the RSSM prior steps the
    reference's imagine runs and the FLOP floor counts), inputs validated. ``decode=True``:
    ``model.rollout``, which also decodes every imagined state (reward, continue and observation,
    as the Trajectory contract requires).
    """

    def prepare(settings: RunSettings) -> Prepared:
        import torch

        model = _build("dreamerv3:size12m")
        dims = DREAMERV3_PRESETS["size12m"]
        with torch.no_grad():
            start = model.encode(_observations(batch, OBS_DIM))
        actions = _actions(batch, IMAGINE_HORIZON, ACTION_DIM)
        steps = [actions[:, t] for t in range(IMAGINE_HORIZON)]

        def imagine() -> None:
            with torch.no_grad():
                state = start
                for action in steps:
                    state = model.transition(state, action)

        def rollout() -> None:
            with torch.no_grad():
                model.rollout(start, actions)

        details = _common_details(model, dims.as_dict(), None)
        details.update(batch=batch, horizon=IMAGINE_HORIZON)
        if decode:
            details.update(
                call="model.rollout(state, actions[B, 15, 6]) under no_grad",
                flops_note="RSSM prior steps plus reward, continue and obs decode of each state",
            )
        else:
            details.update(
                call="15 x model.transition(state, action[B, 6]) under no_grad",
                flops_note="RSSM prior steps (the floor); dreamerv3.rollout.* adds the decode",
            )
        per_step = dreamer_rollout_step(dims) if decode else dreamer_imagine_step(dims)
        return Prepared(
            op=rollout if decode else imagine,
            work_per_op=float(batch * IMAGINE_HORIZON),
            flops_per_op=batch * IMAGINE_HORIZON * per_step,
            details=details,
        )

    return prepare


def _batch(batch: int, seq_len: int) -> Any:
    import torch

    from worldflux.core.types import Batch

    gen = torch.Generator().manual_seed(3)
    is_first = torch.zeros(batch, seq_len, dtype=torch.bool)
    is_first[:, 0] = True
    return Batch(
        obs=torch.randn(batch, seq_len, OBS_DIM, generator=gen),
        actions=torch.rand(batch, seq_len, ACTION_DIM, generator=gen) * 2 - 1,
        rewards=torch.randn(batch, seq_len, generator=gen),
        terminated=torch.zeros(batch, seq_len, dtype=torch.bool),
        truncated=torch.zeros(batch, seq_len, dtype=torch.bool),
        is_first=is_first,
    )


def _update_op(model: Any, batch: Any) -> Callable[[], None]:
    """One full update through the project's update protocol (Trainer.train_step)."""
    try:
        from worldflux.training.trainer import Trainer
    except ImportError as error:
        raise Skipped(f"worldflux.training.trainer is not available yet ({error})") from None
    trainer = Trainer(model)

    def op() -> None:
        trainer.train_step(batch)

    return op


def _dreamer_train(settings: RunSettings) -> Prepared:
    batch_size, seq_len = 16, 64
    model = _build("dreamerv3:size1m")
    dims = DREAMERV3_PRESETS["size1m"]
    op = _update_op(model, _batch(batch_size, seq_len))
    details = _common_details(model, dims.as_dict(), None)
    details.update(batch=batch_size, seq_len=seq_len, call="Trainer(model).train_step(batch)")
    return Prepared(
        op=op,
        flops_per_op=dreamer_train_step(dims, batch_size, seq_len, IMAGINE_HORIZON),
        details=details,
    )


def _tdmpc2_transition(settings: RunSettings) -> Prepared:
    import torch

    batch = 256
    model = _build("tdmpc2:5m")
    dims = TDMPC2_PRESETS["5m"]
    with torch.no_grad():
        state = model.encode(_observations(batch, OBS_DIM))
    action = _actions(batch, ACTION_DIM)
    steps = 20  # independent transitions per op: one alone (~2 ms) is too short to time well

    def op() -> None:
        with torch.no_grad():
            for _ in range(steps):
                model.transition(state, action)

    details = _common_details(model, dims.as_dict(), _TDMPC2_FIELDS)
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

    model = _build("tdmpc2:5m")
    dims = TDMPC2_PRESETS["5m"]
    if getattr(model, "planner", None) is None:
        raise Skipped("tdmpc2:5m has no planner yet")
    obs = _observations(1, OBS_DIM)
    with torch.no_grad():
        model.plan(obs, t0=True)  # first step of an episode: no warm start

    def op() -> None:
        with torch.no_grad():
            model.plan(obs)

    planner = _planner_settings(model.planner)
    details = _common_details(model, dims.as_dict(), _TDMPC2_FIELDS)
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


def _tdmpc2_update(settings: RunSettings) -> Prepared:
    batch_size, horizon = 256, 3
    model = _build("tdmpc2:5m")
    dims = TDMPC2_PRESETS["5m"]
    op = _update_op(model, _batch(batch_size, horizon + 1))
    details = _common_details(model, dims.as_dict(), _TDMPC2_FIELDS)
    details.update(
        batch=batch_size, horizon=horizon, call="Trainer(model).train_step(batch[256, 4])"
    )
    return Prepared(op=op, flops_per_op=tdmpc2_update(dims, batch_size, horizon), details=details)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="dreamerv3.imagine.b16",
        description="dreamerv3:size12m imagination B=16 H=15, actions given",
        unit="latent steps/s",
        prepare=_dreamer_size12m(16, decode=False),
        target=Target(6000.0, reference=2450.0),
        runs=10,
        warmup=3,
        quick_runs=3,
    ),
    Workload(
        name="dreamerv3.imagine.b1024",
        description="dreamerv3:size12m imagination B=1024 H=15, actions given",
        unit="latent steps/s",
        prepare=_dreamer_size12m(1024, decode=False),
        target=Target(14000.0, reference=9650.0),
        runs=5,
        warmup=1,
    ),
    Workload(
        name="dreamerv3.rollout.b16",
        description="dreamerv3:size12m model.rollout B=16 H=15 (imagination + decode)",
        unit="latent steps/s",
        prepare=_dreamer_size12m(16, decode=True),
        runs=10,
        warmup=3,
        quick_runs=3,
    ),
    Workload(
        name="dreamerv3.rollout.b1024",
        description="dreamerv3:size12m model.rollout B=1024 H=15 (imagination + decode)",
        unit="latent steps/s",
        prepare=_dreamer_size12m(1024, decode=True),
        runs=5,
        warmup=1,
    ),
    Workload(
        name="dreamerv3.train.size1m",
        description="dreamerv3:size1m full train step B=16 T=64 (world model, actor, critic)",
        unit="s/update",
        prepare=_dreamer_train,
        target=Target(0.30),
        runs=5,
        warmup=2,
    ),
    Workload(
        name="tdmpc2.transition.b256",
        description="tdmpc2:5m one latent transition, B=256",
        unit="latent steps/s",
        prepare=_tdmpc2_transition,
        target=Target(90000.0, reference=66000.0),
        runs=20,
        warmup=5,
        quick_runs=5,
    ),
    Workload(
        name="tdmpc2.mppi",
        description="tdmpc2:5m MPPI, official settings (6 it x 512 samples, H=3), one action",
        unit="ms/action",
        prepare=_tdmpc2_mppi,
        target=Target(250.0, reference=410.0),
        runs=7,
        warmup=2,
    ),
    Workload(
        name="tdmpc2.update",
        description="tdmpc2:5m full update B=256 H=3 (model and policy stages)",
        unit="s/update",
        prepare=_tdmpc2_update,
        target=Target(0.30, reference=0.38),
        runs=7,
        warmup=2,
    ),
)
