"""Draw a learning-curve figure (PNG) and a compact CSV from a ``worldflux train`` run directory.

Usage::

    python docs/figures/plot_run.py RUN_DIR OUT_STEM --title TITLE --random R [--metric KEY ...]

Writes ``OUT_STEM.png`` (training episode returns with a 10-episode moving average, evaluation
returns, the random policy's mean return as a dashed line, and optional train metrics such as
``imag/entropy`` in a second panel) and ``OUT_STEM.csv`` (every record of ``metrics.jsonl``, the
columns ``kind, env_step, update, time_s, episode_return, eval_return`` plus the metrics asked for).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any


def load(run: Path) -> list[dict[str, Any]]:
    """The records of ``run/metrics.jsonl``."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--title", required=True)
    parser.add_argument("--random", type=float, required=True, help="random policy mean return")
    parser.add_argument("--metric", action="append", default=[], help="train metric to draw")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = load(args.run)
    episodes = [r for r in records if r["kind"] == "episode"]
    evals = [r for r in records if r["kind"] == "eval"]
    trains = [r for r in records if r["kind"] == "train"]
    columns = [
        "kind",
        "env_step",
        "update",
        "time_s",
        "episode_return",
        "eval_return",
        *args.metric,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)

    panels = 2 if args.metric else 1
    fig, axes = plt.subplots(panels, 1, figsize=(7, 3.2 * panels), squeeze=False)
    ax = axes[0][0]
    xs = [r["env_step"] for r in episodes]
    ys = [r["episode_return"] for r in episodes]
    ax.plot(xs, ys, ".", color="0.7", markersize=3, label="training episode")
    window = 10
    avg = [
        sum(ys[max(0, i - window + 1) : i + 1]) / len(ys[max(0, i - window + 1) : i + 1])
        for i in range(len(ys))
    ]
    ax.plot(xs, avg, color="C0", label=f"training, {window}-episode mean")
    if evals:
        ax.plot(
            [r["env_step"] for r in evals],
            [r["eval_return"] for r in evals],
            "o-",
            color="C3",
            label="evaluation (policy mode)",
        )
    ax.axhline(args.random, color="k", linestyle="--", linewidth=1, label="random policy")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(args.title)
    ax.legend(fontsize=8)
    if args.metric:
        mx = axes[1][0]
        for key in args.metric:
            pts = [(r["env_step"], r[key]) for r in trains if key in r]
            mx.plot([p[0] for p in pts], [p[1] for p in pts], label=key)
        mx.set_xlabel("environment steps")
        mx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
