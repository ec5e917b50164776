"""`worldflux plot`: one run's curves, several runs overlaid, a random-policy baseline."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from worldflux.cli import main
from worldflux.training.errors import TrainingError
from worldflux.training.plot import plot_runs


def _run(directory: Path, slope: float) -> Path:
    directory.mkdir(parents=True)
    records = []
    for i in range(1, 21):
        records.append({"kind": "episode", "env_step": 10 * i, "episode_return": slope * i})
        train = {"kind": "train", "env_step": 10 * i, "loss": 1.0 / i, "entropy": 2.0 - i / 20}
        records.append(train)
        if i % 5 == 0:
            records.append({"kind": "eval", "env_step": 10 * i, "eval_return": slope * i + 1})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def test_several_runs_are_overlaid_with_a_baseline(tmp_path: Path) -> None:
    import matplotlib.image

    runs = [_run(tmp_path / "a", 1.0), _run(tmp_path / "b", 2.0)]
    out = tmp_path / "compare.png"
    code = main(["plot", *map(str, runs), "--random", "5", "--out", str(out), "--label", "x"])
    assert code == 2  # one label for two runs: a clear usage error, nothing drawn
    assert not out.exists()
    assert main(["plot", *map(str, runs), "--random", "5", "--out", str(out)]) == 0
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 100 and image.shape[1] > 100


@contextmanager
def _saved_axes() -> Iterator[list[Any]]:
    """The axes of every figure saved inside the block, in order."""
    from matplotlib import pyplot as plt

    drawn: list[Any] = []
    original = plt.Figure.savefig

    def spy(self: plt.Figure, *args: object, **kwargs: object) -> None:
        drawn.extend(self.axes)
        original(self, *args, **kwargs)

    plt.Figure.savefig = spy  # type: ignore[method-assign]
    try:
        yield drawn
    finally:
        plt.Figure.savefig = original  # type: ignore[method-assign]


def test_the_overlay_draws_each_run_and_the_baseline(tmp_path: Path) -> None:
    runs = [_run(tmp_path / "a", 1.0), _run(tmp_path / "b", 2.0)]
    with _saved_axes() as drawn:
        plot_runs(runs, tmp_path / "c.png", baseline=5.0, labels=["slow", "fast"])
    returns, evals = drawn
    assert [line.get_label() for line in returns.get_lines()] == ["slow", "fast", "random policy"]
    fast = returns.get_lines()[1]
    assert list(fast.get_ydata())[-1] == pytest.approx(sum(2.0 * i for i in range(11, 21)) / 10)
    assert [list(line.get_ydata()) for line in evals.get_lines()[:2]] == [
        [6.0, 11.0, 16.0, 21.0],
        [11.0, 21.0, 31.0, 41.0],
    ]


def test_a_directory_without_metrics_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"metrics\.jsonl: missing"):
        plot_runs([_run(tmp_path / "a", 1.0), tmp_path], tmp_path / "x.png")


def test_one_run_with_a_metric_panel_and_its_records_as_csv(tmp_path: Path) -> None:
    run = _run(tmp_path / "a", 1.0)
    with _saved_axes() as drawn:
        args = ["plot", str(run), "--out", str(tmp_path / "a.png"), "--metric", "entropy"]
        assert main([*args, "--csv", str(tmp_path / "a.csv")]) == 0
    returns, losses, entropy = drawn  # returns, the loss terms, then one panel per --metric
    assert returns.get_ylabel() == "return" and losses.get_ylabel() == "loss"
    assert entropy.get_ylabel() == "entropy"
    assert list(entropy.get_lines()[0].get_ydata()) == [2.0 - i / 20 for i in range(1, 21)]
    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    assert len(rows) == 44 and list(rows[0])[-1] == "entropy"
    assert [float(r["entropy"]) for r in rows if r["kind"] == "train"][:2] == [1.95, 1.9]


def test_an_unknown_metric_names_the_ones_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path / "a", 1.0)
    assert main(["plot", str(run), "--metric", "nope", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "'nope': no train record has it; they have ['entropy', 'loss']" in err
    assert not (tmp_path / "x.png").exists()
