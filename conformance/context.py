"""The context a check runs in: the target, its built model, its bound contract, the profile.

Checks raise :class:`CheckFailed` (an ``AssertionError``) with a message stating what was
expected and what was found; :class:`CheckSkipped` when the check does not apply and
:class:`NotExercised` when there was nothing to exercise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, example, given, register_random, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from torch import Tensor
from worldflux.conformance.guard import global_snapshot, manual_seed, snapshot_changes
from worldflux.conformance.profiles import PROFILES, Profile, example_database
from worldflux.conformance.registry import CheckInfo, Cost
from worldflux.conformance.strategies import Case, cases, clone_tree
from worldflux.conformance.target import Target

from worldflux.core.spec import Capability, ModelIOContract
from worldflux.core.types import LossOutput, ModelOutput, State, Trajectory

__all__ = [
    "PROFILES",
    "CheckContext",
    "CheckFailed",
    "CheckSkipped",
    "NotExercised",
    "Profile",
    "RunOptions",
]


class CheckFailed(AssertionError):
    """The target violates the clause the check enforces."""


class CheckSkipped(Exception):
    """The check does not apply to this target (status ``skip``)."""


class NotExercised(Exception):
    """The check applies but nothing could exercise it (status ``not-exercised``)."""


#: Hints of targets that cannot declare them (none today: a model spec declares its hints in its
#: ``conformance:`` block, e.g. DreamerV3's ``stochastic_eval``).
KNOWN_HINTS: dict[str, dict[str, Any]] = {}

_COST_FACTOR = {Cost.CHEAP: 1.0, Cost.MEDIUM: 0.5, Cost.EXPENSIVE: 0.25}
_BUDGET_FACTOR = {Cost.CHEAP: 1.0, Cost.MEDIUM: 2.0, Cost.EXPENSIVE: 4.0}


@dataclass
class RunOptions:
    """Everything that shapes a run except the targets and the checks.

    Attributes:
        profile: ``dev`` / ``ci`` / ``thorough``.
        seed: the run seed (model builds, Hypothesis).
        max_examples: overrides the profile's examples of a cheap check.
        time_budget: overrides the per-check budget (seconds) of a cheap check.
        hints: per-run hints: ``seq_lens`` (training batch lengths), ``swap_candidates``
            (slot -> implementation keys to try in ``slots.swap``).
        threads: intra-op torch threads for the run (None: leave as is).
        isolate: None, ``"target"`` or ``"check"`` (subprocess per target / per check).
        memory_limit: address-space limit in bytes of each isolated subprocess.
    """

    profile: Profile = field(default_factory=lambda: PROFILES["dev"])
    seed: int = 0
    max_examples: int | None = None
    time_budget: float | None = None
    hints: dict[str, Any] = field(default_factory=dict)
    threads: int | None = 1
    isolate: str | None = None
    memory_limit: int | None = None

    def examples(self, cost: Cost) -> int:
        base = self.max_examples if self.max_examples is not None else self.profile.max_examples
        return max(1, int(base * _COST_FACTOR[cost]))

    def budget(self, cost: Cost) -> float:
        base = self.time_budget if self.time_budget is not None else self.profile.budget_s
        return base * _BUDGET_FACTOR[cost]


class _TorchRandom:
    """The global torch RNG seen as a ``random.Random`` by :func:`hypothesis.register_random`:
    Hypothesis seeds it before each example and restores it afterwards."""

    def seed(self, value: int) -> None:
        manual_seed(int(value) % (2**63))

    def getstate(self) -> Tensor:
        return torch.random.get_rng_state()

    def setstate(self, state: Tensor) -> None:
        torch.random.set_rng_state(state)


_TORCH_RANDOM: _TorchRandom | None = None


def register_torch_random() -> None:
    """Register the global torch RNG with Hypothesis (once, lazily)."""
    global _TORCH_RANDOM
    if _TORCH_RANDOM is None:
        _TORCH_RANDOM = _TorchRandom()
        register_random(_TORCH_RANDOM)


class CheckContext:
    """What one check sees. ``model()`` gives a fresh copy of the target's built model."""

    def __init__(
        self,
        target: Target,
        info: CheckInfo,
        options: RunOptions,
        prototype: Any,
        contract: ModelIOContract | None,
        build_error: str | None = None,
        replay: dict[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.info = info
        self.options = options
        self._prototype = prototype
        self._contract = contract
        self.build_error = build_error
        self.replay = replay
        self.recorded: dict[str, Any] | None = None
        self.notes: list[str] = []

    # -- the model -------------------------------------------------------------------------------
    @property
    def has_model(self) -> bool:
        return self._prototype is not None

    def model(self) -> Any:
        """A fresh deep copy of the built model (the same weights for every call)."""
        if self._prototype is None:
            raise CheckFailed(f"the model could not be built: {self.build_error}")
        try:
            return copy.deepcopy(self._prototype)
        except Exception as error:  # not deep-copyable: rebuild (slow; serde.copyable fails)
            self.notes.append(f"deepcopy failed ({type(error).__name__}: {error}); rebuilt")
            return self.call("building the model", self.build, self.options.seed)

    def build(self, seed: int) -> Any:
        """Build a new model from the target's factory with the global RNG seeded by ``seed``."""
        manual_seed(seed)
        return self.target.factory()

    @property
    def contract(self) -> ModelIOContract:
        """The bound I/O contract."""
        if self._contract is None:
            raise CheckFailed(f"the I/O contract could not be bound: {self.build_error}")
        return self._contract

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.target.spec or {})

    def capabilities(self) -> set[Capability]:
        caps = self.spec.get("capabilities")
        if caps is None and self._prototype is not None:
            caps = getattr(self._prototype, "capabilities", None)
        return {Capability(c) for c in (caps or ())}

    def composable(self) -> list[str]:
        comp = self.spec.get("composable")
        if comp is None and self._prototype is not None:
            comp = getattr(self._prototype, "composable_support", None)
        return sorted(comp or ())

    def hints(self) -> dict[str, Any]:
        """``seq_lens``, ``stochastic_eval``, ``loss_side_effects``, ``swap_candidates``:
        :data:`KNOWN_HINTS`, the spec's ``conformance`` block, the model's
        ``conformance_hints`` attribute, then the run's hints (last wins)."""
        model_type = self.target.model_type or getattr(self._prototype, "model_type", None)
        out: dict[str, Any] = dict(KNOWN_HINTS.get(model_type or "", {}))
        out.update(self.spec.get("conformance") or {})
        if not self.spec and self._prototype is not None:  # an instance of a spec model
            out.update((getattr(self._prototype, "SPEC", None) or {}).get("conformance") or {})
        if self._prototype is not None:
            out.update(getattr(self._prototype, "conformance_hints", None) or {})
        out.update(self.options.hints)
        return out

    def action_conditioned(self) -> set[str]:
        """Predictions that depend on the state *and* the action (hint ``action_conditioned``,
        e.g. ``[reward]``): ``predict(state, action)`` returns them, ``decode(state)`` need not."""
        return {str(k) for k in self.hints().get("action_conditioned") or ()}

    def decode_contract(self) -> ModelIOContract:
        """The bound contract without the action-conditioned predictions (what decode owes)."""
        skip = self.action_conditioned()
        contract = self.contract
        if not skip:
            return contract
        kept = {k: v for k, v in contract.predictions.items() if k not in skip}
        return replace(contract, predictions=kept)

    # -- calling the target --------------------------------------------------------------------
    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the target; any exception becomes a CheckFailed naming the call.

        The global torch state (default dtype, grad mode, deterministic-algorithms flag,
        intra-op threads, live Python threads) is compared before and after *every* call, so
        a change undone later in the same check (or made inside a ``no_grad`` block) is seen.
        """
        before = global_snapshot()
        try:
            out = fn(*args, **kwargs)
        except CheckFailed:
            raise
        except Exception as error:
            raise CheckFailed(f"{what} raised {type(error).__name__}: {error}") from error
        changes = snapshot_changes(before, global_snapshot())
        if changes:
            raise CheckFailed(f"{what} changed global state: " + "; ".join(changes))
        return out

    # -- property-based execution --------------------------------------------------------------
    def hypothesis_settings(self) -> settings:
        profile = self.options.profile
        phases = [Phase.explicit, Phase.reuse, Phase.generate]
        if profile.shrink:
            phases.append(Phase.shrink)
        return settings(
            max_examples=self.options.examples(self.info.cost),
            deadline=None,
            derandomize=False,
            phases=phases,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=True,
            database=example_database(profile),
        )

    def seq_lens(self) -> tuple[int, ...]:
        """Training batch lengths ``T`` (the ``seq_lens`` hint, else ``(2, 3, 4)``)."""
        return tuple(int(t) for t in (self.hints().get("seq_lens") or (2, 3, 4)))

    def explicit_cases(self, *, min_batch: int = 1) -> tuple[Case, Case]:
        """The two examples every property runs at every profile, before the drawn ones: the
        minimal case (``B = min_batch, H = 1``, shortest ``T``, unit scale) and a typical one
        (``B >= 3``, ``H = B + 1`` so a batch axis and a time axis cannot be confused, the
        longest ``T``, scale 2.5, sample ``i = 1``)."""
        lens = self.seq_lens()
        seed = int(self.options.seed)
        minimal = Case(min_batch, 1, min(lens), seed, 1.0, "uniform", 0)
        batch = max(3, min_batch)
        typical = Case(batch, batch + 1, max(lens), seed + 1, 2.5, "uniform", 1)
        return minimal, typical

    def cases(self, *, min_batch: int = 1) -> st.SearchStrategy[Case]:
        profile = self.options.profile
        return cases(
            max_batch=max(profile.max_batch, min_batch),
            max_horizon=profile.max_horizon,
            seq_lens=self.seq_lens(),
            min_batch=min_batch,
        )

    def record(self, inputs: Mapping[str, Any]) -> None:
        """Remember the inputs of the current example (saved to the crash file on failure)."""
        self.recorded = clone_tree(dict(inputs))

    def property(self, prop: Callable[[dict[str, Any]], None], *, min_batch: int = 1) -> None:
        """Run ``prop(inputs)`` on Hypothesis-drawn inputs (see ``Case.materialize``).

        The minimal and the typical case (:meth:`explicit_cases`) always run first; then the
        profile's drawn examples. In replay mode ``prop`` runs once on the saved inputs instead.
        """
        if self.replay is not None:
            inputs = clone_tree(self.replay)
            self.record(inputs)
            prop(inputs)
            return
        contract = self.contract
        register_torch_random()
        minimal, typical = self.explicit_cases(min_batch=min_batch)

        @hypothesis_seed(self.options.seed)
        @self.hypothesis_settings()
        @given(case=self.cases(min_batch=min_batch))
        @example(case=typical)
        @example(case=minimal)
        def test(case: Case) -> None:
            inputs = case.materialize(contract)
            self.record(inputs)
            prop(inputs)

        test()


# -- output normalisation (a duck-typed target may return plain dicts) -------------------------
def as_state(value: Any, what: str) -> State:
    """A State from a State or a ``dict[str, Tensor]``; anything else fails naming ``what``."""
    if isinstance(value, State):
        return value
    if isinstance(value, Mapping) and all(isinstance(v, Tensor) for v in value.values()):
        return State(dict(value))
    raise CheckFailed(f"{what}: expected a State (mapping of tensors), found {_kind(value)}")


def predictions_of(value: Any, what: str) -> dict[str, Tensor]:
    """The predictions of a ModelOutput or of a ``dict[str, Tensor]``."""
    if isinstance(value, ModelOutput):
        value = value.predictions
    if isinstance(value, Mapping) and all(isinstance(v, Tensor) for v in value.values()):
        return dict(value)
    raise CheckFailed(f"{what}: expected a ModelOutput (predictions dict), found {_kind(value)}")


def as_trajectory(value: Any, what: str) -> Trajectory:
    """A Trajectory (or any object with states / actions / rewards / continues / predictions)."""
    if isinstance(value, Trajectory):
        return value
    needed = ("states", "actions", "rewards")
    if all(hasattr(value, n) for n in needed):
        return Trajectory(
            states=as_state(value.states, f"{what}.states"),
            actions=value.actions,
            rewards=value.rewards,
            continues=getattr(value, "continues", None),  # type: ignore[arg-type]
            predictions=dict(getattr(value, "predictions", {}) or {}),
        )
    raise CheckFailed(f"{what}: expected a Trajectory, found {_kind(value)}")


def as_loss(value: Any, what: str) -> LossOutput:
    """A LossOutput (or any object with ``loss`` and ``components``)."""
    if isinstance(value, LossOutput):
        return value
    if hasattr(value, "loss") and hasattr(value, "components"):
        return LossOutput(loss=value.loss, components=dict(value.components))
    raise CheckFailed(f"{what}: expected a LossOutput, found {_kind(value)}")


def _kind(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a Tensor of shape {list(value.shape)}"
    return type(value).__name__


def seeded(seed: int) -> None:
    """Seed the global torch RNG (with torch's own function, not the spied one)."""
    manual_seed(int(seed) % (2**63))


def set_mode(model: Any, training: bool) -> None:
    """``model.train(training)`` when the target has it."""
    train = getattr(model, "train", None)
    if callable(train):
        train(training)


def tensors_equal(a: Any, b: Any, *, atol: float = 0.0, rtol: float = 0.0, path: str = "") -> str:
    """ "" when two nested structures of tensors agree, else the first difference (with path)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape:
            return f"{path}: shape {list(a.shape)} != {list(b.shape)}"
        if a.dtype != b.dtype:
            return f"{path}: dtype {a.dtype} != {b.dtype}"
        if a.is_floating_point():
            same = torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True)
        else:
            same = torch.equal(a, b)
        if not same:
            diff = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
            return f"{path}: values differ (max abs diff {diff:.3g})"
        return ""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            found = tensors_equal(a[key], b[key], atol=atol, rtol=rtol, path=f"{path}[{key!r}]")
            if found:
                return found
        return ""
    return "" if a == b else f"{path}: {a!r} != {b!r}"
