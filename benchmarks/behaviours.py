"""Every family acts: each family's declared behaviour trained and evaluated on one task, against
a random policy on the same evaluation episodes.

``python -m benchmarks.behaviours [--families jepa,ssm,...] [--steps N] [--json OUT]
[--markdown] [--plot PNG]`` trains ``<family>:ci`` with ``worldflux train``'s loop on
``worldflux/Reach-v0`` (a point moving to a goal; reward ``-distance`` per step, 50 steps; goal
planners get the goal observation at each reset), evaluates the behaviour in eval mode every
quarter of the run and at the end, and evaluates a uniform random policy on the same evaluation
episodes (the evaluation environment is seeded identically and its start/goal draws do not
depend on the actions). One thread per run; the table is docs/families.md's "Every family acts".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from worldflux.training.actors import RandomActor, declared_behaviour
from worldflux.training.envs import GymEnv
from worldflux.training.loop import train
from worldflux.training.reach import ENV_ID
from worldflux.training.run_data import RunConfig

#: The nine families of issue 20, then TD-MPC2 (its MPPI, for scale). DreamerV3's actor is
#: measured on CartPole and Pendulum in docs/families.md ("learning runs").
FAMILIES = (
    "jepa",
    "vjepa2",
    "token",
    "diffusion",
    "dit",
    "ssm",
    "renderer3d",
    "physics",
    "gan",
    "tdmpc2",
)
#: families whose encoders take images: they see Reach rendered (point red, goal green), and
#: goal planners get the frame of the goal state
IMAGE_FAMILIES = {"vjepa2": 32, "renderer3d": 32}
#: the evaluation environment's seed offset in the training loop (OnlineRun.eval_env)
EVAL_SEED_OFFSET = 500


@dataclass
class FamilyResult:
    """One family's run: its behaviour, evaluation curve and the random policy's return."""

    family: str
    task: str
    behaviour: str | None
    actor: str
    steps: int
    eval_steps: list[int]
    eval_returns: list[float]
    final_return: float
    random_return: float
    wall_s: float

    @property
    def margin(self) -> float:
        return self.final_return - self.random_return


def random_return(episodes: int, seed: int) -> float:
    """Mean return of uniform random actions on the evaluation episodes of a run seeded ``seed``."""
    env = GymEnv(ENV_ID, seed=seed + EVAL_SEED_OFFSET)
    actor = RandomActor(2, "continuous", seed=seed + 12345)
    totals = []
    for _ in range(episodes):
        obs, done, total, first = env.reset(), False, 0.0, True
        while not done:
            obs, reward, terminated, truncated = env.step(actor.act(obs, first, eval_mode=True))
            total, done, first = total + reward, terminated or truncated, False
        totals.append(total)
    env.close()
    return statistics.fmean(totals)


def run_family(
    family: str, steps: int, episodes: int, seed: int, out: Path, behaviour: str | None = None
) -> FamilyResult:
    """Train ``<family>:ci`` on Reach for ``steps`` env steps and evaluate it (see module doc)."""
    updates = 0.25 if family == "tdmpc2" else 1.0  # MPPI's 512 x 6 plans dominate its time
    size = IMAGE_FAMILIES.get(family)
    config = RunConfig(
        model=f"{family}:ci",
        behaviour=behaviour,
        env_id=ENV_ID,
        obs_mode="image" if size else "vector",
        image_size=size or 64,
        steps=steps,
        out=str(out / family),
        seed=seed,
        seed_steps=min(500, steps // 5),
        updates_per_step=updates,
        eval_every=max(1, steps // 4),
        eval_episodes=episodes,
        checkpoint_every=10**9,
        checkpoint_minutes=0.0,
        progress=False,
        threads=1,
    )
    start = time.perf_counter()
    summary = train(config)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (out / family / "metrics.jsonl").open()]
    evals = [r for r in records if r.get("kind") == "eval"]
    return FamilyResult(
        family=family,
        task=f"Reach-v0 ({size}x{size} pixels)" if size else "Reach-v0",
        behaviour=declared_behaviour(summary.model),
        actor=summary.actor,
        steps=summary.env_steps,
        eval_steps=[int(r["env_step"]) for r in evals],
        eval_returns=[float(r["eval_return"]) for r in evals],
        final_return=float(summary.eval_returns[-1]),
        random_return=random_return(episodes, seed),
        wall_s=wall,
    )


def markdown(results: list[FamilyResult], command: str) -> str:
    """The docs table: family | behaviour | task | return vs random | steps | wall time."""
    lines = [
        f"Measured with `{command}` (1 thread, 2 shared vCPUs; `ci` presets; seed 0; "
        "mean over the evaluation episodes; higher is better, 0 is perfect).",
        "",
        "| family | behaviour | task | eval return (curve) | random | beats random | env steps "
        "| wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        curve = " → ".join(f"{v:.1f}" for v in r.eval_returns)
        verdict = "yes" if r.margin > 0.1 * abs(r.random_return) else "**no**"
        lines.append(
            f"| {r.family} | `{r.behaviour}` | {r.task} | {r.final_return:.1f} ({curve}) | "
            f"{r.random_return:.1f} | {verdict} ({r.margin:+.1f}) | {r.steps} | "
            f"{r.wall_s / 60:.1f} min |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.behaviours", description=__doc__)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--behaviour", default=None, help="swap this behaviour in (all families)")
    parser.add_argument("--out", default=None, help="run directories (default: a temp dir)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--markdown", action="store_true", help="print the docs table")
    parser.add_argument("--plot", default=None, help="PNG of every family's evaluation curve")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="wf-behaviours-"))
    results = []
    for family in [f for f in args.families.split(",") if f]:
        result = run_family(family, args.steps, args.episodes, args.seed, out, args.behaviour)
        results.append(result)
        print(
            f"{family:11s} {result.behaviour!s:17s} final {result.final_return:8.1f}  random "
            f"{result.random_return:8.1f}  curve {[round(v, 1) for v in result.eval_returns]}  "
            f"{result.wall_s:6.0f} s",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    if args.markdown:
        command = "python -m benchmarks.behaviours " + " ".join(argv or sys.argv[1:])
        sys.stdout.write(markdown(results, command.strip()))
    if args.plot:
        plot(results, Path(args.plot))
    return 0


def plot(results: list[FamilyResult], path: Path) -> None:
    """Every family's evaluation return over env steps, with the random policy's level."""
    import matplotlib  # deferred: optional dependency (plots only)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: after matplotlib.use

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        ax.plot(r.eval_steps, r.eval_returns, marker="o", label=f"{r.family} ({r.behaviour})")
    levels: list[Any] = [r.random_return for r in results]
    ax.axhline(statistics.fmean(levels), color="k", ls="--", label="random policy")
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return (Reach-v0)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
