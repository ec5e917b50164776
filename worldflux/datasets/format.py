"""The worldflux episode dataset: a directory of ``.npz`` episodes and a ``dataset.json``.

Layout (format ``worldflux-episodes``, version 1; the field names are Minari's)::

    PATH/dataset.json         metadata (below)
    PATH/episodes/000000.npz  one episode of L transitions:
        observations   [L + 1, *obs_shape]   (dict observations: observations.<key> each)
        actions        [L, A] float32        (discrete: [L] int64)
        rewards        [L] float32
        terminations   [L] bool              (True on the last step of a terminated episode)
        truncations    [L] bool              (True on the last step of a truncated episode)

``dataset.json``: ``{"format": "worldflux-episodes", "version": 1, "observation": {"shape",
"dtype"} or {"keys": {key: {"shape", "dtype"}}}, "action": {"type", "dim"}, "episodes": N,
"steps": S, "env": ..., "policy": ..., "seed": ...}``.

Episodes are read one at a time (``allow_pickle=False``; every array checked against the
metadata before use), so a dataset larger than memory is streamed, never loaded whole.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldflux.core.exceptions import ConfigurationError

__all__ = [
    "FORMAT",
    "VERSION",
    "DatasetError",
    "DatasetMeta",
    "Episode",
    "EpisodeDataset",
    "check_episode",
    "episode_layout",
    "read_metadata",
    "split_indices",
    "write_episode",
    "write_meta",
]

FORMAT = "worldflux-episodes"
VERSION = 1
#: Largest dataset.json accepted (bytes) and largest episode (transitions).
MAX_META_BYTES = 1 << 20
MAX_EPISODE_STEPS = 10_000_000
_DTYPES = {"float32", "float64", "float16", "uint8", "int64", "int32", "bool"}


class DatasetError(ConfigurationError):
    """A dataset that cannot be used: names the file, the episode and the key."""


@dataclass(frozen=True)
class DatasetMeta:
    """What ``dataset.json`` declares.

    Attributes:
        observation: ``{"shape": [...], "dtype": ...}``, or ``{"keys": {key: {shape, dtype}}}``.
        action: ``{"type": "continuous" | "discrete", "dim": A}``.
        episodes, steps: counts. env, policy, seed: provenance (free-form).
    """

    observation: dict[str, Any]
    action: dict[str, Any]
    episodes: int
    steps: int
    env: str = ""
    policy: str = ""
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def obs_keys(self) -> list[str] | None:
        keys = self.observation.get("keys")
        return sorted(keys) if isinstance(keys, dict) else None

    def obs_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Key (``""`` for a single array) -> (per-step shape, dtype)."""
        if self.obs_keys is None:
            return {"": (tuple(self.observation["shape"]), str(self.observation["dtype"]))}
        keys = self.observation["keys"]
        return {k: (tuple(keys[k]["shape"]), str(keys[k]["dtype"])) for k in self.obs_keys}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "observation": self.observation,
            "action": self.action,
            "episodes": self.episodes,
            "steps": self.steps,
            "env": self.env,
            "policy": self.policy,
            "seed": self.seed,
            **self.extra,
        }


@dataclass
class Episode:
    """One episode's arrays (see the module docstring for shapes)."""

    observations: np.ndarray | dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray

    @property
    def length(self) -> int:
        """Transitions L (the episode holds L + 1 observations)."""
        return int(self.rewards.shape[0])


def _shape_ok(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(d, int) and 0 < d < 2**31 for d in value)


def _check_tensor_meta(where: str, spec: Any) -> None:
    if not isinstance(spec, dict) or not _shape_ok(spec.get("shape")):
        raise DatasetError(f"{where}: expected {{shape: [positive ints], dtype}}, found {spec!r}")
    if spec.get("dtype") not in _DTYPES:
        raise DatasetError(f"{where}.dtype: expected one of {sorted(_DTYPES)}, found {spec!r}")


def read_metadata(path: Path, missing: str) -> Any:
    """The JSON document at ``path``, read only when at most ``MAX_META_BYTES``.

    Raises:
        DatasetError: ``path`` missing (``missing`` says what the directory then is not),
            too large, or not UTF-8 JSON.
    """
    try:
        size = path.stat().st_size
    except OSError:
        raise DatasetError(f"{path}: missing ({missing})") from None
    if size > MAX_META_BYTES:
        raise DatasetError(f"{path}: {size:,} bytes; at most {MAX_META_BYTES:,}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise DatasetError(f"{path}: not valid JSON ({type(error).__name__}: {error})") from None


def _parse_meta(path: Path) -> DatasetMeta:
    data = read_metadata(path, "not a worldflux episode dataset")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"{path}: format: expected {FORMAT!r}, found {found!r}")
    if data.get("version") != VERSION:
        raise DatasetError(f"{path}: version: expected {VERSION}, found {data.get('version')!r}")
    obs = data.get("observation")
    if isinstance(obs, dict) and isinstance(obs.get("keys"), dict):
        for key, spec in obs["keys"].items():
            _check_tensor_meta(f"{path}: observation.keys.{key}", spec)
    else:
        _check_tensor_meta(f"{path}: observation", obs)
    action = data.get("action")
    if (
        not isinstance(action, dict)
        or action.get("type") not in ("continuous", "discrete")
        or not isinstance(action.get("dim"), int)
        or not 0 < action["dim"] < 2**31
    ):
        raise DatasetError(
            f"{path}: action: expected {{type: continuous | discrete, dim: int}}, found {action!r}"
        )
    for key in ("episodes", "steps"):
        if not isinstance(data.get(key), int) or data[key] < 0:
            raise DatasetError(f"{path}: {key}: expected a count, found {data.get(key)!r}")
    known = {"format", "version", "observation", "action", "episodes", "steps", "env", "policy"}
    assert isinstance(obs, dict)
    return DatasetMeta(
        observation=obs,
        action=action,
        episodes=data["episodes"],
        steps=data["steps"],
        env=str(data.get("env", "")),
        policy=str(data.get("policy", "")),
        seed=data.get("seed") if isinstance(data.get("seed"), int) else None,
        extra={k: v for k, v in data.items() if k not in known | {"seed"}},
    )


