"""Model builds driven by a checkpoint's config are bounded: registrations, elements (on the
meta device) and time; what the config asks for is refused instead of run or allocated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import worldflux.core.checkpoint as checkpoint
from worldflux.core.exceptions import CheckpointError


def test_model_builds_from_a_checkpoint_are_bounded_in_registrations_elements_and_time() -> None:
    """A config can drive a constructor into many modules, huge tensors or a long Python loop;
    the size check refuses each of them instead of running or allocating it."""

    def many_modules() -> None:
        nn.Sequential(*[nn.Identity() for _ in range(10_000)])

    def huge_tensor() -> None:
        with torch.device("meta"):
            nn.Linear(10**6, 10**6)

    def long_loop() -> None:
        def init() -> None:
            pass

        while True:
            init()

    source = Path("config.json")
    with pytest.raises(CheckpointError, match="more than 100 parameters, buffers and modules"):
        with checkpoint.bounded_construction(100, source):
            many_modules()
    with pytest.raises(CheckpointError, match="a model of more than 1000 elements"):
        with checkpoint.bounded_construction(100, source, elements=1000):
            huge_tensor()
    with pytest.raises(CheckpointError, match=r"takes longer than 0\.2 s"):
        with checkpoint.bounded_construction(100, source, seconds=0.2):
            long_loop()
    with checkpoint.bounded_construction(100, source, seconds=5, elements=10_000):
        nn.Linear(10, 10)  # within every bound
