"""A corpus of hostile spec files and a runner that loads each under time and memory limits.

Run as a script (``python tests/reliability/hostile_specs.py``) it loads every case in this
process with an address-space limit and a per-case alarm, and prints one JSON line per case:
``{"case", "error", "located", "seconds", "message"}``. tests/reliability/test_hostile_specs.py
runs it in a subprocess, so a loader that blows up takes the subprocess down, not pytest.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "specs" / "toy_generic.yaml"
#: Address-space limit of the runner (torch alone maps about 1-2 GiB).
MEMORY_LIMIT = 4 << 30
#: Seconds any one case may take before it counts as a hang.
CASE_TIMEOUT_S = 10


def _base() -> str:
    return FIXTURE.read_text(encoding="utf-8")


def _replace(old: str, new: str) -> Callable[[], str]:
    def make() -> str:
        text = _base()
        assert old in text, old
        return text.replace(old, new, 1)

    return make


def _billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return _base() + "\n".join(lines) + "\n"


def _many_aliases() -> str:
    return _base() + "x: &x 1\ny: [" + ", ".join(["*x"] * 200) + "]\n"


def _nested_blocks(depth: int) -> str:
    body = "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + f"{'  ' * depth}leaf: 1\n"
    return _base() + "deep:\n" + "".join("  " + line + "\n" for line in body.splitlines())


#: case -> (spec text factory, substring the error message must hold)
CASES: dict[str, tuple[Callable[[], str], str]] = {
    "10MB_unknown_keys": (
        lambda: _base() + "".join(f"unknown_{i}: {i}\n" for i in range(700_000)),
        "the limit is 65,536 bytes",
    ),
    "billion_laughs": (_billion_laughs, "aliases expanded (MAX_NODES)"),
    "many_aliases": (_many_aliases, "more than 64 aliases"),
    "5000_nested_brackets": (lambda: _base() + "x: " + "[" * 5000 + "]" * 5000 + "\n", "nesting"),
    "40_nested_blocks": (lambda: _nested_blocks(40), "nesting deeper than 32"),
    "bell_character": (
        _replace("A small recurrent", "A small \x07recurrent"),
        "control character U+0007",
    ),
    "nul_byte": (_replace("model_type: toy_generic", "model_type: toy\x00generic"), "U+0000"),
    "escape_sequence_key_newline": (
        _replace("aliases: {toy-generic: small", 'aliases: {"toy-generic\\n": small'),
        "holds a control character",
    ),
    "class_name_trailing_newline": (
        _replace("class_name: ToyGenericWorldModel", 'class_name: "ToyGenericWorldModel\\n"'),
        "does not match",
    ),
    "dimension_beyond_int64": (
        _replace(
            "latent_dim: {type: integer, minimum: 2, default: 32",
            "latent_dim: {type: integer, minimum: 2, default: 100000000000000000000",
        ),
        "out of range",
    ),
    "class_name_shadows_an_import": (
        _replace("class_name: ToyGenericWorldModel", "class_name: WorldModel"),
        "a name the generated module imports",
    ),
}


def _alarm(signum: int, frame: Any) -> None:
    raise TimeoutError(f"no answer within {CASE_TIMEOUT_S} s")


def run_case(name: str) -> dict[str, Any]:
    """Load one case; report the error class, whether it is located, and the time taken."""
    from worldflux.core.exceptions import SpecError
    from worldflux.speclang import load_spec_text

    make, expected = CASES[name]
    text = make()
    signal.alarm(CASE_TIMEOUT_S)
    start = time.perf_counter()
    try:
        load_spec_text(text, "specs/models/toy_generic.yaml")
        error, message = "none", ""
    except SpecError as failure:
        error, message = "SpecError", str(failure)
    except BaseException as failure:  # anything else is a defect the test reports
        error, message = type(failure).__name__, str(failure)[:500]
    finally:
        signal.alarm(0)
    seconds = time.perf_counter() - start
    located = "specs/models/toy_generic.yaml:" in message and ":0:0:" not in message
    return {
        "case": name,
        "error": error,
        "located": located,
        "expected": expected in message,
        "seconds": round(seconds, 4),
        "bytes": len(text.encode("utf-8")),
        "message": message[:400],
    }


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGALRM, _alarm)
    import worldflux.speclang  # noqa: F401  (import cost is not part of any case)

    for name in sys.argv[1:] or list(CASES):
        print(json.dumps(run_case(name)), flush=True)


if __name__ == "__main__":
    main()
