"""The explicit examples keep the batch and time axes apart (B != H)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor
from worldflux.conformance.engine import check_model
from worldflux.conformance.example_adapter import PlainWorldAdapter


class TimeMajorRollout(PlainWorldAdapter):
    """rollout returns ``[H, B]`` rewards and continues (time-major), a classic port mistake."""

    def rollout(self, state: Mapping[str, Tensor], actions: Tensor) -> Any:
        traj = super().rollout(state, actions)
        return type(traj)(
            states=traj.states,
            actions=traj.actions,
            rewards=traj.rewards.transpose(0, 1).contiguous(),
            continues=traj.continues.transpose(0, 1).contiguous(),
            predictions={k: v.transpose(0, 1).contiguous() for k, v in traj.predictions.items()},
        )


def test_a_time_major_rollout_fails_the_shape_check(tmp_path: Path) -> None:
    """The typical example has B != H, so the batch and time axes cannot be confused."""
    report = check_model(
        TimeMajorRollout, profile="ci", seed=0, checks=["io.rollout.shapes"], crash_dir=tmp_path
    )
    (result,) = report.results[0].checks
    assert result.status == "fail" and "rewards" in result.message
