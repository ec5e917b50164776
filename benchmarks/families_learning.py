"""Learning figures of every model family: open-loop prediction error against baselines.

``python -m benchmarks.families_learning [--families F ...] [--tasks vector image] [--updates N]
[--family-updates F=N ...] [--set F:KEY=VALUE ...] [--json OUT] [--markdown OUT] [--plot PNG]``
(``--from-json OUT`` redraws the table and plot of an earlier run). Results and the command that
produced them: docs/families.md, "Learning figures".

For each task, a random-policy dataset of ``worldflux/Reach-v0`` (a point moving toward a goal)
is recorded once and cached (``--data-dir``): ``vector`` observes ``[x, y, gx, gy]``, ``image``
renders ``[3, 16, 16]`` frames (16 is the smallest size every image family accepts: vjepa2's
``ci`` patch is 16 pixels). Each family's ``ci`` preset is trained offline on the training
episodes for ``--updates`` updates (exactly ``worldflux train FAMILY:ci --dataset DATA --steps N
--threads 1``), then evaluated on the dataset's held-out validation episodes (exactly
``worldflux eval RUN --dataset DATA --horizon 5``): the observation error at open-loop steps 1
and 5 next to copying the last observed frame and predicting the training episodes' mean
observation. Families without an observation decoder (jepa, vjepa2, tdmpc2) are read through the
evaluation's ridge probe (``probe_obs_mse``); their MLP probe's error (``mlp_probe_obs_mse``,
``worldflux eval --mlp-probe``) is kept in each row's ``mlp_probe``. A family whose
encoder cannot take a task's observations is reported as n/a with the reason the model factory
gives.

Everything runs in this process on ``--threads`` torch threads (default 1); wall time is measured
per family and task (training + evaluation). Nothing is tuned on the held-out episodes: they are
only evaluated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.families_settings import (
    FAMILY_OVERRIDES,
    FAMILY_UPDATES,
    family_overrides,
    family_updates,
    merged_overrides,
    parse_family_sets,
)

__all__ = [
    "FAMILIES",
    "FAMILY_OVERRIDES",
    "FAMILY_UPDATES",
    "REFERENCE",
    "TASKS",
    "Task",
    "family_overrides",
    "family_updates",
    "format_markdown",
    "main",
    "plot_rows",
    "prepare_dataset",
    "run_family",
]

#: The non-REFERENCE families (docs/families.md) and the two REFERENCE ones.
FAMILIES = ("jepa", "vjepa2", "token", "diffusion", "dit", "ssm", "renderer3d", "physics", "gan")
REFERENCE = ("dreamerv3", "tdmpc2")
HORIZON = 5
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Task:
    """A dataset recipe: ``worldflux dataset record --env ENV --obs OBS --image-size S``."""

    name: str
    env: str
    obs: str
    image_size: int
    episodes: int
    seed: int = 0

    def directory(self, root: Path) -> Path:
        size = f"-{self.image_size}px" if self.obs == "image" else ""
        env = self.env.replace("/", "-")
        return root / f"{env}-{self.obs}{size}-{self.episodes}ep-s{self.seed}"

    def record_command(self, out: Path) -> str:
        image = f" --obs image --image-size {self.image_size}" if self.obs == "image" else ""
        return (
            f"worldflux dataset record --env {self.env} --policy random --episodes "
            f"{self.episodes} --seed {self.seed}{image} --out {out}"
        )


TASKS: dict[str, Task] = {
    "vector": Task("vector", "worldflux/Reach-v0", "vector", 64, 100),
    "image": Task("image", "worldflux/Reach-v0", "image", 16, 100),
}


def prepare_dataset(task: Task, root: Path) -> Path:
    """The task's dataset under ``root``, recorded on first use (a complete one is reused)."""
    from worldflux.datasets.record import record_dataset

    path = task.directory(root)
    if (path / "dataset.json").is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    record_dataset(
        task.env,
        path,
        task.episodes,
        seed=task.seed,
        obs_mode=task.obs,
        image_size=task.image_size,
    )
    return path


def _paper(family: str) -> str:
    """The ``reference.paper`` of the family's spec (specs/models/FAMILY.yaml), else "-"."""
    path = ROOT / "specs" / "models" / f"{family}.yaml"
    if not path.is_file():
        return "-"
    reference = yaml.safe_load(path.read_text(encoding="utf-8")).get("reference") or {}
    return str(reference.get("paper", "-"))


def _unsupported(family: str, dataset: Path, overrides: dict[str, Any]) -> str | None:
    """Why ``family:ci`` cannot be built for the dataset's observations, or None."""
    from worldflux.core.exceptions import WorldFluxError
    from worldflux.datasets.offline import build_for_dataset
    from worldflux.datasets.source import open_dataset

    try:
        build_for_dataset(f"{family}:ci", open_dataset(str(dataset)), **overrides)
    except WorldFluxError as error:
        return str(getattr(error, "message", error)).splitlines()[0]
    return None


