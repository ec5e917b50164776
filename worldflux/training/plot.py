"""``worldflux plot DIR [DIR ...]``: learning curves of training runs to PNG.

Reads ``DIR/metrics.jsonl`` (written by ``worldflux train``). One run: episode returns (with a
moving average), evaluations and every loss component against environment steps. Several runs:
their returns overlaid (moving average and evaluations, one colour per run) next to their
evaluation returns, so runs of different models, seeds or settings compare on one figure.
``--random R`` draws a random-policy baseline on the return plots.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worldflux.training.errors import TrainingError
from worldflux.training.metrics import JSONL_FILE, read_metrics

__all__ = ["CSV_COLUMNS", "configure", "plot_run", "plot_runs", "run", "write_csv"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldflux plot`` (cheap: matplotlib is imported in ``run``)."""
    parser.add_argument(
        "directories",
        nargs="+",
        metavar="directory",
        help="run directory holding metrics.jsonl (several: overlaid on one figure)",
    )
    parser.add_argument(
        "--out",
        help="PNG path (default DIR/learning_curves.png; several runs: runs_comparison.png)",
    )
    parser.add_argument("--window", type=int, default=10, help="moving-average window (episodes)")
    parser.add_argument("--title", help="figure title (default: model and environment)")
    parser.add_argument(
        "--random", type=float, metavar="R", help="draw a random-policy return R as a baseline"
    )
    parser.add_argument(
        "--metric",
        action="append",
        metavar="KEY",
        help="also draw this train metric over steps, a panel each (e.g. imag/entropy); "
        "repeatable; one run only",
    )
    parser.add_argument(
        "--csv",
        metavar="PATH",
        help="also write the run's records as CSV (kind, env_step, update, time_s, "
        "episode_return, eval_return and the --metric keys); one run only",
    )
    parser.add_argument(
        "--label",
        action="append",
        metavar="NAME",
        help="legend name of each run, in order (default: the directory names)",
    )


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_run(
    directory: str | Path,
    out: str | Path | None = None,
    window: int = 10,
    title: str | None = None,
    baseline: float | None = None,
    metrics: Sequence[str] = (),
) -> Path:
    """Draw ``directory``'s learning curves; returns the PNG path.

    Panels: returns (episodes, their moving average, evaluations); the loss terms of the train
    records (when there are any); the model-evaluation errors (``model_eval`` records); the
    train ``metrics`` asked for.

    Args:
        baseline: an optional horizontal reference line on the return plot (e.g. the
            random-policy return).
        metrics: train-record keys drawn over environment steps in a panel of their own.

    Raises:
        TrainingError: no metrics, or matplotlib missing.
    """
    root = Path(directory)
    records = _records(root)
    plt = _pyplot()
    episodes = [r for r in records if r.get("kind") == "episode"]
    train = [r for r in records if r.get("kind") == "train"]
    if not episodes and not train and not any(r.get("kind") == "eval" for r in records):
        raise TrainingError(f"{root / JSONL_FILE}: holds no episode or train records")
    if title is None:
        run_file = root / "run.json"
        meta: dict[str, Any] = json.loads(run_file.read_text()) if run_file.is_file() else {}
        title = f"{meta.get('model', '?')} on {meta.get('env_id', '?')}"
    model_evals = [r for r in records if r.get("kind") == "model_eval"]
    missing = [key for key in metrics if not any(key in r for r in train)]
    if missing:
        known = sorted({k for r in train for k in r} - {"kind", "env_step", "update", "time_s"})
        raise TrainingError(f"--metric {missing[0]!r}: no train record has it; they have {known}")
    keys = sorted({k for r in train for k in r if "loss" in k})
    if "total_loss" in keys and "loss" in keys:
        keys.remove("loss")  # the same value under its generic name
    panels = 1 + bool(keys) + bool(model_evals) + len(metrics)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), dpi=100, squeeze=False)
    ax_ret, *others = axes[0]
    if keys:
        _loss_panel(others.pop(0), train, keys)
    if model_evals:
        _model_eval_panel(others.pop(0), model_evals)
    for key in metrics:
        _metric_panel(others.pop(0), train, key)
    if episodes:
        steps = [r["env_step"] for r in episodes]
        returns = [float(r["episode_return"]) for r in episodes]
        ax_ret.plot(steps, returns, ".", alpha=0.4, label="episode return")
        ax_ret.plot(steps, _moving_average(returns, window), "-", label=f"mean of last {window}")
    evals = [r for r in records if r.get("kind") == "eval"]
    if evals:
        ax_ret.plot(
            [r["env_step"] for r in evals],
            [float(r["eval_return"]) for r in evals],
            "o-",
            label="evaluation (eval_mode)",
        )
    if baseline is not None:
        ax_ret.axhline(baseline, color="gray", linestyle="--", label="random policy")
    ax_ret.set_xlabel("environment steps")
    ax_ret.set_ylabel("return")
    ax_ret.legend(loc="best", fontsize=8)
    ax_ret.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    target = Path(out) if out is not None else root / "learning_curves.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    plt.close(fig)
    return target


def _loss_panel(ax_loss: Any, train: list[dict[str, Any]], keys: list[str]) -> None:
    """The loss terms of the train records over environment steps (log scale)."""
    values: list[float] = []
    for key in keys:
        pts = [
            (r["env_step"], float(r[key]))
            for r in train
            if key in r and math.isfinite(float(r[key]))
        ]
        if pts:
            ax_loss.plot(*zip(*pts, strict=True), label=key.removeprefix("loss/"))
            values += [v for _, v in pts]
    ax_loss.set_xlabel("environment steps")
    ax_loss.set_ylabel("loss")
    if values:
        if min(values) > 0:
            ax_loss.set_yscale("log")
        else:  # some terms (policy losses) are negative
            tiny = min((abs(v) for v in values if v != 0), default=1.0)
            ax_loss.set_yscale("symlog", linthresh=max(tiny, 1e-8))
        ax_loss.legend(loc="best", fontsize=8)
    ax_loss.grid(alpha=0.3)


