"""Kill a saving process between every two filesystem operations of the save; the checkpoint
path must then load the old or the new checkpoint (never nothing, never a mix), the next load
must remove the killed save's temporaries, and the next save must succeed.

The save runs in a forked child whose :data:`worldflux.core.checkpoint_store.step_hook` sends
itself SIGKILL at operation ``k``, for every ``k`` of the save (counted by a dry run first).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_harness import record, requires_fork

import worldflux
import worldflux.core.checkpoint_store as store
from worldflux.core.exceptions import CheckpointError
from worldflux.core.model import WorldModel
from worldflux.training.checkpoint import load_training_checkpoint, save_training_checkpoint
from worldflux.training.replay import ReplayBuffer
from worldflux.training.toy import registered_toy_model
from worldflux.training.trainer import Trainer

pytestmark = requires_fork


def _labels(save: Callable[[Path], object], path: Path) -> list[str]:
    """The filesystem operations of one save to ``path`` (a dry run on a copy)."""
    labels: list[str] = []
    store.step_hook = labels.append
    try:
        save(path)
    finally:
        store.step_hook = None
    return labels


def _save_killed_at(save: Callable[[Path], object], path: Path, k: int) -> int:
    """Fork a child that saves to ``path`` and SIGKILLs itself after operation ``k``."""
    pid = os.fork()
    if pid == 0:
        try:
            torch.set_num_threads(1)
            seen = [0]

            def hook(label: str) -> None:
                if seen[0] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
                seen[0] += 1

            store.step_hook = hook
            save(path)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


def _run_trials(
    name: str,
    base: Path,
    tmp_path: Path,
    save_new: Callable[[Path], object],
    which: Callable[[Path], str],
) -> dict[str, int]:
    """Kill the save of the new checkpoint over ``base`` at every step; return the tally."""
    labels = _labels(save_new, tmp_path / "dry")
    if base.exists():
        shutil.copytree(base, tmp_path / "dry2")
        labels = _labels(save_new, tmp_path / "dry2")
    publish = labels.index("replace pointer")
    tally = {"old": 0, "new": 0, "none": 0}
    for k in range(len(labels)):
        path = tmp_path / f"k{k}"
        if base.exists():
            shutil.copytree(base, path)
        status = _save_killed_at(save_new, path, k)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, labels[k])
        found = which(path)
        expected = "new" if k >= publish else ("old" if base.exists() else "none")
        assert found == expected, f"killed after {labels[k]!r} (step {k}): found {found}"
        tally[found] += 1
        if path.exists():  # the load removed the killed save's leftovers
            names = sorted(p.name for p in path.iterdir())
            assert len(names) == (2 if found != "none" else 0), (k, labels[k], names)
        save_new(path)  # and the next save works
        assert which(path) == "new" and len(list(path.iterdir())) == 2
    record(f"save-kill: {name}", {"steps": len(labels), "trials": len(labels), **tally})
    return tally


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(seed: int) -> WorldModel:
    torch.manual_seed(seed)
    return worldflux.create_world_model("tdmpc2:ci", obs_shape=(3,), action_dim=1)


@pytest.mark.parametrize("replace", [True, False], ids=["over an old checkpoint", "fresh path"])
def test_a_model_save_killed_at_every_step_leaves_the_old_or_the_new_checkpoint(
    replace: bool, tmp_path: Path, one_thread: None
) -> None:
    old, new = _model(0), _model(1)
    marker = next(iter(old.state_dict()))
    base = tmp_path / "base"
    if replace:
        old.save_pretrained(base)

    def which(path: Path) -> str:
        try:
            loaded = WorldModel.from_pretrained(path).state_dict()[marker]
        except CheckpointError as error:
            assert "CHECKPOINT: missing" in str(error) or "no such checkpoint" in str(error)
            return "none"
        for label, model in (("old", old), ("new", new)):
            if torch.equal(loaded, model.state_dict()[marker]):
                return label
        raise AssertionError("loaded a checkpoint that is neither the old nor the new one")

    tally = _run_trials(
        "model " + ("replace" if replace else "fresh"), base, tmp_path, new.save_pretrained, which
    )
    assert tally["new"] >= 1 and (tally["old"] >= 5 if replace else tally["none"] >= 5)


def test_a_training_save_killed_at_every_step_leaves_the_old_or_the_new_checkpoint(
    tmp_path: Path, one_thread: None
) -> None:
    with registered_toy_model(two_stage=True):
        torch.manual_seed(0)
        model = worldflux.create_world_model("training_toy:ci", obs_shape=(3,), action_dim=1)
        trainer = Trainer(model)
        replay = ReplayBuffer(32, (3,), 1)
        replay.begin_episode(np.zeros(3, dtype=np.float32))
        for i in range(8):
            replay.add(np.zeros(1, dtype=np.float32), 1.0, False, False, np.full(3, float(i)))
        trainer.train_step(replay.sample(4, 4))
        base = save_training_checkpoint(tmp_path / "base", trainer, replay, {"tag": "old"})
        trainer.train_step(replay.sample(4, 4))

        def save_new(path: Path) -> None:
            save_training_checkpoint(path, trainer, replay, {"tag": "new"})

        def which(path: Path) -> str:
            fresh = Trainer(
                worldflux.create_world_model("training_toy:ci", obs_shape=(3,), action_dim=1)
            )
            loaded = load_training_checkpoint(path, fresh, restore_rng=False)
            assert loaded.step == {"old": 1, "new": 2}[loaded.extra["tag"]]
            assert loaded.replay is not None and loaded.replay.total == replay.total
            return str(loaded.extra["tag"])

        tally = _run_trials("training replace", base, tmp_path, save_new, which)
    assert tally["old"] >= 10 and tally["new"] >= 1


def test_stale_temporaries_of_dead_processes_are_removed_by_the_next_save_and_load(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from _checkpoint_helpers import version_dir

    toy_model = _model(0)
    saved = toy_model.save_pretrained(tmp_path / "ckpt")

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = [
        f".tmp-{dead_pid}-0000abcd",
        f"v000009-{dead_pid}-0000abcd",
        f".tmp-{dead_pid}-0000beef.pointer",
    ]
    live = f".tmp-{os.getppid()}-0000abcd"  # a save in progress in a running process: kept
    for name in [*stale[:2], live]:
        (saved / name).mkdir()
        (saved / name / "model.safetensors").write_bytes(b"\0" * 1024)
    (saved / stale[2]).write_text("v000009\n")
    toy_model.save_pretrained(saved)
    names = {p.name for p in saved.iterdir()}
    assert names == {"CHECKPOINT", version_dir(saved).name, live}
    (saved / stale[0]).mkdir()
    WorldModel.from_pretrained(saved)
    assert {p.name for p in saved.iterdir()} == {"CHECKPOINT", version_dir(saved).name, live}


_SAVER = """
import sys, torch, worldflux
torch.set_num_threads(1)
model = worldflux.create_world_model("tdmpc2:5m", obs_shape=(3,), action_dim=1)
for i in range(1, 10_000):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float(i))
    model.save_pretrained(sys.argv[1])
    print(i, flush=True)
"""


@pytest.mark.slow
def test_a_saving_process_killed_at_random_times_leaves_a_loadable_checkpoint(
    tmp_path: Path,
) -> None:
    """No hook: a real interpreter saving a 31 MB model in a loop, SIGKILLed at random times
    (inside writes, fsyncs, renames, the deletion of the old version)."""
    import random
    import subprocess
    import sys
    import time

    rng = random.Random(0)
    path, survived = tmp_path / "ckpt", 0
    for trial in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        first = int(proc.stdout.readline())  # one complete save of this process
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read().split()
        proc.wait()
        done = int(rest[-1]) if rest else first
        loaded = WorldModel.from_pretrained(path).requires_grad_(False)
        value = float(next(loaded.parameters()).flatten()[0])
        assert value in (float(done), float(done + 1)), (trial, done, value)
        assert all(float(p.flatten()[0]) == value for p in loaded.parameters())
        assert len(list(path.iterdir())) == 2  # pointer + one version: leftovers removed
        survived += 1
    record("save-kill: random times (tdmpc2:5m, real process)", {"trials": 8, "survived": survived})
