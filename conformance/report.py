"""Conformance results as data, and their renderings: scoreboard, JSON, JUnit XML, Markdown.

The JSON format is versioned (``schema_version``) and described by the committed JSON Schema
``conformance/schema/report.v1.schema.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from worldflux.conformance.registry import FAMILIES

from worldflux.core.exceptions import ConfigurationError

__all__ = [
    "SCHEMA_VERSION",
    "CheckResult",
    "ConformanceReport",
    "TargetResult",
    "render_markdown",
    "render_scoreboard",
    "write_reports",
]

SCHEMA_VERSION = "worldflux-conformance/1"

#: Statuses: pass; fail (a MUST failed, or a SHOULD under --strict); warn (a SHOULD failed);
#: skip (capability not declared / not applicable to this target); not-exercised (nothing to
#: exercise, e.g. no alternative implementation to swap in).
STATUSES = ("pass", "fail", "warn", "skip", "not-exercised")


@dataclass
class CheckResult:
    """One check on one target."""

    id: str
    family: str
    obligation: str
    status: str
    message: str = ""
    code: str = ""
    clause: str = ""
    cost: str = "cheap"
    duration_s: float = 0.0
    repro: str | None = None
    crash_file: str | None = None
    traceback: str | None = None

    @property
    def violated(self) -> bool:
        """The check itself failed (whatever its obligation)."""
        return self.status in ("fail", "warn")


@dataclass
class TargetResult:
    """Every check of one target, with the declared, required and achieved maturity."""

    target: str
    declared_maturity: str
    required_maturity: str
    achieved_maturity: str
    passed: bool
    checks: list[CheckResult] = field(default_factory=list)
    preset: str | None = None
    error: str | None = None

    def by_family(self) -> dict[str, list[CheckResult]]:
        out: dict[str, list[CheckResult]] = {}
        for result in self.checks:
            out.setdefault(result.family, []).append(result)
        return out

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "warn"]


@dataclass
class ConformanceReport:
    """The result of one run: a list of targets plus run metadata."""

    results: list[TargetResult] = field(default_factory=list)
    profile: str = "dev"
    seed: int = 0
    strict: bool = False
    suite_version: str = "1"
    environment: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    schema_version: str = SCHEMA_VERSION

    @property
    def passed(self) -> bool:
        """Every target is conformant at its required level."""
        return all(r.passed for r in self.results)

    def result(self, target: str) -> TargetResult:
        for item in self.results:
            if item.target == target:
                return item
        raise KeyError(f"no result for target {target!r}; have {[r.target for r in self.results]}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see ``conformance/schema/report.v1.schema.json``)."""
        data = asdict(self)
        counts: Counter[str] = Counter(c.status for r in self.results for c in r.checks)
        data["summary"] = {
            "targets": len(self.results),
            "conformant": sum(r.passed for r in self.results),
            "statuses": {s: counts.get(s, 0) for s in STATUSES},
            "warning_codes": dict(
                sorted(Counter(c.code for r in self.results for c in r.warnings()).items())
            ),
        }
        data["passed"] = self.passed
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _cell(results: list[CheckResult]) -> str:
    run = [c for c in results if c.status in ("pass", "fail", "warn")]
    if not run:
        return "n/a" if all(c.status == "skip" for c in results) else "-"
    ok = sum(c.status == "pass" for c in run)
    mark = "ok" if ok == len(run) else ("FAIL" if any(c.status == "fail" for c in run) else "warn")
    return f"{ok}/{len(run)} {mark}"


def _families(report: ConformanceReport) -> list[str]:
    present = {c.family for r in report.results for c in r.checks}
    return [f for f in FAMILIES if f in present]


