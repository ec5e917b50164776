"""Minari datasets (the Farama standard for offline RL), read from local disk without Minari.

A Minari dataset in HDF5 storage is a directory ``<id>/data/`` holding ``metadata.json``
(``observation_space`` and ``action_space`` serialised as JSON strings, ``total_episodes``,
``env_spec``, ...) and ``main_data.hdf5`` with one group per episode::

    episode_<n>/observations   [L + 1, *obs_shape]     (a Dict space: a sub-group per key)
    episode_<n>/actions        [L, A] (Box) or [L] (Discrete)
    episode_<n>/rewards        [L]
    episode_<n>/terminations   [L] bool
    episode_<n>/truncations    [L] bool

:class:`MinariDataset` serves it as worldflux episodes (the same interface as
:class:`~worldflux.datasets.format.EpisodeDataset`): ``Box`` actions are rescaled from the
space's ``[low, high]`` to the models' ``[-1, 1]``, rewards become float32, observations keep
their dtype. Every array's shape and dtype are checked against the metadata before it is read
(sizes are bounded), so a malformed or hostile file is one :class:`DatasetError` naming the
episode and the key. Where to find it: a path to the dataset directory (``.../<id>`` or its
``data/``), to ``main_data.hdf5``, or ``minari:<id>`` (under ``$MINARI_DATASETS_PATH``, else
``~/.minari/datasets``). Needs ``h5py`` (``pip install "worldflux[datasets]"``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from worldflux.datasets.format import (
    MAX_EPISODE_STEPS,
    DatasetError,
    DatasetMeta,
    Episode,
    check_episode,
    read_metadata,
    split_indices,
)

__all__ = ["MINARI_PREFIX", "MinariDataset", "find_minari", "write_minari"]

MINARI_PREFIX = "minari:"
#: Largest array read from one episode (bytes) and most episodes in one file.
MAX_ARRAY_BYTES = 1 << 31
MAX_EPISODES = 10_000_000
_OBS_DTYPES = {"float32", "float64", "float16", "uint8", "int64", "int32", "bool"}


def find_minari(path: str) -> Path | None:
    """The ``main_data.hdf5`` a dataset reference names, or None when it is not a Minari one."""
    if path.startswith(MINARI_PREFIX):
        root = Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")
        dataset_id = path.removeprefix(MINARI_PREFIX)
        if not dataset_id or ".." in Path(dataset_id).parts:
            raise DatasetError(
                f"{path!r}: expected minari:<dataset id>, e.g. minari:D4RL/door/human-v2"
            )
        main = root / dataset_id / "data" / "main_data.hdf5"
        if not main.is_file():
            raise DatasetError(f"{path}: no local Minari dataset at {main.parent}")
        return main
    candidate = Path(path)
    for main in (candidate, candidate / "main_data.hdf5", candidate / "data" / "main_data.hdf5"):
        if main.name == "main_data.hdf5" and main.is_file():
            return main
    return None


def _space(where: str, text: Any) -> dict[str, Any]:
    try:
        space = json.loads(text) if isinstance(text, str) else None
    except (json.JSONDecodeError, RecursionError):
        space = None
    if not isinstance(space, dict) or "type" not in space:
        raise DatasetError(f"{where}: expected a serialised Gymnasium space, found {text!r:.200}")
    return space


def _shape(where: str, space: dict[str, Any]) -> list[int]:
    shape = space.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and 0 < d < 2**31 for d in shape):
        raise DatasetError(f"{where}: shape: expected positive ints, found {shape!r}")
    return shape


def _observation(where: str, space: dict[str, Any]) -> dict[str, Any]:
    if space["type"] == "Box":
        dtype = str(space.get("dtype"))
        if dtype not in _OBS_DTYPES:
            raise DatasetError(
                f"{where}: dtype: expected one of {sorted(_OBS_DTYPES)}, found {dtype!r}"
            )
        return {"shape": _shape(where, space), "dtype": dtype}
    if space["type"] == "Dict" and isinstance(space.get("subspaces"), dict):
        return {
            "keys": {
                str(key): _observation(f"{where}.{key}", _space(f"{where}.{key}", json.dumps(sub)))
                for key, sub in space["subspaces"].items()
            }
        }
    raise DatasetError(f"{where}: expected a Box or Dict of Boxes, found a {space['type']} space")


def _action(where: str, space: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray | None]:
    """The worldflux action declaration and, for a Box, its ``[2, A]`` (low, high) bounds."""
    if space["type"] == "Discrete" and isinstance(space.get("n"), int) and space["n"] > 0:
        if space.get("start", 0) != 0:
            raise DatasetError(
                f"{where}: a Discrete space must start at 0, found {space['start']!r}"
            )
        return {"type": "discrete", "dim": int(space["n"])}, None
    if space["type"] == "Box":
        shape = _shape(where, space)
        if len(shape) != 1:
            raise DatasetError(f"{where}: expected a 1-D Box of actions, found shape {shape}")
        try:
            bounds = np.array([space["low"], space["high"]], dtype=np.float64).reshape(2, shape[0])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{where}: expected low and high of {shape[0]} values") from None
        if not np.isfinite(bounds).all() or (bounds[1] <= bounds[0]).any():
            raise DatasetError(
                f"{where}: expected finite bounds with low < high, found {bounds.tolist()}"
            )
        return {"type": "continuous", "dim": shape[0]}, bounds
    raise DatasetError(
        f"{where}: expected a Discrete or 1-D Box action space, found {space['type']}"
    )


class MinariDataset:
    """A local Minari dataset (HDF5 storage) as worldflux episodes, read lazily and checked.

    Raises:
        DatasetError: a missing or malformed ``metadata.json`` / ``main_data.hdf5`` (on
            construction) or episode (when read), naming the file, the episode and the key.
    """

    def __init__(self, main: str | os.PathLike[str]) -> None:
        try:
            # deferred: optional dependency (extra "datasets")
            import h5py
        except ImportError:
            raise DatasetError(
                'Minari datasets need h5py: pip install "worldflux[datasets]"'
            ) from None
        self.file = Path(main)
        self.root = self.file.parent
        meta_path = self.root / "metadata.json"
        data = read_metadata(meta_path, "not a Minari dataset")
        if not isinstance(data, dict):
            raise DatasetError(f"{meta_path}: expected a JSON object")
        if data.get("data_format", "hdf5") != "hdf5":
            raise DatasetError(
                f"{meta_path}: data_format {data['data_format']!r}: only Minari's hdf5 storage "
                "is read (convert with minari, or record with `worldflux dataset record`)"
            )
        observation = _observation(
            f"{meta_path}: observation_space",
            _space(f"{meta_path}: observation_space", data.get("observation_space")),
        )
        action, self.bounds = _action(
            f"{meta_path}: action_space",
            _space(f"{meta_path}: action_space", data.get("action_space")),
        )
        try:
            self.h5 = h5py.File(self.file, "r")
        except OSError as error:
            raise DatasetError(f"{self.file}: not a readable HDF5 file ({error})") from None
        names = [n for n in self.h5.keys() if n.startswith("episode_")]
        if len(names) > MAX_EPISODES:
            raise DatasetError(f"{self.file}: {len(names):,} episodes; at most {MAX_EPISODES:,}")
        try:
            self.names = sorted(names, key=lambda n: int(n.removeprefix("episode_")))
        except ValueError:
            raise DatasetError(f"{self.file}: episode groups must be named episode_<n>") from None
        env = data.get("env_spec")
        env_id = str(data.get("worldflux_env", ""))
        if isinstance(env, str):
            try:
                env_id = str(json.loads(env).get("id", "")) or env_id
            except (json.JSONDecodeError, AttributeError, RecursionError):
                pass
        steps = data.get("total_steps")
        self.meta = DatasetMeta(
            observation=observation,
            action=action,
            episodes=len(self.names),
            steps=int(steps) if isinstance(steps, int) else 0,
            env=env_id,
            policy=str(data.get("algorithm_name", "")),
            extra={"minari_id": str(data.get("dataset_id", "")), "source": "minari"},
        )

    def __len__(self) -> int:
        return len(self.names)

    def split(self, validation: float = 0.1) -> tuple[list[int], list[int]]:
        """Deterministic train / validation episode indices (as for episode directories)."""
        return split_indices(len(self), validation)

    def __iter__(self) -> Iterator[Episode]:
        for index in range(len(self)):
            yield self.episode(index)

    def _read(self, where: str, node: Any, limit_rows: int) -> np.ndarray:
        # deferred: optional dependency (extra "datasets")
        import h5py

        if not isinstance(node, h5py.Dataset):
            raise DatasetError(f"{where}: expected an array, found a {type(node).__name__}")
        shape = tuple(int(d) for d in node.shape)
        nbytes = math.prod(shape) * node.dtype.itemsize
        if not shape or shape[0] > limit_rows or nbytes > MAX_ARRAY_BYTES:
            raise DatasetError(f"{where}: shape {list(shape)} ({nbytes:,} bytes) is out of bounds")
        try:
            return np.asarray(node[()])
        except (OSError, TypeError, ValueError) as error:
            raise DatasetError(f"{where}: unreadable ({error})") from None

    def episode(self, index: int) -> Episode:
        """Read episode ``index``, convert it to worldflux's conventions and check it."""
        name = self.names[index]
        where = f"{self.file}: {name}"
        group = self.h5[name]
        rows = MAX_EPISODE_STEPS + 1
        arrays: dict[str, np.ndarray] = {}
        for key in ("actions", "rewards", "terminations", "truncations"):
            if key not in group:
                raise DatasetError(f"{where}: missing array {key!r} (has {sorted(group.keys())})")
            arrays[key] = self._read(f"{where}/{key}", group[key], rows)
        if "observations" not in group:
            raise DatasetError(f"{where}: missing 'observations'")
        keys = self.meta.obs_keys
        if keys is None:
            arrays["observations"] = self._read(
                f"{where}/observations", group["observations"], rows
            )
        else:
            for key in keys:
                node = (
                    group["observations"].get(key)
                    if hasattr(group["observations"], "get")
                    else None
                )
                if node is None:
                    raise DatasetError(f"{where}: observations: missing key {key!r}")
                arrays[f"observations.{key}"] = self._read(
                    f"{where}/observations/{key}", node, rows
                )
        arrays["rewards"] = arrays["rewards"].astype(np.float32)
        if self.bounds is not None and arrays["actions"].dtype.kind == "f":
            low, high = self.bounds
            unit = (arrays["actions"].astype(np.float64) - low) / (high - low)
            arrays["actions"] = (2.0 * unit - 1.0).astype(np.float32)
        elif self.bounds is None and arrays["actions"].dtype.kind in "iu":
            arrays["actions"] = arrays["actions"].astype(np.int64)
        return check_episode(self.meta, where, arrays)

    def close(self) -> None:
        self.h5.close()


