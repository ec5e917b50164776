"""Structural validation of a spec document against ``specs/schema/model-spec.v1.schema.json``."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from worldflux.core.exceptions import did_you_mean
from worldflux.speclang.issues import Issue
from worldflux.speclang.yaml_io import YamlDocument

__all__ = [
    "SCHEMA_FILE",
    "SCHEMA_RELPATH",
    "StrictValidator",
    "describe_error",
    "load_schema",
    "schema_issues",
    "validator_for",
]

#: Where the schema lives, relative to the specs directory (and shipped as ``worldflux.specs``).
SCHEMA_FILE = "schema/model-spec.v1.schema.json"
#: ... and relative to worldflux's own tree.
SCHEMA_RELPATH = f"specs/{SCHEMA_FILE}"

_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _is_strict_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def anchored(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled so a final ``$`` means the end of the string (``\\Z``): Python's
    ``$`` also matches before a trailing newline, so ``"my-alias\\n"`` would pass ``^...$``."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not anchored(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: Draft 2020-12 where ``integer`` means an int (YAML tells ``512`` from ``512.0``, and a float
#: where an int is declared would reach torch as a float) and ``pattern`` is anchored at the end
#: of the string (no trailing newline sneaks past ``$``).
StrictValidator: Any = validators.extend(
    Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer),
)


@cache
def _load_schema_text(path: str, mtime_ns: int) -> str:
    return Path(path).read_text(encoding="utf-8")


def load_schema(path: Path) -> dict[str, Any]:
    """The parsed schema at ``path`` (cached until the file changes)."""
    schema: dict[str, Any] = json.loads(_load_schema_text(str(path), path.stat().st_mtime_ns))
    return schema


@cache
def _validator(text: str) -> Any:
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return StrictValidator(schema)


def validator_for(schema: dict[str, Any]) -> Any:
    """A strict draft 2020-12 validator (the schema is checked first; cached per schema)."""
    return _validator(json.dumps(schema, sort_keys=True))


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _additional(doc: YamlDocument, error: ValidationError) -> list[Issue]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    allowed = sorted(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    instance = error.instance if isinstance(error.instance, dict) else {}
    issues = []
    for key in sorted(instance):
        if key in allowed or any(anchored(p).search(key) for p in patterns):
            continue
        path = (*error.absolute_path, key)
        if allowed:
            message = f"unknown key {key!r}" + did_you_mean(key, allowed)
        else:
            message = f"invalid name {key!r}: must match {' or '.join(patterns)}"
        issues.append(doc.issue(path, message))
    return issues


def describe_error(error: ValidationError) -> str:
    keyword = error.validator
    value = error.instance
    expected = error.validator_value
    if keyword == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else str(expected)
        return f"missing required key {name!r}"
    if keyword == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"expected {wanted}, found {_type_name(value)} {_short(value)}"
    if keyword == "enum":
        options = ", ".join(repr(o) for o in expected)
        hint = did_you_mean(value, [str(o) for o in expected]) if isinstance(value, str) else ""
        return f"expected one of {options}, found {_short(value)}{hint}"
    if keyword == "const":
        return f"expected {expected!r}, found {_short(value)}"
    if keyword == "pattern":
        return f"{_short(value)} does not match {expected}"
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }[str(keyword)]
        return f"expected a value {relation} {expected}, found {_short(value)}"
    if keyword in ("minItems", "maxItems", "minProperties", "minLength"):
        return f"{error.message} (expected {keyword} {expected})"
    if keyword == "uniqueItems":
        return f"items must be unique, found {_short(value)}"
    message: str = error.message
    return message


def schema_issues(doc: YamlDocument, validator: Any) -> list[Issue]:
    """Every structural problem of ``doc``, each located at the offending key or value."""
    issues: list[Issue] = []
    if not isinstance(doc.data, dict):
        return [doc.issue((), f"expected a mapping at the top level, found {_type_name(doc.data)}")]
    for error in validator.iter_errors(doc.data):
        if error.validator == "additionalProperties":
            issues.extend(_additional(doc, error))
            continue
        path = tuple(error.absolute_path)
        issues.append(doc.issue(path, describe_error(error)))
    return issues