def _at(values: Sequence[float | None] | None, h: int) -> float | None:
    """The finite value at horizon ``h`` (1-based), else None."""
    found = values[h - 1] if values and len(values) >= h else None
    if found is None:
        return None
    value = float(found)
    return value if math.isfinite(value) else None


def run_family(
    family: str,
    task: Task,
    dataset: Path,
    out: Path,
    *,
    updates: int,
    windows: int = 256,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``family:ci`` on ``dataset`` and evaluate it; one result row (see the module doc)."""
    from worldflux.datasets.offline import OfflineConfig, train_offline
    from worldflux.datasets.sampler import check_contract
    from worldflux.datasets.source import open_dataset
    from worldflux.evaluation.command import load_model
    from worldflux.evaluation.metrics import evaluate_predictions
    from worldflux.evaluation.report import write_report

    overrides = family_overrides(family, task.name) if overrides is None else dict(overrides)
    row: dict[str, Any] = {
        "family": family,
        "model": f"{family}:ci",
        "paper": _paper(family),
        "task": task.name,
        "env": task.env,
        "obs": task.obs,
        "overrides": overrides,
        "updates": updates,
    }
    reason = _unsupported(family, dataset, overrides)
    if reason is not None:
        return {**row, "status": "n/a", "reason": reason}
    start = time.perf_counter()
    run_dir = out / task.name / family
    summary = train_offline(
        OfflineConfig(
            model=f"{family}:ci",
            dataset=str(dataset),
            updates=updates,
            out=str(run_dir),
            seed=seed,
            model_overrides=overrides,
        )
    )
    trained = time.perf_counter()
    data = open_dataset(str(dataset))
    model = load_model(run_dir)
    fit, held_out = data.split()
    check_contract(data, model.bound_contract(), model.model_type)
    result = evaluate_predictions(
        model,
        data,
        eval_episodes=held_out,
        train_episodes=fit,
        horizon=HORIZON,
        windows=windows,
        seed=seed,
        mlp_probe=True,
    )
    meta = {"model": model.model_type, "run": str(run_dir), "source": str(dataset)}
    write_report(result, run_dir / "eval", {**meta, "episodes": len(held_out)})
    end = time.perf_counter()
    probe = result.obs_mse is None
    error = result.probe_obs_mse if probe else result.obs_mse
    row.update(
        status="ok",
        error_kind="probe_obs_mse" if probe else "obs_mse",
        train_seconds=round(trained - start, 1),
        wall_seconds=round(end - start, 1),
        first_loss=summary.first_loss,
        last_loss=summary.last_loss,
        val_loss=summary.val_losses[-1][1] if summary.val_losses else None,
        held_out_episodes=len(held_out),
        windows=windows,
    )
    for h in (1, HORIZON):
        row[f"h{h}"] = {
            "model": _at(error, h),
            "copy_last": _at(result.copy_last_mse, h),
            "mean": _at(result.mean_mse, h),
        }
        if probe:
            row[f"h{h}"]["mlp_probe"] = _at(result.mlp_probe_obs_mse, h)
    five = row[f"h{HORIZON}"]
    row["beats_mean_h5"] = (
        None if five["model"] is None or five["mean"] is None else five["model"] < five["mean"]
    )
    return row


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _probe_note(row: dict[str, Any], cell: dict[str, Any]) -> str:
    """A ridge-probe row's note: " (probe; MLP X)", or " (probe)" for runs made before the MLP
    probe; "" for a decoded row."""
    if row["error_kind"] != "probe_obs_mse":
        return ""
    return f" (probe; MLP {_num(cell['mlp_probe'])})" if "mlp_probe" in cell else " (probe)"


def format_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The learning-figures table: one line per family and task ("(settings)": the row's
    ``ci`` preset ran with config overrides, listed in the row's ``overrides``)."""
    lines = [
        "| family | paper | task | h=1 model / copy-last / mean | h=5 model / copy-last / mean "
        "| < mean at h=5 | updates | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        settings = " (settings)" if row.get("overrides") else ""
        head = f"| `{row['family']}`{settings} | {row['paper']} | {row['task']} "
        if row["status"] != "ok":
            lines.append(f"{head}| n/a: {row['reason']} | | | | |")
            continue
        cells = []
        for h in (1, HORIZON):
            v = row[f"h{h}"]
            cells.append(
                f"{_num(v['model'])}{_probe_note(row, v)} / {_num(v['copy_last'])} / "
                f"{_num(v['mean'])}"
            )
        verdict = {True: "yes", False: "**no**", None: "-"}[row["beats_mean_h5"]]
        lines.append(
            f"{head}| {cells[0]} | {cells[1]} | {verdict} | {row['updates']} "
            f"| {row['wall_seconds']:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def plot_rows(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Bars: the model's error over the mean baseline's at h=1 and h=5 (log scale; 1 = the mean),
    one group per family and task, with copy-last's ratio as a marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "ok" and r["h1"]["mean"] and r["h5"]["mean"]]
    figure, axis = plt.subplots(figsize=(max(6.0, 0.55 * len(done) + 2), 4))
    for offset, h, color in ((-0.2, 1, "tab:blue"), (0.2, HORIZON, "tab:orange")):
        xs = [i + offset for i in range(len(done))]
        ratio = [(r[f"h{h}"]["model"] or math.nan) / r[f"h{h}"]["mean"] for r in done]
        copy = [(r[f"h{h}"]["copy_last"] or math.nan) / r[f"h{h}"]["mean"] for r in done]
        axis.bar(xs, ratio, width=0.38, color=color, label=f"model, h={h}")
        axis.scatter(xs, copy, marker="_", s=120, color="black", zorder=3)
    axis.scatter([], [], marker="_", color="black", label="copy-last")
    axis.axhline(1.0, color="gray", linestyle="--", label="mean baseline")
    axis.set_yscale("log")
    axis.set_ylabel("error / mean baseline's error")
    axis.set_xticks(range(len(done)))
    axis.set_xticklabels([f"{r['family']}\n{r['task']}" for r in done], fontsize=7)
    axis.legend(fontsize=7)
    axis.set_title("open-loop error on held-out Reach episodes (below 1: beats the mean)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.families_learning",
        description="Per-family open-loop prediction error vs copy-last and mean baselines.",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        default=[*FAMILIES, "tdmpc2"],
        help="default: the nine non-REFERENCE families and tdmpc2 (dreamerv3 costs 0.2-0.4 s an "
        "update here: add it by name)",
    )
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["vector", "image"])
    parser.add_argument(
        "--updates",
        type=int,
        default=500,
        help="training updates per run (a (family, task) in FAMILY_UPDATES has its own)",
    )
    parser.add_argument(
        "--family-updates",
        nargs="*",
        default=[],
        metavar="FAMILY=N",
        help="a different number of updates for one family (every task; replaces FAMILY_UPDATES)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FAMILY:KEY=VALUE",
        help="a config override for one family (every task; added to FAMILY_OVERRIDES)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="ignore FAMILY_OVERRIDES and FAMILY_UPDATES: every family's ci preset as declared, "
        "--updates updates",
    )
    parser.add_argument("--windows", type=int, default=256, help="held-out windows evaluated")
    parser.add_argument("--seed", type=int, default=0, help="training and window-sampling seed")
    parser.add_argument(
        "--data-seed",
        type=int,
        default=0,
        help="seed of the recorded datasets (diagnose fixes on another seed than the report's)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default="runs/families-learning/data")
    parser.add_argument("--out", default="runs/families-learning", help="run directories")
    parser.add_argument("--json", help="write the rows as JSON here")
    parser.add_argument("--markdown", help="write the table here")
    parser.add_argument("--plot", help="draw the error ratios to this PNG (needs matplotlib)")
    parser.add_argument(
        "--from-json", help="no runs: rebuild the table (and --plot) from a --json output"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(given)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())["rows"]
        print(format_markdown(saved))
        if args.plot:
            plot_rows(saved, Path(args.plot))
        return 0
    from worldflux.runtime import tune_cpu_allocator
    from worldflux.training.reach import register

    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    register()  # worldflux/Reach-v0
    sets = parse_family_sets(args.set)
    per_family = {k: int(v) for k, _, v in (s.partition("=") for s in args.family_updates)}
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in args.tasks:
        task = replace(TASKS[name], seed=args.data_seed)
        dataset = prepare_dataset(task, Path(args.data_dir))
        print(f"# {name}: {task.record_command(dataset)}", flush=True)
        for family in args.families:
            defaults = {} if args.plain else family_overrides(family, name)
            overrides = merged_overrides(defaults, sets.get(family, {}))
            updates = args.updates if args.plain else family_updates(family, name, args.updates)
            row = run_family(
                family,
                task,
                dataset,
                Path(args.out),
                updates=per_family.get(family, updates),
                windows=args.windows,
                seed=args.seed,
                overrides=overrides,
            )
            rows.append(row)
            print(format_markdown([row]).splitlines()[-1], flush=True)
    table = format_markdown(rows)
    document = {
        "format": "worldflux-families-learning",
        "version": 1,
        "command": " ".join(["python -m benchmarks.families_learning", *given]),
        "threads": args.threads,
        "horizon": HORIZON,
        "tasks": {n: asdict(replace(TASKS[n], seed=args.data_seed)) for n in args.tasks},
        "total_seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table)
    if args.plot:
        plot_rows(rows, Path(args.plot))
    print(table)
    print(f"total {document['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
