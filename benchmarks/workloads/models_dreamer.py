"""DreamerV3 workloads: size12m imagination and rollout, and full updates of size1m, ci (vectors)
and ci on 64x64 frames (see :mod:`benchmarks.workloads.models` for the shared pieces)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.flops import (
    DREAMERV3_PRESETS,
    DreamerDims,
    dreamer_imagine_step,
    dreamer_rollout_step,
    dreamer_train_step,
    dreamer_with_image,
)
from benchmarks.harness import Prepared, RunSettings, Target, Workload
from benchmarks.workloads.models import (
    ACTION_DIM,
    IMAGINE_HORIZON,
    OBS_DIM,
    actions,
    build,
    common_details,
    observations,
    prepared_update_op,
    walker_batch,
)

__all__ = ["PIXELS", "WORKLOADS", "dreamer_train"]

#: The pixel workload's frames: channel-first uint8, 64x64 (the official DMC image size).
PIXELS = (3, 64, 64)


def _dreamer_size12m(batch: int, *, decode: bool) -> Callable[[RunSettings], Prepared]:
    """DreamerV3 size12m from ``batch`` encoded observations, 15 given actions per sample.

    ``decode=False``: latent imagination, H ``model.transition`` calls (the RSSM prior steps the
    reference's imagine runs and the FLOP floor counts), inputs validated. ``decode=True``:
    ``model.rollout``, which also decodes every imagined state (reward, continue and observation,
    as the Trajectory contract requires).
    """

    def prepare(settings: RunSettings) -> Prepared:
        import torch

        model = build("dreamerv3:size12m")
        dims = DREAMERV3_PRESETS["size12m"]
        with torch.no_grad():
            start = model.encode(observations(batch, OBS_DIM))
        given = actions(batch, IMAGINE_HORIZON, ACTION_DIM)
        steps = [given[:, t] for t in range(IMAGINE_HORIZON)]

        def imagine() -> None:
            with torch.no_grad():
                state = start
                for action in steps:
                    state = model.transition(state, action)

        def rollout() -> None:
            with torch.no_grad():
                model.rollout(start, given)

        details = common_details(model, dims.as_dict(), None)
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


def dreamer_train(
    preset: str,
    batch_size: int,
    seq_len: int,
    obs_shape: tuple[int, ...] = (OBS_DIM,),
    *,
    compile: bool = False,
) -> Callable[[RunSettings], Prepared]:
    """A ``prepare`` timing one ``Trainer.train_step`` of ``dreamerv3:PRESET`` on a seeded
    ``[batch_size, seq_len]`` batch of ``obs_shape`` observations (uint8 frames for 3 dims);
    with ``compile``, of the model after ``compile_model`` (compilation happens in prepare)."""

    def prepare(settings: RunSettings) -> Prepared:
        model = build(f"dreamerv3:{preset}", obs_shape)
        dims: DreamerDims = DREAMERV3_PRESETS[preset]
        if len(obs_shape) == 3:
            dims = dreamer_with_image(dims, (obs_shape[0], obs_shape[1], obs_shape[2]))
        details: dict[str, Any] = common_details(model, dims.as_dict(), None)
        details.update(
            batch=batch_size,
            seq_len=seq_len,
            obs_shape=list(obs_shape),
            config_windows=[getattr(model.config, k, None) for k in ("batch_size", "seq_len")],
            call="Trainer(model).train_step(batch)"
            + (" (uint8 frames / 255 in the op)" if len(obs_shape) == 3 else ""),
        )
        batch = walker_batch(batch_size, seq_len, obs_shape)
        op = prepared_update_op(model, batch, details, compile=compile)
        return Prepared(
            op=op,
            flops_per_op=dreamer_train_step(dims, batch_size, seq_len, IMAGINE_HORIZON),
            details=details,
        )

    return prepare


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
        prepare=dreamer_train("size1m", 16, 64),
        target=Target(0.30),
        runs=5,
        warmup=2,
        speedup_target=2.0,
    ),
    Workload(
        name="dreamerv3.train.ci",
        description="dreamerv3:ci (43k params) full train step B=32 T=16 (its preset's windows), "
        "vectors (24)",
        unit="s/update",
        prepare=dreamer_train("ci", 32, 16),
        runs=10,
        warmup=3,
        quick_runs=3,
        speedup_target=3.0,
    ),
    Workload(
        name="dreamerv3.train.pixels64",
        description="dreamerv3:ci full train step on 3x64x64 uint8 frames, B=32 T=16 (the ci "
        "preset's windows)",
        unit="s/update",
        prepare=dreamer_train("ci", 32, 16, PIXELS),
        runs=3,
        warmup=1,
        quick_runs=1,
        speedup_target=3.0,
    ),
)
