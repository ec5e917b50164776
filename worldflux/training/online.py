"""The online training loop as an object, :class:`OnlineRun` (the loop of ``worldflux train``).

:func:`worldflux.training.loop.train` builds an :class:`OnlineRun` and calls :meth:`~OnlineRun.run`.
Building it seeds the process and makes the environment, the model, the Trainer, the actors and
the replay buffer (or restores them from the checkpoint); running it repeats
:meth:`~OnlineRun.step` until ``config.steps``, then checkpoints, evaluates once more and closes
everything. Its state between steps is one :class:`~worldflux.training.run_data.LoopState`
(``self.state``), saved in every checkpoint. Every random stream is consumed in a fixed order,
so a run resumed from an episode-end checkpoint continues bitwise exactly on CPU. A run with
several environments (``num_envs > 1`` or a ``vector_mode``) is a
:class:`~worldflux.training.online_vector.VectorRun`, which overrides the collection hooks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldflux.core.exceptions import CheckpointError
from worldflux.training.actors import RandomActor, declared_behaviour, give_goal, make_actor
from worldflux.training.checkpoint import (
    load_training_checkpoint,
    read_training_extra,
    save_training_checkpoint,
)
from worldflux.training.distributed import DistributedContext
from worldflux.training.envs import GymEnv, Obs
from worldflux.training.errors import TrainingError
from worldflux.training.interrupts import StopRequest, TrainingInterrupted
from worldflux.training.model_eval import ModelEvaluator
from worldflux.training.replay import ReplayBuffer
from worldflux.training.resume_state import check_resume_state
from worldflux.training.run_data import (
    LoopState,
    RunConfig,
    RunSettings,
    RunSummary,
    SizedEnv,
    build_model,
    check_resume_config,
    checkpoint_dir,
    make_env,
)
from worldflux.training.run_outputs import RunOutputs
from worldflux.training.seeding import isolated_rng, seed_everything
from worldflux.training.trainer import Trainer, TrainerConfig

__all__ = ["OnlineRun", "isolated_rng"]


class OnlineRun(RunOutputs):
    """One online run of one process: collect, replay, update, log, checkpoint, evaluate.

    Building it does everything before the first step, in this order (the random streams
    depend on it): seed with ``config.seed`` (identical model initialisation on every rank),
    make the environment, the model and the Trainer, reseed with the rank's seed, make the
    actors, then restore the checkpoint (``resume``) or make an empty replay buffer, write
    ``run.json`` and open the metrics. :meth:`run` does the rest.
    """

    env: GymEnv  # the training environment (a VectorRun has ``venv`` instead)

    def __init__(self, config: RunConfig, dist: DistributedContext, resume: bool) -> None:
        config.check_vector()
        self.config, self.dist = config, dist
        self.out = Path(config.out)
        self.ckpt = checkpoint_dir(self.out, dist)
        if resume:
            check_resume_config(config, self.ckpt)
        self.rank_seed = config.seed + 1000 * dist.rank
        seed_everything(config.seed)
        sized = self._make_env()
        self.spec = sized.spec
        self.model = build_model(config, sized)
        contract = self.model.bound_contract()
        # uint8 frames reach the model as [0, 1] floats unless its contract takes uint8
        self.normalize = not any(s.dtype == "uint8" for s in contract.observation.values())
        trainer_config = TrainerConfig(grad_clip=config.grad_clip, compile=config.compile)
        self.trainer = Trainer(self.model, trainer_config, dist=dist)
        self.model_evaluator = ModelEvaluator(config, self.out)
        seed_everything(self.rank_seed)
        spec = self.spec
        self.action_low, self.action_high = contract.action.low, contract.action.high
        self._set_action_range()
        self.random_actor = RandomActor(
            spec.action_dim,
            spec.action_type,
            self.action_low,
            self.action_high,
            seed=self.rank_seed,
        )
        self.actor = make_actor(self.model, normalize_images=self.normalize)
        self.settings = RunSettings.derive(config, self.model)
        self.state = LoopState.start(config)
        self._eval_env: GymEnv | None = None
        self._init_collection()
        self.replay = self._restore() if resume else self._new_replay()
        self._open_outputs(resume)
        # an objective that resets its carry at is_first (DreamerV3) trains on windows across
        # episode boundaries, as the official replay does: otherwise episodes shorter than
        # seq_len (early failures) would never be trained on
        self.cross = bool(getattr(self.trainer.objective, "crosses_episodes", False))
        self.sampleable = False  # some window can be sampled (then it stays so)
        self.stop = StopRequest()
        self.last_save = time.perf_counter()
        self.obs: Obs | None = None  # the latest observation of the training env

    # -- building (the collection hooks a VectorRun overrides) -----------------------------

    def _make_env(self) -> SizedEnv:
        """The training environment (seed ``rank_seed``)."""
        self.env = make_env(self.config, self.rank_seed)
        return self.env

    def _set_action_range(self) -> None:
        self.env.action_low, self.env.action_high = self.action_low, self.action_high

    def _init_collection(self) -> None:
        """What collection needs besides the actors (nothing for one environment)."""

    def _collection_state(self) -> dict[str, Any]:
        """The checkpoint's collection state: environment and random-actor RNGs."""
        return {"env": self.env.rng_state(), "random_actor": self.random_actor.state()}

    def _restore_collection(self, extra: dict[str, Any], replay: ReplayBuffer) -> ReplayBuffer:
        """Restore the environment and random-actor RNGs; an open episode is dropped (a new
        one starts)."""
        self.env.set_rng_state(extra["env"])
        self.random_actor.set_state(extra["random_actor"])
        if self.state.episode_open:
            replay.episode_open = False  # the open episode cannot be continued: start afresh
            self.state.episode_open = False
        return replay

    def _close_envs(self) -> None:
        self.env.close()

    def eval_env(self) -> GymEnv:
        """The evaluation environment (seed ``rank_seed + 500``), made on first use."""
        if self._eval_env is None:
            self._eval_env = make_env(self.config, self.rank_seed + 500)
            self._eval_env.action_low, self._eval_env.action_high = (
                self.action_low,
                self.action_high,
            )
        return self._eval_env

    def _new_replay(self) -> ReplayBuffer:
        """An empty buffer of ``replay_capacity`` rows, sampling with the rank's seed."""
        spec = self.spec
        return ReplayBuffer(
            self.settings.replay_capacity,
            spec.obs_shape,
            spec.action_dim,
            spec.action_type,
            obs_dtype=torch.uint8 if spec.obs_dtype == "uint8" else torch.float32,
            seed=self.rank_seed,
            obs_layout=spec.obs_layout,
        )

    def _restore(self) -> ReplayBuffer:
        """Restore the trainer, the global RNGs, the loop state, the settings and the
        environments' and random actor's RNGs from the checkpoint; return its replay buffer.
        An open episode is dropped (a new one starts); a default capacity grows to the new
        ``steps``' default, so that a longer run keeps every row."""
        check_resume_state(read_training_extra(self.ckpt), self.ckpt)  # before any restoring
        loaded = load_training_checkpoint(self.ckpt, self.trainer)
        if loaded.replay is None:
            raise CheckpointError(f"{self.ckpt}: holds no replay buffer; cannot resume collection")
        replay, extra = loaded.replay, loaded.extra
        capacity = self.settings.replay_capacity  # this run's (the default for its `steps`)
        if self.spec.obs_layout is not None:
            replay.set_obs_layout(self.spec.obs_layout)
        self.state = LoopState.from_dict(extra["loop"])
        self.settings = RunSettings.from_dict(extra["derived"])
        if extra.get("eval_env") is not None:
            self.eval_env().set_rng_state(extra["eval_env"])
        replay = self._restore_collection(extra, replay)
        if self.config.replay_capacity is None and capacity > replay.capacity:
            replay = replay.grown(capacity)
            self.settings.replay_capacity = capacity
        return replay

    # -- running --------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Step to ``config.steps``, checkpoint, evaluate once more, close; the summary.

        The first SIGINT/SIGTERM finishes the episode, checkpoints and raises
        :class:`TrainingInterrupted`; a second Ctrl-C raises ``KeyboardInterrupt`` at once.
        """
        self.stop.install()  # Ctrl-C / SIGTERM: finish this episode, checkpoint, exit (resumable)
        try:
            while self.state.env_step < self.config.steps:
                self.step()
            self.finish()
        except KeyboardInterrupt:
            # a second Ctrl-C: keep the last complete checkpoint; resume redoes what came after it
            raise
        finally:
            self.close()
        self.dist.barrier()
        if self.dist.enabled and not self.dist.all_equal(
            float(sum(float(p.detach().sum()) for p in self.model.parameters()))
        ):
            raise TrainingError("replicas diverged: parameters differ across processes")
        return self.summary()

    def step(self) -> None:
        """One environment step: act, store the transition, update; at an episode end record
        it, evaluate and checkpoint when due (or stop when asked); log."""
        state = self.state
        if not state.episode_open:
            self._begin_episode()
        assert self.obs is not None
        action = self.act(self.obs, state.episode_length == 0)
        self.obs, reward, terminated, truncated = self.env.step(action)
        self.replay.add(action, reward, terminated, truncated, self.obs)
        state.env_step += 1
        state.episode_return += reward
        state.episode_length += 1
        self.window_steps += 1
        self._update_after_step()
        if terminated or truncated:
            self._end_episode()
        self._report(state.env_step - 1)

    def _begin_episode(self) -> None:
        """Reset the environment and the actor; the first observation opens a replay episode."""
        self.obs = self.env.reset()
        self.replay.begin_episode(self.obs)
        if self.actor is not None:
            self.actor.reset()
            give_goal(self.actor, self.env.goal)
        self.state.episode_open = True
        self.state.episode_return, self.state.episode_length = 0.0, 0

    def act(self, obs: Obs, is_first: bool, eval_mode: bool = False) -> np.ndarray:
        """The random actor's action during the seed phase (or for a model that cannot act),
        else the model's."""
        actor = self.actor
        if actor is None or not getattr(actor, "ready", True) or self.seeding():  # no goal yet
            return self.random_actor.act(obs, is_first, eval_mode=eval_mode)
        return actor.act(obs, is_first, eval_mode=eval_mode)

    def seeding(self) -> bool:
        """Still in the random-action seed phase."""
        return self.state.env_step < self.settings.seed_steps

    def _update_after_step(self) -> None:
        """``pretrain_updates`` at the seed phase's last step, then ``updates_per_step`` per
        step (fractions carried over in ``update_credit``)."""
        state, seed_steps = self.state, self.settings.seed_steps
        if state.env_step == seed_steps:
            self.update(self.settings.pretrain_updates)
        elif state.env_step > seed_steps:
            state.update_credit += self.config.updates_per_step
            whole = int(state.update_credit)
            state.update_credit -= whole
            self.update(whole)

    def _end_episode(self) -> None:
        """Record the episode; evaluate and checkpoint when due; stop when asked."""
        self.state.episode_open = False
        self._record_episode({})
        self._episode_end_duties()

    def _record_episode(self, fields: dict[str, Any]) -> None:
        """Count the episode that just ended (``state.episode_return`` / ``_length``) and log
        its ``episode`` record (with ``fields``)."""
        state = self.state
        state.episode += 1
        state.returns.append(state.episode_return)
        self.window_returns.append(state.episode_return)
        record = {"episode_return": state.episode_return, "episode_length": state.episode_length}
        self.record("episode", {**record, **fields})

    def _episode_end_duties(self) -> None:
        """After episode ends: evaluate and checkpoint when due; stop when asked."""
        state, config = self.state, self.config
        if config.eval_every and state.env_step >= state.next_eval:
            self.evaluate()
            while state.next_eval <= state.env_step:
                state.next_eval += config.eval_every
        every, last = config.eval_model_every, state.last_model_eval_step or 0
        if every and self.dist.is_main and state.env_step // every > last // every:
            self.record("model_eval", self.model_evaluator(self.model))
            state.last_model_eval_step = state.env_step
        if self.checkpoint_due() or self.stop.requested:
            self.save()
            self.last_save = time.perf_counter()
            while state.next_checkpoint <= state.env_step:
                state.next_checkpoint += config.checkpoint_every
        if self.stop.requested:
            raise TrainingInterrupted(state.env_step, self.out, self.stop.signal_name)

    def update(self, n: int) -> None:
        """``n`` Trainer updates; none until some episode holds ``seq_len`` steps (short
        episodes), or, for objectives with ``crosses_episodes``, until the buffer holds
        ``seq_len`` rows. Under several processes a failed collective is a TrainingError
        naming this rank."""
        seq_len = self.settings.seq_len
        try:
            if n > 0 and not self.sampleable:
                # collective: ranks whose episodes differ in length must still agree
                windows = self.replay.num_windows(seq_len, self.cross)
                self.sampleable = self.dist.all_true(windows > 0)
                if not self.sampleable:
                    return
            for _ in range(n):
                batch = self.replay.sample(
                    self.settings.batch_size,
                    seq_len,
                    normalize_images=self.normalize,
                    cross_episodes=self.cross,
                )
                self.last_metrics = self.trainer.train_step(batch).metrics
                self.window_updates += 1
        except RuntimeError as error:
            if not self.dist.enabled:
                raise
            dist, message = self.dist, " ".join(str(error).split())[:300]
            raise TrainingError(  # a collective timed out or another rank died
                f"rank {dist.rank} of {dist.world_size}: a collective failed at env step "
                f"{self.state.env_step}, update {self.trainer.step}: {message}"
            ) from error

    def evaluate(self) -> None:
        """``eval_episodes`` episodes with ``eval_mode=True`` on the evaluation environment
        (the random actor before the model can act); logs an ``eval`` record with their mean
        return."""
        env = self.eval_env()
        returns = []
        for _ in range(self.config.eval_episodes):
            obs, done, total, first = env.reset(), False, 0.0, True
            if self.actor is not None:
                self.actor.reset()
                give_goal(self.actor, env.goal)
            while not done:
                obs, reward, terminated, truncated = env.step(self.act(obs, first, eval_mode=True))
                total, done, first = total + reward, terminated or truncated, False
            returns.append(total)
        mean = sum(returns) / len(returns)
        self.state.eval_returns.append(mean)
        self.state.last_eval_step = self.state.env_step
        self.record("eval", {"eval_return": mean, "eval_returns": returns})

    def checkpoint_due(self) -> bool:
        """``checkpoint_every`` env steps or ``checkpoint_minutes`` have passed."""
        if self.state.env_step >= self.state.next_checkpoint:
            return True
        minutes = self.config.checkpoint_minutes
        return bool(minutes) and time.perf_counter() - self.last_save >= 60.0 * minutes

    def save(self) -> None:
        """Checkpoint the trainer, the replay buffer and the loop's ``extra`` state."""
        extra = {
            "eval_env": None if self._eval_env is None else self._eval_env.rng_state(),
            "loop": self.state.to_dict(),
            **self._collection_state(),
            "derived": self.settings.to_dict(),
            "run": self.config.to_dict(),
        }
        save_training_checkpoint(self.ckpt, self.trainer, self.replay, extra)

    def finish(self) -> None:
        """The final checkpoint, then (unless an evaluation just ran) a final evaluation."""
        self.save()
        just_evaluated = self.state.last_eval_step == self.state.env_step
        if self.config.final_eval and self.config.eval_episodes > 0 and not just_evaluated:
            # every run ends with evidence of how the agent acts; after the checkpoint and with
            # the random streams restored, so a resumed run continues exactly as if it had not
            with isolated_rng():
                self.evaluate()
        if self.trainer.compile_report is not None:  # --compile: compile time apart from updates
            self.record("compile", self.trainer.compile_info() or {})

    def close(self) -> None:
        """Restore the signal handlers; close the progress bar, the metrics, the envs."""
        self.stop.restore()
        self.progress.close()
        if self.logger is not None:
            self.logger.close()
        self._close_envs()
        if self._eval_env is not None:
            self._eval_env.close()

    def summary(self) -> RunSummary:
        """What :func:`~worldflux.training.loop.train` returns."""
        return RunSummary(
            env_steps=self.state.env_step,
            updates=self.trainer.step,
            episodes=self.state.episode,
            returns=list(self.state.returns),
            eval_returns=list(self.state.eval_returns),
            out=self.out,
            model=self.model,
            actor=self.actor.name if self.actor is not None else "random",
            behaviour=declared_behaviour(self.model),
            compile=self.trainer.compile_summary(),
        )
