"""The online training loop behind ``worldflux train``: collect, replay, update, log, checkpoint.

One environment step at a time: act (random for the first ``seed_steps``, then the model's
planner or policy), store the transition, and run ``updates_per_step`` Trainer updates on
``[batch_size, seq_len]`` windows from the replay buffer (plus ``pretrain_updates`` once the seed
phase ends, as TD-MPC2 does). Checkpoints are written at episode ends every
``checkpoint_every`` env steps and when the run stops; resuming from an episode-end checkpoint
continues bitwise exactly on CPU. A run that stopped mid-episode resumes by truncating that
episode and starting a new one.

Several processes (``torchrun``) each collect their own experience with their own seeds and
average gradients; rank 0 logs, every rank checkpoints its own state (``checkpoint-rank<r>/``).

Where things are: :func:`train` (here) prepares the process and runs an
:class:`~worldflux.training.online.OnlineRun` (``online.py``: the loop, one short method per
part); ``run_data.py`` holds what the run is made of: :class:`RunConfig`, the derived
:class:`~worldflux.training.run_data.RunSettings`, the resumable
:class:`~worldflux.training.run_data.LoopState` (a checkpoint's ``extra["derived"]`` and
``extra["loop"]``) and :class:`RunSummary`.
"""

from __future__ import annotations

import torch

from worldflux.core.exceptions import ConfigurationError
from worldflux.runtime import tune_cpu_allocator
from worldflux.training.distributed import init_from_environment
from worldflux.training.online import OnlineRun
from worldflux.training.online_vector import VectorRun
from worldflux.training.run_data import RUN_FILE, RunConfig, RunSummary, checkpoint_dir

__all__ = ["RUN_FILE", "RunConfig", "RunSummary", "checkpoint_dir", "train"]


def train(config: RunConfig, resume: bool = False) -> RunSummary:
    """Run (or resume, from ``config.out``'s checkpoint) an online training run.

    Applies :func:`worldflux.runtime.tune_cpu_allocator` to the process first
    (``WORLDFLUX_ALLOCATOR_TUNING=0`` opts out).

    Raises:
        ConfigurationError: unknown model or environment, bad options.
        CheckpointError: resuming from a missing or mismatching checkpoint.
        NonFiniteError: a NaN/inf loss or gradient (the last checkpoint stays valid).
        TrainingInterrupted: SIGINT/SIGTERM stopped the run after a resumable checkpoint.
        TrainingError: a collective failed (several processes), or the replicas diverged.
    """
    if config.steps < 1:
        raise ConfigurationError(f"steps: expected >= 1, found {config.steps}")
    if config.threads is not None:
        torch.set_num_threads(max(1, int(config.threads)))
    tune_cpu_allocator()  # a long-running job: reuse freed activations (worldflux.runtime)
    run_class = VectorRun if config.vectorized else OnlineRun  # --num-envs N > 1: VectorRun
    return run_class(config, init_from_environment(), resume=resume).run()