def split_indices(n: int, validation: float = 0.1) -> tuple[list[int], list[int]]:
    """Deterministic train / validation indices of ``n`` episodes (every k-th episode
    validates; at least one of each when there are two or more episodes)."""
    if n < 2 or validation <= 0:
        return list(range(n)), []
    k = max(2, round(1 / min(validation, 0.5)))
    val = [i for i in range(n) if i % k == k - 1] or [n - 1]
    return [i for i in range(n) if i not in set(val)], val


def episode_name(index: int) -> str:
    return f"{index:06d}.npz"


def write_episode(root: Path, index: int, episode: Episode) -> Path:
    """Write ``episodes/<index>.npz`` atomically (temporary file, then rename)."""
    directory = root / "episodes"
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "actions": episode.actions,
        "rewards": episode.rewards.astype(np.float32),
        "terminations": episode.terminations.astype(bool),
        "truncations": episode.truncations.astype(bool),
    }
    if isinstance(episode.observations, dict):
        arrays.update({f"observations.{k}": v for k, v in episode.observations.items()})
    else:
        arrays["observations"] = episode.observations
    target = directory / episode_name(index)
    temp = directory / f".{target.name}.{os.getpid()}.tmp"
    with open(temp, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
    os.replace(temp, target)
    return target


def write_meta(root: Path, meta: DatasetMeta) -> None:
    """Write ``dataset.json`` atomically (last, so a dataset is complete once it has one)."""
    temp = root / f".dataset.json.{os.getpid()}.tmp"
    temp.write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(temp, root / "dataset.json")


class EpisodeDataset:
    """A worldflux episode dataset on disk, read lazily and validated as it is read.

    Raises:
        DatasetError: a missing or malformed ``dataset.json`` (on construction) or episode (when
            read), naming the file, the key and what was expected.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset directory")
        self.meta = _parse_meta(self.root / "dataset.json")
        files = sorted((self.root / "episodes").glob("*.npz"))
        if len(files) != self.meta.episodes:
            raise DatasetError(
                f"{self.root}: dataset.json declares {self.meta.episodes} episodes, "
                f"episodes/ holds {len(files)}"
            )
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def split(self, validation: float = 0.1) -> tuple[list[int], list[int]]:
        """Deterministic train / validation episode indices (:func:`split_indices`)."""
        return split_indices(len(self), validation)

    def episode(self, index: int) -> Episode:
        """Read and check episode ``index`` against the metadata."""
        file = self.files[index]
        try:
            with np.load(file, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
            raise DatasetError(f"{file}: not a readable .npz episode ({error})") from None
        return self._checked(file, arrays)

    def __iter__(self) -> Iterator[Episode]:
        for index in range(len(self)):
            yield self.episode(index)

    def _checked(self, file: Path, arrays: Mapping[str, np.ndarray]) -> Episode:
        return check_episode(self.meta, str(file), arrays)


def episode_layout(meta: DatasetMeta, length: int) -> list[tuple[str, tuple[int, ...], str]]:
    """Every array of an episode of ``length`` transitions: (name, shape, dtype)."""
    action = meta.action
    want_action = (length,) if action["type"] == "discrete" else (length, action["dim"])
    layout: list[tuple[str, tuple[int, ...], str]] = [
        ("actions", want_action, "int64" if action["type"] == "discrete" else "float32"),
        ("terminations", (length,), "bool"),
        ("truncations", (length,), "bool"),
    ]
    for key, (shape, dtype) in meta.obs_specs().items():
        name = f"observations.{key}" if key else "observations"
        layout.append((name, (length + 1, *shape), dtype))
    return layout


def check_episode(meta: DatasetMeta, where: str, arrays: Mapping[str, np.ndarray]) -> Episode:
    """The episode in ``arrays`` (names as in the module docstring), checked against ``meta``.

    Raises:
        DatasetError: naming ``where``, the array, and the expected and found shape or dtype.
    """

    def need(name: str) -> np.ndarray:
        if name not in arrays:
            raise DatasetError(f"{where}: missing array {name!r} (has {sorted(arrays)})")
        return arrays[name]

    rewards = need("rewards")
    if rewards.ndim != 1 or not 0 < rewards.shape[0] <= MAX_EPISODE_STEPS:
        raise DatasetError(f"{where}: rewards: expected [L] with L >= 1, found {rewards.shape}")
    for name, shape, dtype in episode_layout(meta, rewards.shape[0]):
        value = need(name)
        if tuple(value.shape) != shape:
            raise DatasetError(
                f"{where}: {name}: expected shape {list(shape)}, found {list(value.shape)}"
            )
        if str(value.dtype) != dtype:
            raise DatasetError(f"{where}: {name}: expected dtype {dtype}, found {value.dtype}")
    if meta.obs_keys is None:
        observations: np.ndarray | dict[str, np.ndarray] = arrays["observations"]
    else:
        observations = {k: arrays[f"observations.{k}"] for k in meta.obs_keys}
    return Episode(
        observations=observations,
        actions=arrays["actions"],
        rewards=rewards.astype(np.float32, copy=False),
        terminations=arrays["terminations"],
        truncations=arrays["truncations"],
    )
