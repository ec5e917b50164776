"""DreamerV3 learns CartPole-v1 (slow: about 18 minutes on 2 shared vCPUs, one torch thread).

The documented run of docs/families.md ("DreamerV3 on CartPole-v1"): ``dreamerv3:ci`` with the
``size1m`` head width (``units=64``), 3,000 environment steps, 500 random seed steps, one update
per step, seed 0. Measured: final evaluation 56.0, last-10 training mean 45.9. A random policy
scores 22.7 on average (200 seeded episodes); always pushing one way scores 8 to 11, where the
policy stayed before replay windows crossed episode boundaries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worldflux.training import RunConfig, train

RANDOM = 22.7


@pytest.mark.slow
def test_dreamerv3_learns_cartpole(tmp_path: Path) -> None:
    summary = train(
        RunConfig(
            model="dreamerv3:ci",
            env_id="CartPole-v1",
            steps=3000,
            out=str(tmp_path / "run"),
            seed=0,
            seed_steps=500,
            eval_every=500,
            eval_episodes=5,
            model_overrides={"units": 64},
            progress=False,
            threads=1,
        )
    )
    assert summary.eval_returns[-1] >= 2 * RANDOM, summary.eval_returns
    assert sum(summary.returns[-10:]) / 10 >= 1.5 * RANDOM, summary.returns[-10:]
