"""worldflux.training: contract-checked Trainer, replay buffer, checkpoints, Gymnasium loop.

Public names are imported lazily so that ``worldflux train --help`` stays fast::

    from worldflux.training import Trainer, TrainerConfig, ReplayBuffer, RunConfig, train

See docs/training.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worldflux.lazy import lazy_exports

if TYPE_CHECKING:
    from worldflux.training.checkpoint import (
        load_training_checkpoint,
        save_training_checkpoint,
    )
    from worldflux.training.distributed import DistributedContext, init_from_environment
    from worldflux.training.envs import GymEnv
    from worldflux.training.errors import NonFiniteError, ReplayError, TrainingError
    from worldflux.training.loop import RunConfig, RunSummary, train
    from worldflux.training.replay import ReplayBuffer
    from worldflux.training.replay_bench import measure_sampling_throughput
    from worldflux.training.trainer import GuardedOptimizer, StepResult, Trainer, TrainerConfig

__getattr__ = lazy_exports(
    "worldflux.training",
    {
        "DistributedContext": "distributed",
        "GymEnv": "envs",
        "NonFiniteError": "errors",
        "ReplayBuffer": "replay",
        "ReplayError": "errors",
        "RunConfig": "loop",
        "RunSummary": "loop",
        "StepResult": "trainer",
        "Trainer": "trainer",
        "TrainerConfig": "trainer",
        "TrainingError": "errors",
        "GuardedOptimizer": "trainer",
        "init_from_environment": "distributed",
        "load_training_checkpoint": "checkpoint",
        "measure_sampling_throughput": "replay_bench",
        "save_training_checkpoint": "checkpoint",
        "train": "loop",
    },
)

__all__ = [
    "DistributedContext",
    "GuardedOptimizer",
    "GymEnv",
    "NonFiniteError",
    "ReplayBuffer",
    "ReplayError",
    "RunConfig",
    "RunSummary",
    "StepResult",
    "Trainer",
    "TrainerConfig",
    "TrainingError",
    "init_from_environment",
    "load_training_checkpoint",
    "measure_sampling_throughput",
    "save_training_checkpoint",
    "train",
]
