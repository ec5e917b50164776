"""One way to open a dataset, whatever its format: :func:`open_dataset`."""

from __future__ import annotations

from typing import TypeAlias

from worldflux.datasets.format import EpisodeDataset
from worldflux.datasets.minari import MinariDataset, find_minari

__all__ = ["Dataset", "open_dataset"]

#: Every dataset kind serves the same interface: ``meta``, ``len()``, ``split()``,
#: ``episode(i)``, iteration (episodes checked as they are read).
Dataset: TypeAlias = EpisodeDataset | MinariDataset


def open_dataset(path: str) -> Dataset:
    """A worldflux episode directory (``dataset.json`` + ``episodes/*.npz``), or a local Minari
    dataset: its directory, its ``main_data.hdf5``, or ``minari:<id>``.

    Raises:
        DatasetError: nothing usable at ``path`` (naming what was looked for).
    """
    main = find_minari(str(path))
    if main is not None:
        return MinariDataset(main)
    return EpisodeDataset(path)