def render_scoreboard(report: ConformanceReport) -> str:
    """A terminal table: one row per target, one column per family, declared vs achieved,
    then every failure and warning with its repro command."""
    families = _families(report)
    header = ["target", "declared", "achieved", *families, "verdict"]
    rows: list[list[str]] = []
    for r in report.results:
        fams = r.by_family()
        verdict = "PASS" if r.passed else "FAIL"
        rows.append(
            [
                r.target
                if r.preset is None or r.target.endswith(f":{r.preset}")
                else f"{r.target} [{r.preset}]",
                r.declared_maturity,
                r.achieved_maturity,
                *(_cell(fams.get(f, [])) for f in families),
                verdict,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    if not report.results:
        lines.append("(no targets: no model is registered)")
    details: list[str] = []
    for r in report.results:
        if r.error:
            details.append(f"{r.target}: ERROR {r.error}")
        for c in r.checks:
            if c.status in ("fail", "warn"):
                tag = "FAIL" if c.status == "fail" else f"WARN {c.code}"
                details.append(f"{r.target} {c.id} [{c.obligation}] {tag}: {c.message}")
                if c.repro:
                    details.append(f"    repro: {c.repro}")
    if details:
        lines += ["", *details]
    total = len(report.results)
    good = sum(r.passed for r in report.results)
    lines += [
        "",
        f"{good}/{total} targets conformant at their declared level "
        f"(profile {report.profile}, seed {report.seed}, {report.duration_s:.1f} s)",
    ]
    return "\n".join(lines)


def render_markdown(report: ConformanceReport) -> str:
    """The scoreboard as a Markdown page (cross-model matrix plus failures)."""
    families = _families(report)
    out = [
        "# worldflux conformance scoreboard",
        "",
        f"Profile `{report.profile}`, seed `{report.seed}`, suite {report.suite_version}.",
        "",
        "| target | declared | achieved | " + " | ".join(families) + " | verdict |",
        "|---|---|---|" + "---|" * len(families) + "---|",
    ]
    for r in report.results:
        fams = r.by_family()
        cells = " | ".join(_cell(fams.get(f, [])) for f in families)
        verdict = "PASS" if r.passed else "FAIL"
        out.append(
            f"| `{r.target}` | {r.declared_maturity} | {r.achieved_maturity} | {cells} | "
            f"{verdict} |"
        )
    problems = [(r, c) for r in report.results for c in r.checks if c.status in ("fail", "warn")]
    if problems:
        out += ["", "## Failures and warnings", ""]
        for r, c in problems:
            out.append(f"- `{r.target}` `{c.id}` ({c.obligation}, {c.status}): {c.message}")
            if c.repro:
                out.append(f"  - repro: `{c.repro}`")
    return "\n".join(out) + "\n"


def render_junit(report: ConformanceReport) -> str:
    """JUnit XML: one testsuite per target, one testcase per check, with properties."""
    suites = ET.Element("testsuites", name="worldflux-conformance")
    for r in report.results:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=r.target,
            tests=str(len(r.checks)),
            failures=str(len(r.failures())),
            skipped=str(sum(c.status in ("skip", "not-exercised") for c in r.checks)),
        )
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("declared_maturity", r.declared_maturity),
            ("achieved_maturity", r.achieved_maturity),
            ("required_maturity", r.required_maturity),
        ):
            ET.SubElement(props, "property", name=key, value=value)
        for c in r.checks:
            case = ET.SubElement(
                suite, "testcase", classname=r.target, name=c.id, time=f"{c.duration_s:.3f}"
            )
            cprops = ET.SubElement(case, "properties")
            for key, value in (
                ("check_id", c.id),
                ("clause", c.clause),
                ("obligation", c.obligation),
                ("seed", str(report.seed)),
            ):
                ET.SubElement(cprops, "property", name=key, value=value)
            if c.status == "fail":
                ET.SubElement(case, "failure", message=c.message[:500]).text = c.message + (
                    f"\nrepro: {c.repro}" if c.repro else ""
                )
            elif c.status in ("skip", "not-exercised"):
                ET.SubElement(case, "skipped", message=c.message[:500])
            elif c.status == "warn":
                ET.SubElement(case, "system-out").text = f"WARN {c.code}: {c.message}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_reports(
    report: ConformanceReport, directory: str | Path, formats: list[str]
) -> list[Path]:
    """Write ``conformance.json`` / ``conformance.xml`` / ``conformance.md`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fmt in formats:
        if fmt == "json":
            path = directory / "conformance.json"
            path.write_text(report.to_json() + "\n")
        elif fmt == "junit":
            path = directory / "conformance.xml"
            path.write_text(render_junit(report))
        elif fmt == "md":
            path = directory / "conformance.md"
            path.write_text(render_markdown(report))
        else:
            raise ConfigurationError(f"--report: unknown format {fmt!r}; valid: json, junit, md")
        written.append(path)
    return written
