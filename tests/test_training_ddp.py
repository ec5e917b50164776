"""Two processes on loopback (torchrun, gloo): gradients are averaged, replicas stay identical."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _checkpoint_helpers import version_dir
from safetensors.torch import load_file

import worldflux
from worldflux.core.types import Batch
from worldflux.training.toy import registered_toy_model
from worldflux.training.trainer import Trainer

WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file

    import worldflux
    from worldflux.core.types import Batch
    from worldflux.training.distributed import init_from_environment
    from worldflux.training.toy import registered_toy_model
    from worldflux.training.trainer import Trainer

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    ctx = init_from_environment(timeout_s=60)
    assert ctx.world_size == 2, ctx


    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        return Batch(
            obs=torch.randn(4, 4, 3, generator=g),
            actions=torch.rand(4, 4, 2, generator=g) * 2 - 1,
            rewards=torch.randn(4, 4, generator=g),
            terminated=torch.rand(4, 4, generator=g) < 0.2,
            truncated=torch.zeros(4, 4, dtype=torch.bool),
            is_first=torch.zeros(4, 4, dtype=torch.bool),
        )


    for variant in ("single", "two_stage"):
        with registered_toy_model(two_stage=variant == "two_stage"):
            torch.manual_seed(100 + ctx.rank)  # different replicas: the Trainer broadcasts rank 0's
            model = worldflux.create_world_model("training_toy:ci", obs_shape=(3,), action_dim=2)
            trainer = Trainer(model)
            trainer.train_step(batch(ctx.rank))  # each rank sees its own data
            state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(out / f"{variant}-rank{ctx.rank}.safetensors"))

    # the online loop: each rank collects its own episodes, updates stay in lockstep
    from worldflux.training.loop import RunConfig, train

    with registered_toy_model():
        summary = train(
            RunConfig(
                model="training_toy:ci",
                env_id="Pendulum-v1",
                steps=30,
                out=str(out / "run"),
                max_episode_steps=15,
                seed_steps=15,
                pretrain_updates=2,
                batch_size=4,
                log_every=15,
                progress=False,
            )
        )
        print(f"rank {ctx.rank} returns {summary.returns}")
        # CartPole: each rank's episodes end at different steps, so "is there a 20-step window
        # yet" differs between ranks; the loop must decide it collectively or deadlock
        cartpole = train(
            RunConfig(
                model="training_toy:ci",
                env_id="CartPole-v1",
                steps=80,
                out=str(out / "cartpole"),
                seed=1,
                seed_steps=5,
                pretrain_updates=1,
                batch_size=4,
                seq_len=20,
                log_every=20,
                progress=False,
            )
        )
        print(f"rank {ctx.rank} cartpole lengths {cartpole.episodes} updates {cartpole.updates}")
    dist.barrier()
    dist.destroy_process_group()
    """
)


