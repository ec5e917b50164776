"""The SSM family's selective scan: the parallel scan equals the recurrent step (for the scan
alone and for a whole model's posteriors, resets and discrete actions included), the step is
stable, and it is selective (step, input and readout depend on the input)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldflux import create_world_model
from worldflux.core.types import Batch
from worldflux.families.ssm.scan import parallel_scan, sequential_scan


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(1, 40),
    resets=st.lists(st.integers(0, 39), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_parallel_scan_equals_the_sequential_scan(
    length: int, resets: list[int], seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(2, length, 3, 2, generator=gen)
    b = torch.randn(2, length, 3, 2, generator=gen)
    for t in resets:
        if t < length:
            a[:, t] = 0.0  # a reset: the state forgets everything before t
    h0 = torch.randn(2, 3, 2, generator=gen)
    torch.testing.assert_close(parallel_scan(a, b, h0), sequential_scan(a, b, h0))


def _batch(model: Any, b: int = 3, t: int = 7, discrete: bool = False) -> Batch:
    gen = torch.Generator().manual_seed(1)
    obs_dim = int(model.config.obs_shape[0])
    if discrete:
        actions = torch.randint(0, model.config.action_dim, (b, t), generator=gen)
    else:
        actions = torch.rand(b, t, model.config.action_dim, generator=gen) * 2 - 1
    is_first = torch.zeros(b, t, dtype=torch.bool)
    if b > 2 and t > 3:
        is_first[1, 3] = True  # a reset inside the window
        is_first[2, 0] = True
    return Batch(
        obs=torch.randn(b, t, obs_dim, generator=gen),
        actions=actions,
        rewards=torch.zeros(b, t),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )


@pytest.mark.parametrize("discrete", [False, True])
def test_training_posteriors_by_parallel_scan_equal_the_step_by_step_filter(discrete: bool) -> None:
    torch.manual_seed(0)
    kind = {"action_type": "discrete", "action_dim": 4} if discrete else {}
    model = create_world_model("ssm:ci", **kind)
    batch = _batch(model, discrete=discrete)
    objective: Any = model.objective
    dynamics: Any = model.dynamics_model
    with torch.no_grad():
        scanned = objective._posteriors(model, batch)
        dynamics.observe_sequence = None  # the generic objective then filters step by step
        stepped = objective._posteriors(model, batch)
    assert len(scanned) == len(stepped) == batch.seq_len
    for t, (fast, slow) in enumerate(zip(scanned, stepped, strict=True)):
        for key in ("latent", "h"):
            torch.testing.assert_close(fast[key], slow[key], msg=f"{key} at t={t}")


def test_the_step_is_stable_and_selective() -> None:
    torch.manual_seed(0)
    model = create_world_model("ssm:ci")
    dynamics: Any = model.dynamics_model
    u1, u2 = torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        decay1, drive1, c1 = dynamics.coefficients(u1)
        decay2, drive2, c2 = dynamics.coefficients(u2)
    assert bool(((decay1 > 0) & (decay1 < 1)).all())  # exp(dt A) in (0, 1): stable
    # selective: the step (decay), the input matrix and the readout change with the input
    assert not torch.allclose(decay1, decay2)
    assert not torch.allclose(c1, c2)
    ratio1 = drive1 / u1.unsqueeze(-1)
    ratio2 = drive2 / u2.unsqueeze(-1)
    assert not torch.allclose(ratio1, ratio2)  # dt * B depends on u (not a fixed linear map)


def test_a_rollout_continues_the_filtered_state() -> None:
    """transition() steps the same recurrence: from a posterior, one prior step with the
    observation's input in place of the readout's gives the next posterior."""
    torch.manual_seed(0)
    model = create_world_model("ssm:ci")
    dynamics: Any = model.dynamics_model
    batch = _batch(model, b=2, t=2)
    batch["is_first"][:] = False
    with torch.no_grad():
        first, second = model.objective._posteriors(model, batch)  # type: ignore[union-attr]
        obs_input = dynamics.obs_in(model.observation_encoder(batch["obs"][:, 1])["latent"])
        action_input = model.action_conditioner(first, batch["actions"][:, 0])
        manual = dynamics._step(first, obs_input + action_input)
    torch.testing.assert_close(manual["h"], second["h"])
