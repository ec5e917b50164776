"""Helpers for the spec / codegen tests: temporary project roots and YAML dumping."""

from __future__ import annotations

import copy
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "specs" / "toy_generic.yaml"
MODELINE = "# yaml-language-server: $schema=../schema/model-spec.v1.schema.json\n"


def fixture_data() -> dict[str, Any]:
    """The generic fixture spec as plain data (a fresh copy)."""
    from worldflux.speclang.yaml_io import to_plain

    data: dict[str, Any] = to_plain(YAML(typ="rt").load(FIXTURE.read_text(encoding="utf-8")))
    return copy.deepcopy(data)


def dump(data: dict[str, Any]) -> str:
    """A spec file's text: the modeline, then ``data`` as block-style YAML."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(data, out)
    return MODELINE + out.getvalue()


def set_measured_params(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every preset's ``params`` set to the count its build has (what
    ``worldflux generate`` verifies), for tests that change a spec's structure."""
    from worldflux.codegen.verify import measured_params
    from worldflux.speclang import load_spec_text

    spec = load_spec_text(dump(data), f"specs/models/{data['model_type']}.yaml")
    for preset, count in measured_params(spec).items():
        assert isinstance(count, int), f"preset {preset!r} does not build: {count}"
        data["presets"][preset]["params"] = count
    return data


def make_root(tmp: Path, specs: dict[str, str] | None = None, *, pyproject: bool = True) -> Path:
    """A project tree under ``tmp``: the schema, ``specs/models/<name>.yaml`` for each entry."""
    root = tmp / "project"
    (root / "specs" / "models").mkdir(parents=True)
    (root / "specs" / "schema").mkdir()
    shutil.copy(REPO / "specs/schema/model-spec.v1.schema.json", root / "specs/schema/")
    if pyproject:
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    for name, text in (specs or {}).items():
        (root / "specs" / "models" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Tiny models on a shared CPU: one torch thread avoids oversubscription (about 8x faster)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
