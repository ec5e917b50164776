"""The training loop's own resume state (``extra`` of a training checkpoint), validated before
anything is restored: a malformed field is one CheckpointError naming it, never a KeyError."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worldflux.core.exceptions import CheckpointError

__all__ = ["check_resume_state"]

_NUMBER = (int, float)
#: field -> accepted types, for ``extra["loop"]`` and ``extra["derived"]``
_LOOP: dict[str, tuple[type, ...]] = {
    "env_step": (int,),
    "episode": (int,),
    "episode_open": (bool,),
    "episode_return": _NUMBER,
    "episode_length": (int,),
    "update_credit": _NUMBER,
    "next_checkpoint": (int,),
    "next_eval": (int,),
    "returns": (list,),
    "eval_returns": (list,),
}
_DERIVED: dict[str, tuple[type, ...]] = {
    "batch_size": (int,),
    "seq_len": (int,),
    "seed_steps": (int,),
    "pretrain_updates": (int,),
    "replay_capacity": (int,),
}


def _table(
    extra: Mapping[str, Any], name: str, fields: Mapping[str, tuple[type, ...]], where: str
) -> None:
    table = extra.get(name)
    if not isinstance(table, Mapping):
        raise CheckpointError(
            f"{where}: field 'extra.{name}': expected a mapping, found {type(table).__name__}"
        )
    for key, types in fields.items():
        value = table.get(key)
        wrong_bool = isinstance(value, bool) and bool not in types
        if not isinstance(value, types) or wrong_bool:
            expected = " or ".join(t.__name__ for t in types)
            raise CheckpointError(
                f"{where}: field 'extra.{name}.{key}': expected {expected}, found {value!r}"
            )
    for key in ("returns", "eval_returns"):
        values = table.get(key, [])
        if name == "loop" and not all(
            isinstance(v, _NUMBER) and not isinstance(v, bool) for v in values
        ):
            raise CheckpointError(f"{where}: field 'extra.loop.{key}': expected a list of numbers")


def check_resume_state(extra: Mapping[str, Any], ckpt: Path) -> None:
    """Raise CheckpointError unless ``extra`` holds a complete, well-typed loop state."""
    where = str(ckpt)
    if not isinstance(extra, Mapping):
        raise CheckpointError(f"{where}: field 'extra': expected a mapping")
    _table(extra, "loop", _LOOP, where)
    _table(extra, "derived", _DERIVED, where)
    for name in ("env", "random_actor"):
        if not isinstance(extra.get(name), Mapping):
            raise CheckpointError(f"{where}: field 'extra.{name}': expected a mapping")
    if extra.get("eval_env") is not None and not isinstance(extra["eval_env"], Mapping):
        raise CheckpointError(f"{where}: field 'extra.eval_env': expected a mapping or null")