def _metric_panel(ax: Any, train: list[dict[str, Any]], key: str) -> None:
    """One train metric (``--metric``) over environment steps."""
    pts = [(r["env_step"], float(r[key])) for r in train if isinstance(r.get(key), int | float)]
    ax.plot(*zip(*pts, strict=True), "-", color="C4")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)


#: the columns of ``--csv`` before the ``--metric`` keys
CSV_COLUMNS = ("kind", "env_step", "update", "time_s", "episode_return", "eval_return")


def write_csv(directory: str | Path, out: str | Path, metrics: Sequence[str] = ()) -> Path:
    """The run's records as CSV (one row a record; :data:`CSV_COLUMNS` then ``metrics``)."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, [*CSV_COLUMNS, *metrics], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(_records(Path(directory)))
    return target


def _model_eval_panel(ax: Any, records: list[dict[str, Any]]) -> None:
    """Observation prediction error at the first and last open-loop horizon over training
    (``model_eval`` records of ``--eval-model-every``), with the copy-last and mean baselines."""
    kind = "obs_mse" if "obs_mse/h1" in records[0] else "probe_obs_mse"
    last = max(int(k.rsplit("/h", 1)[1]) for k in records[0] if k.startswith(f"{kind}/h"))
    steps = [r["env_step"] for r in records]
    for h, style in ((1, "o-"), (last, "s-")):
        for name, line in ((kind, style), ("copy_last_mse", "--"), ("mean_mse", ":")):
            values = [r.get(f"{name}/h{h}") for r in records]
            if all(isinstance(v, int | float) for v in values):
                label = "model" if name == kind else name.removesuffix("_mse").replace("_", "-")
                ax.plot(steps, values, line, label=f"{label}, h={h}")
    ax.set_yscale("log")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("observation MSE (held-out episodes)")
    ax.legend(loc="best", fontsize=7)
    ax.grid(alpha=0.3)


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    try:
        # deferred: optional dependency (extra "train"); "worldflux plot --help" works without it
        import matplotlib

        matplotlib.use("Agg")
        # deferred: pyplot must load after matplotlib.use("Agg") (no display needed)
        import matplotlib.pyplot as plt
    except ImportError:
        raise TrainingError(
            "worldflux plot needs matplotlib: pip install 'worldflux[train]'"
        ) from None
    return plt


def _records(root: Path) -> list[dict[str, Any]]:
    if not (root / JSONL_FILE).is_file():
        raise TrainingError(f"{root / JSONL_FILE}: missing; is {root} a worldflux run directory?")
    return read_metrics(root)


def plot_runs(
    directories: Sequence[str | Path],
    out: str | Path,
    window: int = 10,
    title: str | None = None,
    baseline: float | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Overlay several runs: returns (moving average of ``window`` episodes) and evaluations.

    Raises:
        TrainingError: a directory without metrics, labels not one per run, or no matplotlib.
    """
    roots = [Path(d) for d in directories]
    names = list(labels) if labels else [r.resolve().name for r in roots]
    if len(names) != len(roots):
        raise TrainingError(
            f"--label: expected {len(roots)} names (one per run), found {len(names)}"
        )
    runs = [(name, _records(root)) for name, root in zip(names, roots, strict=True)]
    plt = _pyplot()
    fig, (ax_ret, ax_eval) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for index, (name, records) in enumerate(runs):
        colour = f"C{index % 10}"
        episodes = [r for r in records if r.get("kind") == "episode"]
        if episodes:
            returns = [float(r["episode_return"]) for r in episodes]
            ax_ret.plot(
                [r["env_step"] for r in episodes],
                _moving_average(returns, window),
                "-",
                color=colour,
                label=name,
            )
        evals = [r for r in records if r.get("kind") == "eval"]
        if evals:
            ax_eval.plot(
                [r["env_step"] for r in evals],
                [float(r["eval_return"]) for r in evals],
                "o-",
                color=colour,
                label=name,
            )
    for axis, what in (
        (ax_ret, f"training return (mean of last {window})"),
        (ax_eval, "evaluation return"),
    ):
        if baseline is not None:
            axis.axhline(baseline, color="gray", linestyle="--", label="random policy")
        axis.set_xlabel("environment steps")
        axis.set_ylabel(what)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="best", fontsize=8)
    fig.suptitle(title or f"{len(runs)} runs")
    fig.tight_layout()
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    plt.close(fig)
    return target


def run(args: argparse.Namespace) -> int:
    single = len(args.directories) == 1 and not args.label
    if not single and (args.metric or args.csv):
        raise TrainingError("--metric and --csv draw or write one run: give one directory")
    if single:
        path = plot_run(
            args.directories[0],
            args.out,
            window=args.window,
            title=args.title,
            baseline=args.random,
            metrics=args.metric or (),
        )
        if args.csv:
            print(f"wrote {write_csv(args.directories[0], args.csv, args.metric or ())}")
    else:
        path = plot_runs(
            args.directories,
            args.out or "runs_comparison.png",
            window=args.window,
            title=args.title,
            baseline=args.random,
            labels=args.label,
        )
    print(f"wrote {path}")
    return 0
