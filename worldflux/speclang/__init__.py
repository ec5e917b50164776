"""Spec loading and validation.

A spec (``specs/models/<type>.yaml``) is parsed with ruamel.yaml (YAML 1.2, duplicate keys
rejected), checked against ``specs/schema/model-spec.v1.schema.json`` (every error collected), then
checked semantically (registered implementations and their params, presets, aliases, contract
symbols). Every problem is reported as ``path:line:col: <json path>: <message>`` in one
:class:`~worldflux.core.exceptions.SpecError`.
"""

from worldflux.speclang.issues import Issue, json_path
from worldflux.speclang.loader import (
    MODELINE_PREFIX,
    find_root,
    load_spec_text,
    load_specs,
    packaged_schema,
    schema_path,
    spec_files,
)
from worldflux.speclang.model import RESERVED_CONFIG_FIELDS, Spec
from worldflux.speclang.schema import SCHEMA_RELPATH, load_schema

__all__ = [
    "MODELINE_PREFIX",
    "RESERVED_CONFIG_FIELDS",
    "SCHEMA_RELPATH",
    "Issue",
    "Spec",
    "find_root",
    "json_path",
    "load_schema",
    "load_spec_text",
    "load_specs",
    "packaged_schema",
    "schema_path",
    "spec_files",
]
