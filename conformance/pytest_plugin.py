"""pytest plugin (entry point ``pytest11``): ``--wf-*`` options, the ``wf_case`` fixture and
:func:`parametrize_conformance` for users' own test suites.

Cheap to import: only pytest at module level; the engine is imported when a case runs or when
tests are parametrized. Test ids are ``<target>::<check_id>`` so ``-k`` selects either.

Usage in a user's repo::

    from worldflux.conformance.pytest_plugin import parametrize_conformance

    @parametrize_conformance(["mypkg.model:make_adapter"], spec="tests/my_model.yaml")
    def test_my_model(wf_case):
        wf_case.run()

From this repo: ``pytest conformance/ --wf-target=tdmpc2`` (default: every registered model).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from worldflux.core.registry import WorldModelRegistry

__all__ = ["ConformanceCase", "ConformanceWarning", "parametrize_conformance"]


class ConformanceWarning(UserWarning):
    """A SHOULD obligation failed (the message starts with its ``WFC`` code)."""


_PREPARED: dict[tuple[Any, ...], tuple[Any, Any, Any, str | None]] = {}


class ConformanceCase:
    """One (target, check) pair; :meth:`run` passes, skips, warns or fails the test."""

    def __init__(
        self,
        target: Any,
        check_id: str,
        *,
        level: str | None = None,
        profile: str = "ci",
        seed: int | None = 0,
        spec: str | None = None,
        max_examples: int | None = None,
        hints: dict[str, Any] | None = None,
        strict: bool = False,
        crash_dir: str | Path | None = None,
    ) -> None:
        self.target = target
        self.crash_dir = crash_dir
        self.check_id = check_id
        self.level = level
        self.profile = profile
        self.seed = seed
        self.spec = spec
        self.max_examples = max_examples
        self.hints = dict(hints or {})
        self.strict = strict
        self.record_property: Callable[[str, Any], None] | None = None

    @property
    def id(self) -> str:
        name = self.target if isinstance(self.target, str) else _name(self.target)
        return f"{name}::{self.check_id}"

    def __repr__(self) -> str:
        return f"ConformanceCase({self.id})"

    def _prepared(self) -> tuple[Any, Any, Any, str | None]:
        # deferred: keeps the plugin cheap (pytest loads it in every session, see above)
        from worldflux.conformance.engine import make_options
        from worldflux.conformance.runner import prepare
        from worldflux.conformance.target import resolve_target

        key = (
            self.target if isinstance(self.target, str) else id(self.target),
            self.spec,
            self.profile,
            self.seed,
            self.max_examples,
            repr(sorted(self.hints.items())),
        )
        if key not in _PREPARED:
            resolved = resolve_target(self.target, self.spec)
            options = make_options(
                self.profile, self.seed, self.max_examples, hints=self.hints or None
            )
            prototype, contract, error = prepare(resolved, options)
            _PREPARED[key] = (resolved, options, (prototype, contract), error)
        return _PREPARED[key]

    def run(self) -> None:
        """Run the check: skip when n/a, warn for a failed SHOULD, fail for a failed MUST."""
        # deferred: keeps the plugin cheap (pytest loads it in every session, see above)
        from worldflux.conformance.crashes import DEFAULT_CRASH_DIR
        from worldflux.conformance.registry import Obligation, get_check
        from worldflux.conformance.runner import run_check

        from worldflux.core.spec import ModelMaturity

        resolved, options, (prototype, contract), error = self._prepared()
        check = get_check(self.check_id)
        required = resolved.declared if self.level is None else ModelMaturity.parse(self.level)
        obligation = check.info.obligation(required)
        if self.record_property is not None:
            for key, value in (
                ("check_id", check.info.id),
                ("clause", check.info.clause),
                ("obligation", obligation.value),
                ("level", required.value),
                ("seed", options.seed),
            ):
                self.record_property(key, value)
        if obligation is Obligation.NA:
            pytest.skip(f"n/a at {required.value}")
        result, _ = run_check(
            resolved,
            check,
            options,
            prototype,
            contract,
            error,
            required=required,
            strict=self.strict,
            crash_dir=DEFAULT_CRASH_DIR if self.crash_dir is None else Path(self.crash_dir),
        )
        if result.status in ("skip", "not-exercised"):
            pytest.skip(f"{result.status}: {result.message}")
        if result.status == "warn":
            warnings.warn(ConformanceWarning(f"{result.code} {result.message}"), stacklevel=1)
            return
        if result.status == "fail":
            pytest.fail(
                f"[{result.id}] ({result.obligation}) {result.message}\nrepro: {result.repro}",
                pytrace=False,
            )


def _name(obj: Any) -> str:
    return str(getattr(obj, "__qualname__", None) or type(obj).__name__)


def _cases(
    targets: Sequence[Any],
    checks: Sequence[str] | None,
    exclude_checks: Sequence[str] | None,
    **kwargs: Any,
) -> list[ConformanceCase]:
    # deferred: keeps the plugin cheap (pytest loads it in every session, see above)
    from worldflux.conformance.registry import select_checks

    selected = select_checks(list(checks or []) or None, list(exclude_checks or []) or None)
    return [ConformanceCase(t, c.info.id, **kwargs) for t in targets for c in selected]


def parametrize_conformance(
    targets: Sequence[Any],
    *,
    checks: Sequence[str] | None = None,
    exclude_checks: Sequence[str] | None = None,
    level: str | None = None,
    profile: str = "ci",
    seed: int | None = 0,
    spec: str | None = None,
    max_examples: int | None = None,
    hints: dict[str, Any] | None = None,
    strict: bool = False,
) -> Any:
    """A ``pytest.mark.parametrize`` over ``targets x checks`` of the ``wf_case`` fixture.

    ``targets`` are ids, import paths or objects (classes, factories, instances); ``spec`` a
    ``--spec`` file for external targets. Ids are ``<target>::<check_id>``.
    """
    cases = _cases(
        targets,
        checks,
        exclude_checks,
        level=level,
        profile=profile,
        seed=seed,
        spec=spec,
        max_examples=max_examples,
        hints=hints,
        strict=strict,
    )
    return pytest.mark.parametrize("wf_case", cases, ids=[c.id for c in cases], indirect=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("worldflux-conformance", "worldflux conformance suite")
    group.addoption(
        "--wf-target",
        action="append",
        default=[],
        metavar="TARGET",
        help="model id / alias / module:attr for `wf_case` tests (repeatable; default: all)",
    )
    group.addoption("--wf-spec", default=None, metavar="FILE", help="spec of an external target")
    group.addoption("--wf-level", default=None, help="maturity to check against")
    group.addoption("--wf-profile", default="ci", help="dev | ci | thorough (default ci)")
    group.addoption("--wf-seed", type=int, default=0, help="run seed (default 0)")
    group.addoption("--wf-checks", default=None, metavar="IDS", help="comma-separated ids")
    group.addoption("--wf-max-examples", type=int, default=None, metavar="N")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "wf_case" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        if "wf_case" in str(marker.args[0] if marker.args else ""):
            return  # parametrize_conformance already did it
    config = metafunc.config
    targets = list(config.getoption("--wf-target") or [])
    if not targets:
        targets = WorldModelRegistry.list_types()
    checks = config.getoption("--wf-checks")
    try:
        cases = _cases(
            targets,
            [c for c in checks.split(",") if c] if checks else None,
            None,
            level=config.getoption("--wf-level"),
            profile=config.getoption("--wf-profile"),
            seed=config.getoption("--wf-seed"),
            spec=config.getoption("--wf-spec"),
            max_examples=config.getoption("--wf-max-examples"),
        )
    except Exception as error:
        raise pytest.UsageError(f"worldflux conformance: {error}") from error
    metafunc.parametrize("wf_case", cases, ids=[c.id for c in cases], indirect=True)


@pytest.fixture
def wf_case(request: pytest.FixtureRequest, record_property: Any) -> ConformanceCase:
    """The (target, check) case of a conformance-parametrized test; call ``.run()``."""
    case = getattr(request, "param", None)
    if not isinstance(case, ConformanceCase):
        raise pytest.UsageError(
            "wf_case needs parametrization: use @parametrize_conformance(...) or --wf-target"
        )
    case.record_property = record_property
    return case
