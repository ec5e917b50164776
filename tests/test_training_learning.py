"""Learning on a real environment: TD-MPC2 (ci preset) on Gymnasium Pendulum-v1 beats random.

Slow (minutes on 2 CPU cores). Writes the learning curve to reports/ (CSV of every metric, PNG,
and a JSON summary with the random-policy baseline and the evaluation returns).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import worldflux
from worldflux.training.actors import RandomActor
from worldflux.training.envs import GymEnv
from worldflux.training.loop import RunConfig, train
from worldflux.training.plot import plot_run

REPORTS = Path(__file__).resolve().parents[1] / "reports"
NAME = "training_tdmpc2-ci_pendulum"
STEPS = 3000
SEED_STEPS = 1000
EVAL_EVERY = 1000
EVAL_EPISODES = 6
MARGIN = 400.0  # the trained policy must beat the random policy's mean return by this much


def random_policy_return(episodes: int = 20, seed: int = 1234) -> tuple[float, float]:
    """Mean and standard deviation of the return of uniform random actions."""
    env = GymEnv("Pendulum-v1", seed=seed)
    actor = RandomActor(env.spec.action_dim, env.spec.action_type, seed=seed)
    returns = []
    for _ in range(episodes):
        obs, done, total = env.reset(), False, 0.0
        while not done:
            obs, reward, terminated, truncated = env.step(actor.act(obs, False))
            total += reward
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


@pytest.mark.slow
def test_tdmpc2_learns_pendulum(tmp_path: Path) -> None:
    if "tdmpc2:ci" not in worldflux.list_models():
        pytest.skip("tdmpc2 is not registered")
    before = torch.get_num_threads()
    try:
        random_mean, random_std = random_policy_return()
        out = tmp_path / "run"
        summary = train(
            RunConfig(
                model="tdmpc2:ci",
                env_id="Pendulum-v1",
                steps=STEPS,
                out=str(out),
                seed=0,
                seed_steps=SEED_STEPS,
                batch_size=256,
                eval_every=EVAL_EVERY,
                eval_episodes=EVAL_EPISODES,
                checkpoint_every=STEPS,
                log_every=200,
                threads=1,
                progress=False,
            )
        )
    finally:
        torch.set_num_threads(before)
    final = summary.eval_returns[-1]
    REPORTS.mkdir(exist_ok=True)
    shutil.copyfile(out / "metrics.csv", REPORTS / f"{NAME}.csv")
    plot_run(
        out,
        REPORTS / f"{NAME}.png",
        title=f"tdmpc2:ci on Pendulum-v1 ({STEPS} env steps, 1 CPU thread)",
        baseline=random_mean,
    )
    (REPORTS / f"{NAME}.json").write_text(
        json.dumps(
            {
                "model": "tdmpc2:ci",
                "env": "Pendulum-v1",
                "env_steps": summary.env_steps,
                "updates": summary.updates,
                "random_return_mean": random_mean,
                "random_return_std": random_std,
                "eval_every": EVAL_EVERY,
                "eval_episodes": EVAL_EPISODES,
                "eval_returns": summary.eval_returns,
                "train_returns": summary.returns,
                "wall_s": json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])[
                    "time_s"
                ],
            },
            indent=2,
        )
        + "\n"
    )
    assert len(summary.eval_returns) == STEPS // EVAL_EVERY
    assert final > random_mean + MARGIN, (final, random_mean, summary.eval_returns)
    recent = float(np.mean(summary.returns[-5:]))  # training episodes, with exploration noise
    assert recent > random_mean + MARGIN, (recent, random_mean, summary.returns)
