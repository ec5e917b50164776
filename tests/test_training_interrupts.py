"""Runs people leave alone: Ctrl-C writes a resumable checkpoint, ``--resume RUN_DIR`` needs
nothing else, and extending a run keeps every replay row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from _checkpoint_helpers import unit_dir
from safetensors.torch import load_file

from worldflux.training.replay import ReplayBuffer

COMMON = [
    *("--env", "Pendulum-v1", "--max-episode-steps", "30", "--seed-steps", "40"),
    *("--batch-size", "8", "--checkpoint-every", "100000", "--checkpoint-minutes", "0"),
    *("--log-every", "10", "--threads", "1", "--no-progress", "--seed", "3"),
]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "worldflux.cli", *args]


def _episodes(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r["env_step"] for r in rows if r.get("kind") == "episode"]


def test_ctrl_c_checkpoints_and_resume_continues_bitwise(tmp_path: Path) -> None:
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train = ["train", "tdmpc2:ci", "--steps", "90", *COMMON]
    subprocess.run(_cli(*train, "--out", str(straight)), check=True, timeout=600)
    child = subprocess.Popen(
        _cli(*train, "--out", str(stopped)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not _episodes(stopped) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)  # during the second episode (31..60)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 130, out + err
    assert f"continue with: worldflux train --resume {stopped}" in err, err
    assert "Traceback" not in err
    assert _episodes(stopped)[-1] < 90, "the run was not interrupted"
    resumed = subprocess.run(
        _cli("train", "--resume", str(stopped), "--no-progress"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed at step " in resumed.stdout
    a = load_file(str(unit_dir(straight / "checkpoint") / "model.safetensors"))
    b = load_file(str(unit_dir(stopped / "checkpoint") / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _episodes(stopped) == _episodes(straight)


def test_a_second_signal_is_not_needed_and_sigterm_behaves_alike(tmp_path: Path) -> None:
    out = tmp_path / "run"
    child = subprocess.Popen(
        _cli("train", "tdmpc2:ci", "--steps", "600", *COMMON, "--out", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not _episodes(out) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGTERM)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 130 and "SIGTERM: stopped at env step" in err, err
    assert (out / "checkpoint" / "CHECKPOINT").is_file()


def test_growing_the_replay_keeps_rows_and_sampling() -> None:
    small, big = ReplayBuffer(40, (2,), 1, seed=3), ReplayBuffer(100, (2,), 1, seed=3)
    for buffer in (small, big):
        for episode in range(3):
            buffer.begin_episode([episode, 0])
            for t in range(9):
                buffer.add([0.1 * t], float(t), False, t == 8, [episode, t + 1])
    grown = small.grown(100)
    assert grown.size == 30 and grown.capacity == 100
    for _ in range(3):
        x, y = grown.sample(4, 5), big.sample(4, 5)
        assert all(torch.equal(x[k], y[k]) for k in x)