#: The Minari release whose on-disk format :func:`write_minari` writes (and tests read back).
MINARI_FORMAT_VERSION = "0.5.3"


def _box(shape: list[int], dtype: str, low: float, high: float) -> str:
    size = math.prod(shape)
    return json.dumps(
        {"type": "Box", "dtype": dtype, "shape": shape, "low": [low] * size, "high": [high] * size}
    )


def _obs_space(observation: dict[str, Any]) -> str:
    def one(spec: dict[str, Any]) -> str:
        if spec["dtype"] == "uint8":
            return _box(list(spec["shape"]), "uint8", 0, 255)
        return _box(list(spec["shape"]), str(spec["dtype"]), -math.inf, math.inf)

    if "keys" in observation:
        subspaces = {k: json.loads(one(v)) for k, v in sorted(observation["keys"].items())}
        return json.dumps({"type": "Dict", "subspaces": subspaces})
    return one(observation)


def write_minari(source: Any, out: str | os.PathLike[str], dataset_id: str) -> MinariDataset:
    """Write the episodes of ``source`` (any worldflux dataset) as a Minari dataset (HDF5
    storage, Minari's own layout and metadata) at ``out`` (``out/data/main_data.hdf5`` and
    ``out/data/metadata.json``), readable by ``minari.load_dataset`` and by
    :class:`MinariDataset`. Actions are stored in the models' units: a ``Box`` of ``[-1, 1]``.

    The dataset appears only when complete (written to a sibling directory, then renamed).

    Raises:
        DatasetError: ``out`` exists, or h5py is missing.
    """
    try:
        # deferred: optional dependency (extra "datasets")
        import h5py
    except ImportError:
        raise DatasetError(
            'writing Minari datasets needs h5py: pip install "worldflux[datasets]"'
        ) from None
    target = Path(out)
    if target.exists():
        raise DatasetError(f"{target}: already exists")
    staging = target.with_name(f".{target.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    data = staging / "data"
    data.mkdir(parents=True)
    meta, steps = source.meta, 0
    with h5py.File(data / "main_data.hdf5", "w") as file:
        for index, episode in enumerate(source):
            group = file.create_group(f"episode_{index}")
            group.attrs["id"] = index
            group.attrs["total_steps"] = episode.length
            if isinstance(episode.observations, dict):
                obs_group = group.create_group("observations")
                for key, value in episode.observations.items():
                    obs_group.create_dataset(key, data=value)
            else:
                group.create_dataset("observations", data=episode.observations)
            group.create_dataset("actions", data=episode.actions)
            group.create_dataset("rewards", data=episode.rewards)
            group.create_dataset("terminations", data=episode.terminations)
            group.create_dataset("truncations", data=episode.truncations)
            group.create_group("infos")
            steps += episode.length
    action = meta.action
    if action["type"] == "discrete":
        action_space = json.dumps(
            {"type": "Discrete", "dtype": "int64", "start": 0, "n": action["dim"]}
        )
    else:
        action_space = _box([int(action["dim"])], "float32", -1.0, 1.0)
    document = {
        "dataset_id": dataset_id,
        "minari_version": MINARI_FORMAT_VERSION,
        "data_format": "hdf5",
        "total_episodes": len(source),
        "total_steps": steps,
        "observation_space": _obs_space(meta.observation),
        "action_space": action_space,
        "algorithm_name": meta.policy,
        "worldflux_env": meta.env,
    }
    (data / "metadata.json").write_text(json.dumps(document, indent=2))
    staging.rename(target)
    return MinariDataset(target / "data" / "main_data.hdf5")
