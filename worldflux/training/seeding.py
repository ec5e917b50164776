"""The global random streams of a run: seed them all, or run a block without moving them."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["isolated_rng", "seed_everything"]


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Run a block without moving torch's, numpy's or Python's global random streams."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng():
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's ``random`` from one integer."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
