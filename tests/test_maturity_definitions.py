"""One definition of each maturity level, quoted verbatim by the schema and the docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worldflux.core.maturity import MATURITY_DEFINITIONS, ModelMaturity

ROOT = Path(__file__).resolve().parent.parent


def _unwrapped(path: Path) -> str:
    return " ".join((ROOT / path).read_text().split())


@pytest.mark.parametrize("level", list(ModelMaturity))
def test_every_doc_quotes_the_one_definition(level: ModelMaturity) -> None:
    definition = MATURITY_DEFINITIONS[level]
    schema = json.loads((ROOT / "specs/schema/model-spec.v1.schema.json").read_text())
    assert f"`{level.value}`: {definition}." in schema["properties"]["maturity"]["description"]
    assert definition in _unwrapped(Path("docs/spec-reference.md"))
    assert f"**{level.value.upper()}**: {definition}." in _unwrapped(Path("docs/families.md"))
