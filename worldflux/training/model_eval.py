"""``--eval-model-every``: the world model's predictions measured during training.

At the first evaluation the run records ``eval_model_episodes`` random-policy episodes of its own
environment into ``RUN/model_eval_data`` (a worldflux episode dataset, seeded apart from the
training and evaluation environments, kept across resumes): held-out data the model never trains
on. Every ``eval_model_every`` env steps (at the next episode end) :func:`evaluate_predictions`
runs on windows of those episodes and a ``model_eval`` record goes into the metrics: per
open-loop horizon ``h = 1..H`` the observation error next to the copy-last and mean baselines
(or the probe error of latent-only models), reward, continue and latent errors, flattened as
``obs_mse/h1`` ... ``obs_mse/hH``. The global random streams and the model's train mode are left
as they were, so a run with model evaluation resumes bitwise like one without.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from worldflux.core.model import WorldModel
from worldflux.datasets.record import record_dataset
from worldflux.datasets.source import Dataset, open_dataset
from worldflux.evaluation.metrics import evaluate_predictions
from worldflux.training.run_data import RunConfig
from worldflux.training.seeding import isolated_rng

__all__ = ["DATA_DIR", "ModelEvaluator"]

DATA_DIR = "model_eval_data"
#: seed offset of the held-out recording (training env: seed, evaluation env: seed + 500)
SEED_OFFSET = 7000
SERIES = (
    "obs_mse",
    "copy_last_mse",
    "mean_mse",
    "probe_obs_mse",
    "reward_mse",
    "continue_mse",
    "latent_mse",
)


class ModelEvaluator:
    """Prediction errors of the run's model on its held-out episodes (see the module doc)."""

    def __init__(self, config: RunConfig, out: Path, horizon: int = 5, windows: int = 32) -> None:
        self.config, self.out = config, out
        self.horizon, self.windows = horizon, windows
        self._dataset: Dataset | None = None

    def dataset(self) -> Dataset:
        """The held-out episodes (recorded on first use)."""
        if self._dataset is None:
            path = self.out / DATA_DIR
            if not path.exists():
                c = self.config
                with isolated_rng():
                    record_dataset(
                        c.env_id,
                        path,
                        c.eval_model_episodes,
                        seed=c.seed + SEED_OFFSET,
                        obs_mode=c.obs_mode,
                        image_size=c.image_size,
                        max_episode_steps=c.max_episode_steps,
                    )
            self._dataset = open_dataset(str(path))
        return self._dataset

    def __call__(self, model: WorldModel) -> dict[str, float]:
        """``{"obs_mse/h1": ..., "copy_last_mse/h1": ..., ...}`` for this model now."""
        data = self.dataset()
        episodes = list(range(len(data)))
        training = model.training
        try:
            with isolated_rng():
                result = evaluate_predictions(
                    model,
                    data,
                    eval_episodes=episodes,
                    train_episodes=episodes,
                    horizon=self.horizon,
                    windows=self.windows,
                    seed=self.config.seed,
                )
        finally:
            model.train(training)
        fields = asdict(result)
        flat: dict[str, float] = {}
        for name in SERIES:
            values = fields.get(name)
            if values:
                flat.update({f"{name}/h{h + 1}": float(v) for h, v in enumerate(values)})
        return flat
