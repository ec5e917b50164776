"""docs/conformance.md's check table is the registry's: every check, its clause, obligations and
cost, so the page cannot drift from what the suite enforces."""

from __future__ import annotations

from pathlib import Path

from worldflux.conformance.registry import CheckInfo, all_checks

DOC = Path(__file__).resolve().parents[1] / "docs" / "conformance.md"


def _row(info: CheckInfo) -> str:
    gate = f" (gate: `{info.capability.value}`)" if info.capability else ""
    levels = []
    for level in ("skeleton", "experimental", "reference"):
        value = next(o for k, o in info.obligations.items() if getattr(k, "value", k) == level)
        levels.append(str(getattr(value, "value", value)))
    cost = getattr(info.cost, "value", info.cost)
    return f"| `{info.id}`{gate} | {info.clause} | {' | '.join(levels)} | {cost} |"


def test_the_check_table_matches_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [row for row in (_row(c.info) for c in all_checks()) if row not in text]
    assert not missing, "docs/conformance.md lacks or misstates:\n" + "\n".join(missing)
