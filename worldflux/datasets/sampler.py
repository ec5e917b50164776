"""Training windows from an episode dataset, streamed, and its check against a model's contract.

``WindowSampler`` draws ``[B, T]`` windows in the replay buffer's batch convention (row ``t``:
``obs_t``, the action taken after it, the reward and the ``terminated`` / ``truncated`` flags of
``t -> t+1``, ``is_first``; the final observation's row has a zero action and reward). Episodes
are read on demand and kept in a small LRU cache, so memory is bounded by the cache, not by the
dataset.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldflux.core.spec import ModelIOContract
from worldflux.core.types import Batch
from worldflux.datasets.format import DatasetError, Episode
from worldflux.datasets.source import Dataset

__all__ = ["WindowSampler", "check_contract", "episode_rows"]


def check_contract(dataset: Dataset, contract: ModelIOContract, model: str) -> None:
    """Raise one DatasetError when the dataset cannot feed ``model`` (before any training).

    Compares the declared observation keys, shapes and dtypes and the action space with the
    model's bound contract, then reads every episode (each checked against the metadata).
    """
    where = f"dataset {dataset.root}"
    obs = dataset.meta.obs_specs()
    want = dict(contract.observation)
    if list(want) == ["obs"] and list(obs) == [""]:
        pairs = [("obs", obs[""], want["obs"])]
    else:
        if sorted(obs) != sorted(want):
            raise DatasetError(
                f"{where}: observation keys {sorted(obs) or ['(one array)']} do not match "
                f"{model}'s contract {sorted(want)}"
            )
        pairs = [(key, obs[key], want[key]) for key in sorted(want)]
    for key, (shape, dtype), spec in pairs:
        if tuple(spec.shape) != tuple(shape):
            raise DatasetError(
                f"{where}: observation {key!r}: {model} expects shape {list(spec.shape)}, "
                f"the dataset has {list(shape)} (pass --set obs_shape or record another dataset)"
            )
        floating = dtype.startswith("float") or dtype == "uint8"
        if spec.dtype not in ("float", dtype) and not (spec.dtype.startswith("float") and floating):
            raise DatasetError(
                f"{where}: observation {key!r}: {model} expects {spec.dtype}, found {dtype}"
            )
    action = dataset.meta.action
    if action["type"] != contract.action.kind or action["dim"] != contract.action.dim:
        raise DatasetError(
            f"{where}: action: {model} expects {contract.action.kind} actions of dim "
            f"{contract.action.dim}, the dataset has {action['type']} of dim {action['dim']}"
        )
    for index in range(len(dataset)):
        dataset.episode(index)  # shapes, dtypes and lengths of every episode, before training


def episode_rows(episode: Episode) -> dict[str, Any]:
    """The episode as ``L + 1`` replay rows (numpy arrays; obs may be a dict)."""
    length = episode.length
    actions = np.zeros((length + 1, *episode.actions.shape[1:]), dtype=episode.actions.dtype)
    actions[:length] = episode.actions
    pad = np.zeros(1, dtype=bool)
    is_first = np.zeros(length + 1, dtype=bool)
    is_first[0] = True
    return {
        "obs": episode.observations,
        "actions": actions,
        "rewards": np.concatenate([episode.rewards, np.zeros(1, dtype=np.float32)]),
        "terminated": np.concatenate([episode.terminations, pad]),
        "truncated": np.concatenate([episode.truncations, pad]),
        "is_first": is_first,
    }


def _window(rows: dict[str, Any], start: int, length: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rows.items():
        if isinstance(value, dict):
            out[key] = {k: v[start : start + length] for k, v in value.items()}
        else:
            out[key] = value[start : start + length]
    return out


def _stack(windows: Sequence[dict[str, Any]], normalize_images: bool) -> Batch:
    def tensor(arrays: list[np.ndarray]) -> Tensor:
        value = torch.from_numpy(np.stack(arrays))
        if normalize_images and value.dtype == torch.uint8:
            return value.to(torch.float32).div_(255.0)
        return value

    batch: dict[str, Any] = {}
    for key, first in windows[0].items():
        if isinstance(first, dict):
            batch[key] = {k: tensor([w[key][k] for w in windows]) for k in first}
        else:
            batch[key] = tensor([w[key] for w in windows])
    return Batch(batch)


class WindowSampler:
    """Uniform ``[B, T]`` windows over the transitions of ``episodes`` (a list of indices).

    Args:
        dataset: the dataset; episodes: which ones to draw from (a train or validation split).
        cache_episodes: episodes kept in memory at once (the stream's memory bound).
        seed: the sampler's own generator.
    """

    def __init__(
        self,
        dataset: Dataset,
        episodes: Sequence[int],
        *,
        cache_episodes: int = 64,
        seed: int = 0,
    ) -> None:
        if not episodes:
            raise DatasetError(f"dataset {dataset.root}: no episodes to sample from")
        self.dataset = dataset
        self.episodes = list(episodes)
        self.cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.cache_episodes = max(1, cache_episodes)
        self.rng = np.random.default_rng(seed)
        self.lengths: dict[int, int] = {}

    def _rows(self, index: int) -> dict[str, Any]:
        if index in self.cache:
            self.cache.move_to_end(index)
            return self.cache[index]
        rows = episode_rows(self.dataset.episode(index))
        self.lengths[index] = len(rows["rewards"])
        self.cache[index] = rows
        if len(self.cache) > self.cache_episodes:
            self.cache.popitem(last=False)
        return rows

    def sample(
        self,
        batch_size: int,
        seq_len: int,
        normalize_images: bool = True,
        *,
        remedy: str = "lower --seq-len",
    ) -> Batch:
        """A Batch of ``batch_size`` windows of ``seq_len`` rows, each inside one episode.

        Raises:
            DatasetError: no episode has ``seq_len`` rows (the message ends with ``remedy``).
        """
        windows: list[dict[str, Any]] = []
        tries = 0
        while len(windows) < batch_size:
            tries += 1
            if tries > 50 * batch_size:
                raise DatasetError(
                    f"dataset {self.dataset.root}: no episode among {len(self.episodes)} holds "
                    f"{seq_len} steps; {remedy}"
                )
            index = self.episodes[int(self.rng.integers(len(self.episodes)))]
            rows = self._rows(index)
            room = len(rows["rewards"]) - seq_len + 1
            if room <= 0:
                continue
            windows.append(_window(rows, int(self.rng.integers(room)), seq_len))
        return _stack(windows, normalize_images)
