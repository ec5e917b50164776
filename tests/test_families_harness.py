"""Shared helpers of the non-REFERENCE family tests (tests/test_families_*.py).

The maturity obligations themselves are judged by the conformance engine
(tests/test_families_maturity.py); this module only builds the shipped models and their inputs:
:func:`registered` gives a family's generated, registered model and config classes,
:func:`build` a seeded model of a preset, ``random_*`` valid inputs, and :func:`check_overfit`
the family-specific "its own loss term decreases" test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from ruamel.yaml import YAML

from worldflux.core.config import WorldModelConfig
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.types import Batch

ROOT = Path(__file__).resolve().parent.parent

Classes = tuple[type[WorldModel], type[WorldModelConfig]]


def load_spec(family: str) -> dict[str, Any]:
    """The parsed ``specs/models/<family>.yaml``."""
    data = YAML(typ="safe").load((ROOT / "specs" / "models" / f"{family}.yaml").read_text())
    assert isinstance(data, dict)
    return data


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread (tiny models: threads only add contention), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def registered(family: str) -> Iterator[Classes]:
    """The family's generated model and config classes, on one torch thread."""
    with single_thread():
        yield WorldModelRegistry.get(family), WorldModelRegistry.get_config_class(family)


def build(
    model_cls: type[WorldModel],
    config_cls: type[WorldModelConfig],
    preset: str = "ci",
    seed: int = 0,
    **overrides: Any,
) -> WorldModel:
    """A seeded model of ``preset`` (env overrides such as ``obs_shape`` allowed), in eval mode."""
    torch.manual_seed(seed)
    values = {**getattr(model_cls, "presets", {})[preset], **overrides}
    model = model_cls(config_cls(**values))
    return model.eval()


# -- inputs -----------------------------------------------------------------------------------
def obs_shape(model: WorldModel) -> tuple[int, ...]:
    return tuple(model.config.obs_shape)


def random_obs(model: WorldModel, lead: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, *obs_shape(model), generator=gen)


def random_actions(model: WorldModel, lead: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if model.config.action_type == "discrete":
        return torch.randint(0, model.config.action_dim, lead, generator=gen)
    return torch.rand(*lead, model.config.action_dim, generator=gen) * 2 - 1


def random_batch(model: WorldModel, b: int = 2, t: int = 4, seed: int = 0) -> Batch:
    """A valid ``[b, t, ...]`` batch with an episode boundary in sample 0 when ``t >= 3``."""
    gen = torch.Generator().manual_seed(seed + 7)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    terminated = torch.zeros(b, t, dtype=torch.bool)
    if t >= 3:
        is_first[0, 2] = True
        terminated[0, 1] = True
    return Batch(
        obs=random_obs(model, (b, t), seed),
        actions=random_actions(model, (b, t), seed + 1),
        rewards=torch.randn(b, t, generator=gen),
        terminated=terminated,
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )


def check_overfit(
    model: WorldModel, steps: int = 60, lr: float = 3e-3, main: str | None = None
) -> tuple[float, float]:
    """Loss on one fixed batch decreases under Adam (the objective's after_step included); so
    does the ``main`` component when given (the family's own term, not only the easy heads).

    Returns:
        (mean loss of the first 5 steps, mean loss of the last 5 steps).
    """
    model.train()
    batch = random_batch(model, b=4, t=4, seed=3)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    objective: Any = model.objective
    torch.manual_seed(0)
    losses, mains = [], []
    for _ in range(steps):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        objective.after_step(model)
        # the world model's loss: a learned behaviour's terms chase moving targets
        moving = model.behaviour.loss_terms if getattr(model, "behaviour", None) else ()
        losses.append(float(out.loss.detach() - sum(out.components[t].detach() for t in moving)))
        if main is not None:
            mains.append(float(out.components[main].detach()))
    model.eval()
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, f"loss did not decrease: {first:.4f} -> {last:.4f}"
    if main is not None:
        m_first, m_last = sum(mains[:5]) / 5, sum(mains[-5:]) / 5
        assert m_last < m_first, f"{main} did not decrease: {m_first:.4f} -> {m_last:.4f}"
    return first, last
