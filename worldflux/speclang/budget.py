"""Budgets for untrusted spec text, checked before the YAML tree is built.

Specs arrive in pull requests and as ``--spec`` files of external models, so the loader bounds
what a file may cost before it composes anything:

- size: at most :data:`MAX_SPEC_BYTES` (checked first: no parsing at all);
- characters: no control characters (C0 except tab/LF/CR, DEL, C1), located exactly;
- structure (one streaming pass over the parser's events, constant memory): nesting depth,
  node count, alias count, and the size aliases *expand* to (a "billion laughs" document is
  rejected at the first alias that would exceed the budget, without expanding anything).

Every violation is an :class:`~worldflux.speclang.issues.Issue` at ``file:line:col`` naming the
limit. The built-in specs use a few percent of each budget (tests keep it so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
    ScalarEvent,
)

from worldflux.speclang.issues import Issue, JsonPath
from worldflux.speclang.yaml_io import YamlDocument

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_NODES",
    "MAX_SPEC_BYTES",
    "Budget",
    "check_budget",
    "read_spec_file",
    "size_issue",
    "value_issues",
]

#: Largest spec file accepted, in bytes (the largest built-in spec is about 3.5 kB).
MAX_SPEC_BYTES = 64 * 1024
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 32
#: Most YAML nodes, counting every alias as the size of what it refers to.
MAX_NODES = 20_000
#: Most aliases (``*name``) in one file.
MAX_ALIASES = 64
#: Largest integer magnitude anywhere in a spec (int64: what torch and generated code hold).
MAX_INT = 2**63 - 1

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")


@dataclass(frozen=True)
class Budget:
    """The limits one load enforces (the module constants by default)."""

    max_bytes: int = MAX_SPEC_BYTES
    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES
    max_aliases: int = MAX_ALIASES


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _control_issue(text: str, file: str) -> Issue | None:
    found = _CONTROL.search(text, 1 if text.startswith("\ufeff") else 0)
    if found is None:
        return None
    line, col = _position(text, found.start())
    return Issue(
        file,
        line,
        col,
        (),
        f"control character U+{ord(found.group()):04X} is not allowed in a spec",
    )


def size_issue(size: int, file: str, budget: Budget | None = None) -> Issue | None:
    """An Issue when a spec of ``size`` bytes is over the size budget (check before reading)."""
    limit = (budget or Budget()).max_bytes
    if size <= limit:
        return None
    return Issue(
        file,
        1,
        1,
        (),
        f"spec is {size:,} bytes; the limit is {limit:,} bytes "
        "(worldflux.speclang.budget.MAX_SPEC_BYTES)",
    )


def read_spec_file(path: Path, file: str) -> tuple[bytes | None, Issue | None]:
    """The bytes of ``path`` if within the size budget (never reads more than the limit + 1)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as error:
        return None, Issue(file, 0, 0, (), f"cannot read: {error}")
    if len(raw) > MAX_SPEC_BYTES:
        return None, size_issue(max(len(raw), path.stat().st_size), file)
    return raw, None


def check_budget(text: str, file: str, budget: Budget | None = None) -> Issue | None:
    """The first budget ``text`` exceeds, as a located Issue (None: within every budget).

    Syntax errors are left to the parser that follows (this pass stops quietly at one).
    """
    limits = budget or Budget()
    too_big = size_issue(len(text.encode("utf-8", "surrogatepass")), file, limits)
    if too_big is not None:
        return too_big
    control = _control_issue(text, file)
    if control is not None:
        return control
    brackets = _bracket_issue(text, file, limits)
    if brackets is not None:
        return brackets
    return _structure_issue(text, file, limits)


_BRACKETS = re.compile(r"[\[\]{}]")


def _bracket_issue(text: str, file: str, limits: Budget) -> Issue | None:
    """A cheap bound on flow nesting before the parser sees it: the parser's scanner looks ahead
    to the matching bracket, quadratic in the nesting (5,000 ``[`` take seconds). Brackets inside
    strings count too, so the bound is twice the depth limit: only absurd text reaches it."""
    depth = 0
    for found in _BRACKETS.finditer(text):
        depth += 1 if found.group() in "[{" else -1
        if depth > 2 * limits.max_depth:
            line, col = _position(text, found.start())
            return Issue(file, line, col, (), f"nesting deeper than {limits.max_depth} (MAX_DEPTH)")
    return None


def _structure_issue(text: str, file: str, limits: Budget) -> Issue | None:
    depth = nodes = aliases = 0
    starts: list[tuple[str | None, int]] = []  # (anchor, node count when the collection opened)
    anchored: dict[str, int] = {}  # anchor -> expanded size of its node

    def issue(event: NodeEvent | CollectionEndEvent, message: str) -> Issue:
        mark = event.start_mark
        return Issue(file, mark.line + 1, mark.column + 1, (), message)

    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            if isinstance(event, AliasEvent):
                aliases += 1
                if aliases > limits.max_aliases:
                    return issue(event, f"more than {limits.max_aliases} aliases (MAX_ALIASES)")
                nodes += anchored.get(str(event.anchor), 1)
            elif isinstance(event, CollectionStartEvent):
                nodes += 1
                depth += 1
                if depth > limits.max_depth:
                    return issue(event, f"nesting deeper than {limits.max_depth} (MAX_DEPTH)")
                starts.append((event.anchor, nodes))
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
                anchor, opened = starts.pop()
                if anchor is not None:
                    anchored[str(anchor)] = nodes - opened + 1
            elif isinstance(event, ScalarEvent):
                nodes += 1
                if event.anchor is not None:
                    anchored[str(event.anchor)] = 1
            else:
                continue
            if nodes > limits.max_nodes:
                return issue(
                    event,
                    f"more than {limits.max_nodes:,} YAML nodes, aliases expanded (MAX_NODES)",
                )
    except (YAMLError, IndexError):  # a syntax error: the parser that follows locates it
        return None
    return None


def value_issues(doc: YamlDocument) -> list[Issue]:
    """Values no schema keyword can bound: integers beyond int64 anywhere (dimensions, counts,
    defaults), and mapping keys holding control characters (written as escapes, e.g. ``"a\\n"``)."""
    issues: list[Issue] = []
    stack: list[tuple[JsonPath, Any]] = [((), doc.data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if _CONTROL.search(key) or "\n" in key or "\t" in key or "\r" in key:
                    issues.append(doc.issue((*path, key), f"key {key!r} holds a control character"))
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            issues.append(
                doc.issue(path, f"integer {value} is out of range (|n| <= 2**63 - 1)", key=False)
            )
    return issues
