"""``worldflux train MODEL --dataset PATH``: train a world model from recorded episodes alone.

The dataset is checked against the model's I/O contract before the first update (one error
naming the episode file, the key and the shapes); windows are streamed from the training
episodes; every ``val_every`` updates the loss on held-out episodes (no gradient) is logged next
to the training metrics; the trained model is saved with ``save_pretrained`` in ``OUT/model``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from worldflux.core.model import WorldModel
from worldflux.datasets.sampler import WindowSampler, check_contract
from worldflux.datasets.source import Dataset, open_dataset
from worldflux.factory import create_world_model
from worldflux.training.metrics import MetricsLogger
from worldflux.training.trainer import Trainer, TrainerConfig

__all__ = ["OfflineConfig", "OfflineSummary", "build_for_dataset", "train_offline"]


@dataclass
class OfflineConfig:
    """One offline run. ``updates`` gradient steps on ``[batch_size, seq_len]`` windows."""

    model: str
    dataset: str
    updates: int
    out: str
    seed: int = 0
    batch_size: int | None = None
    seq_len: int | None = None
    validation: float = 0.1
    val_every: int = 100
    log_every: int = 50
    model_overrides: dict[str, Any] = field(default_factory=dict)
    grad_clip: float | None = None
    tensorboard: bool = False
    compile: bool = False  # compile the model's declared regions (docs/compile.md)


@dataclass
class OfflineSummary:
    """What the run did: updates, the first and last training loss, validation losses."""

    out: str
    updates: int
    train_episodes: int
    val_episodes: int
    first_loss: float
    last_loss: float
    val_losses: list[tuple[int, float]]
    seconds: float
    compile: str | None = None  # with compile: what was compiled, in how long (one line)


def build_for_dataset(model_id: str, dataset: Dataset, **overrides: Any) -> WorldModel:
    """``model_id`` sized for the dataset's observation and action spaces, contract-checked."""
    meta = dataset.meta
    env: dict[str, Any] = {
        "action_dim": int(meta.action["dim"]),
        "action_type": str(meta.action["type"]),
    }
    if meta.obs_keys is None:
        env["obs_shape"] = tuple(meta.observation["shape"])
    model = create_world_model(model_id, **{**env, **overrides})
    check_contract(dataset, model.bound_contract(), model_id)
    return model


def _window_defaults(model: WorldModel, config: OfflineConfig) -> tuple[int, int]:
    batch = config.batch_size or getattr(model.config, "batch_size", None) or 32
    seq_len = config.seq_len
    if seq_len is None:
        horizon = getattr(model.config, "horizon", None)
        seq_len = horizon + 1 if isinstance(horizon, int) else 16
    return int(batch), int(seq_len)


@torch.no_grad()
def _val_loss(model: WorldModel, sampler: WindowSampler, batch: int, seq_len: int) -> float:
    model.eval()
    try:
        return float(model.loss(sampler.sample(batch, seq_len)).loss)
    finally:
        model.train()


def train_offline(config: OfflineConfig) -> OfflineSummary:
    """Run ``config``; metrics go to ``OUT/metrics.jsonl`` / ``.csv``, the model to ``OUT/model``.

    Raises:
        DatasetError: the dataset is malformed or does not fit the model's contract (raised
            before any update).
    """
    torch.manual_seed(config.seed)
    dataset = open_dataset(config.dataset)
    model = build_for_dataset(config.model, dataset, **config.model_overrides)
    batch, seq_len = _window_defaults(model, config)
    train_ids, val_ids = dataset.split(config.validation)
    train = WindowSampler(dataset, train_ids, seed=config.seed)
    val = WindowSampler(dataset, val_ids, seed=config.seed + 1) if val_ids else None
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(asdict(config), indent=2, sort_keys=True) + "\n")
    trainer = Trainer(model, TrainerConfig(grad_clip=config.grad_clip, compile=config.compile))
    logger = MetricsLogger(out, tensorboard=config.tensorboard)
    start = time.perf_counter()
    losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    try:
        for update in range(1, config.updates + 1):
            result = trainer.train_step(train.sample(batch, seq_len))
            losses.append(float(result.metrics.get("loss", float("nan"))))
            if update % config.log_every == 0 or update == config.updates:
                logger.log({"kind": "train", "update": update, **result.metrics})
            if val is not None and (update % config.val_every == 0 or update == config.updates):
                value = _val_loss(model, val, batch, seq_len)
                val_losses.append((update, value))
                logger.log({"kind": "validation", "update": update, "loss": value})
        if trainer.compile_report is not None:
            logger.log(
                {"kind": "compile", "update": config.updates, **(trainer.compile_info() or {})}
            )
    finally:
        logger.close()
    model.save_pretrained(out / "model")
    return OfflineSummary(
        out=str(out),
        updates=config.updates,
        train_episodes=len(train_ids),
        val_episodes=len(val_ids),
        first_loss=losses[0] if losses else float("nan"),
        last_loss=losses[-1] if losses else float("nan"),
        val_losses=val_losses,
        seconds=time.perf_counter() - start,
        compile=trainer.compile_summary(),
    )
