"""Located spec problems: ``path:line:col: <json path>: <message>``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from worldflux.core.exceptions import SpecError

__all__ = ["Issue", "JsonPath", "json_path", "raise_if_any"]

#: A location inside a document: mapping keys and sequence indices.
JsonPath = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(path: Sequence[str | int]) -> str:
    """Render a path as ``$.slots.decoder.impl``, ``$.presets['5m']``, ``$.goldens[0]``."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


@dataclass(frozen=True, order=True)
class Issue:
    """One problem in one spec file.

    Attributes:
        file: the spec path as shown to the user (relative to the project root when possible).
        line, col: 1-based position of the offending key or value (0 when unknown).
        path: where in the document the problem is.
        message: what is wrong, what was expected, and a "did you mean" when a name is close.
    """

    file: str
    line: int
    col: int
    path: JsonPath
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {json_path(self.path)}: {self.message}"


def raise_if_any(issues: Iterable[Issue], what: str = "spec") -> None:
    """Raise one :class:`SpecError` listing every issue, sorted by file, line, column.

    Raises:
        SpecError: when ``issues`` is not empty; ``.issues`` holds the formatted lines.
    """
    unique = sorted(
        set(issues), key=lambda i: (i.file, i.line, i.col, json_path(i.path), i.message)
    )
    if unique:
        count = len(unique)
        noun = "problem" if count == 1 else "problems"
        raise SpecError(f"{count} {noun} in {what}", [str(i) for i in unique])