def batch(seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(4, 4, 3, generator=g),
        actions=torch.rand(4, 4, 2, generator=g) * 2 - 1,
        rewards=torch.randn(4, 4, generator=g),
        terminated=torch.rand(4, 4, generator=g) < 0.2,
        truncated=torch.zeros(4, 4, dtype=torch.bool),
        is_first=torch.zeros(4, 4, dtype=torch.bool),
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reference(two_stage: bool) -> dict[str, torch.Tensor]:
    """One process, one step on both ranks' data at once: the mean loss over 2B samples has
    the mean of the two per-rank gradients as its gradient."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with registered_toy_model(two_stage=two_stage):
            torch.manual_seed(100)  # rank 0's initialisation
            model = worldflux.create_world_model("training_toy:ci", obs_shape=(3,), action_dim=2)
            b0, b1 = batch(0), batch(1)
            both = Batch({k: torch.cat([b0[k], b1[k]]) for k in b0})
            Trainer(model).train_step(both)
            return {k: v.detach() for k, v in model.state_dict().items()}
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_two_processes_average_gradients_and_stay_identical(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=2",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}",
        "--max-restarts=0",
        str(script),
        str(tmp_path),
    ]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("torchrun did not finish within 240 s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for variant, two_stage in (("single", False), ("two_stage", True)):
        rank0 = load_file(str(tmp_path / f"{variant}-rank0.safetensors"))
        rank1 = load_file(str(tmp_path / f"{variant}-rank1.safetensors"))
        assert rank0.keys() == rank1.keys()
        for key in rank0:
            assert torch.equal(rank0[key], rank1[key]), (variant, key)
        ref = reference(two_stage)
        for key, value in ref.items():
            assert torch.allclose(rank0[key], value, atol=1e-6, rtol=1e-5), (variant, key)
        # the averaged step differs from a step on rank 0's data alone
        torch.manual_seed(100)
        with registered_toy_model(two_stage=two_stage):
            alone = worldflux.create_world_model("training_toy:ci", obs_shape=(3,), action_dim=2)
            Trainer(alone).train_step(batch(0))
            diff = max(
                float((alone.state_dict()[k] - rank0[k]).abs().max())
                for k in rank0
                if rank0[k].is_floating_point()
            )
        assert diff > 1e-5, variant
    # the loop: per-rank checkpoints with identical weights, different experience, one log
    run = tmp_path / "run"
    ck0, ck1 = (version_dir(run / f"checkpoint-rank{r}") for r in (0, 1))
    w0 = load_file(str(ck0 / "model" / "model.safetensors"))
    w1 = load_file(str(ck1 / "model" / "model.safetensors"))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    r0 = (ck0 / "replay.safetensors").read_bytes()
    r1 = (ck1 / "replay.safetensors").read_bytes()
    assert r0 != r1  # each rank collected its own episodes
    assert (run / "metrics.jsonl").is_file() and not (run / "checkpoint").exists()
    # rank 0 logs alone, with every rank's episode returns aggregated into its train records
    returns = {
        int(line.split()[1]): ast.literal_eval(line.split(" returns ", 1)[1])
        for line in proc.stdout.splitlines()
        if " returns [" in line
    }
    train = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "train"]  # fmt: skip
    assert [r["episodes_all_ranks"] for r in train] == [2, 2]
    for i, record in enumerate(train):
        expected = (returns[0][i] + returns[1][i]) / 2
        assert record["return_all_ranks"] == pytest.approx(expected)
    updates = {line.split()[-1] for line in proc.stdout.splitlines() if "cartpole" in line}
    assert len(updates) == 1, proc.stdout  # unequal episodes, equal (collective) update counts


PEER_DIES = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    import torch

    from worldflux.core.exceptions import WorldFluxError
    from worldflux.training.distributed import init_from_environment
    from worldflux.training.loop import RunConfig, train
    from worldflux.training.toy import registered_toy_model
    from worldflux.training import trainer as trainer_module

    torch.set_num_threads(1)
    ctx = init_from_environment(timeout_s=30)
    if ctx.rank == 1:  # this rank dies after its third update
        step = trainer_module.Trainer.train_step

        def dying(self, batch):
            if self.step == 3:
                os._exit(0)
            return step(self, batch)

        trainer_module.Trainer.train_step = dying
    with registered_toy_model():
        try:
            train(RunConfig(model="training_toy:ci", env_id="Pendulum-v1", steps=60,
                            out=sys.argv[1], max_episode_steps=15, seed_steps=15,
                            pretrain_updates=1, batch_size=4, progress=False))
        except WorldFluxError as error:
            print(f"rank {ctx.rank} error: {error}", flush=True)
            os._exit(3)
    """
)


@pytest.mark.slow
def test_a_dead_peer_is_an_error_naming_the_rank_and_the_step(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(PEER_DIES)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2"]
    cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--max-restarts=0"]
    cmd += [str(script), str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert "rank 0 error: [WF700] rank 0 of 2: a collective failed at env step" in out, out[-3000:]
