"""YAML loading with positions: ruamel.yaml round-trip (YAML 1.2, duplicate keys rejected)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from worldflux.speclang.issues import Issue, JsonPath

__all__ = ["YamlDocument", "locate", "parse_yaml", "to_plain"]


class YamlDocument:
    """A parsed YAML document: the round-trip tree (with positions) and its plain-Python copy."""

    def __init__(self, file: str, tree: Any) -> None:
        self.file = file
        self.tree = tree
        self.data = to_plain(tree)

    def issue(self, path: JsonPath, message: str, *, key: bool = True) -> Issue:
        """An :class:`Issue` located at ``path`` (the key itself when ``key``, else its value)."""
        line, col = locate(self.tree, path, key=key)
        return Issue(self.file, line, col, tuple(path), message)


def parse_yaml(text: str, file: str) -> YamlDocument | Issue:
    """Parse one YAML document; a syntax error or duplicate key becomes a located :class:`Issue`."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        problem = " ".join(str(error.problem or error.context or "invalid YAML").split())
        if "duplicate key" in problem:
            first = error.context_mark
            where = f" (first defined at line {first.line + 1})" if first is not None else ""
            problem = f"{problem}{where}; each key may appear once"
        return Issue(file, line, col, (), f"YAML error: {problem}")
    except YAMLError as error:
        return Issue(file, 0, 0, (), f"YAML error: {' '.join(str(error).split())}")
    return YamlDocument(file, tree)


def to_plain(node: Any) -> Any:
    """Convert ruamel's commented containers and scalar subclasses to plain Python values."""
    if isinstance(node, Mapping):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, Sequence) and not isinstance(node, str):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def locate(tree: Any, path: JsonPath, *, key: bool = True) -> tuple[int, int]:
    """1-based (line, col) of the deepest existing node on ``path`` (1, 1 for the root).

    With ``key`` the position of a mapping key is returned, otherwise that of its value.
    """
    line, col = 1, 1
    node = tree
    for part in path:
        if isinstance(node, CommentedMap) and part in node:
            pos = node.lc.key(part) if key else node.lc.value(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            pos = node.lc.item(part)
            node = node[part]
        else:
            break
        if pos is not None and pos[0] is not None:
            line, col = pos[0] + 1, pos[1] + 1
    return line, col
