"""Offline data: the worldflux episode dataset format, recording, streaming windows, training.

See docs/evaluation.md ("Datasets") for the format; ``worldflux dataset record|info`` and
``worldflux train MODEL --dataset PATH`` are the commands.
"""

from __future__ import annotations

from worldflux.lazy import lazy_exports

__getattr__ = lazy_exports(
    "worldflux.datasets",
    {
        "DatasetError": "format",
        "DatasetMeta": "format",
        "Episode": "format",
        "EpisodeDataset": "format",
        "MinariDataset": "minari",
        "open_dataset": "source",
        "WindowSampler": "sampler",
        "check_contract": "sampler",
        "record_dataset": "record",
        "OfflineConfig": "offline",
        "train_offline": "offline",
    },
)

__all__ = [
    "DatasetError",
    "DatasetMeta",
    "Episode",
    "EpisodeDataset",
    "MinariDataset",
    "OfflineConfig",
    "WindowSampler",
    "check_contract",
    "open_dataset",
    "record_dataset",
    "train_offline",
]
