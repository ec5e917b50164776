"""Kill cases of the behaviour checks (planning.behaviour_*): toys whose declared behaviour makes
the mistakes implementers make (out-of-bound or bare actions, an unseeded generator, a warm start
that reset() keeps, a loss that trains the world model or nothing). Appended to the CASES of
tests/test_conformance_cases.py, which runs them."""

from __future__ import annotations

from typing import Any

import torch
from test_conformance_meta import Planner, good_spec
from torch import Tensor

from worldflux.behaviour import ImaginationActorCritic
from worldflux.core.components import Behaviour
from worldflux.core.types import Batch, LossOutput

_AC = {"impl": "actor_critic", "params": {"units": 8, "imag_length": 3, "bins": 15}}


def _with(behaviour: dict[str, Any] | None = None) -> Any:
    def spec() -> dict[str, Any]:
        data = good_spec()
        data["behaviour"] = behaviour or _AC
        return data

    return spec


class _Attached(Planner):
    """A toy whose behaviour is an instance of ``BEHAVIOUR`` (not a registered key)."""

    BEHAVIOUR: type[Behaviour] = Behaviour

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.behaviour = type(self).BEHAVIOUR()
        self.behaviour.bind(self)


class _Wild(Behaviour):
    def act(self, model: Any, obs: Any, carry: Any = None, **_: Any) -> tuple[Tensor, Any]:
        return torch.full((obs.shape[0], model.config.action_dim), 3.0), None


class _Bare(Behaviour):
    def act(self, model: Any, obs: Any, carry: Any = None, **_: Any) -> Any:
        return torch.zeros(obs.shape[0], model.config.action_dim)


class _Unseeded(Behaviour):
    """Noise from a private generator that nobody seeds: eval runs cannot be reproduced."""

    def __init__(self) -> None:
        super().__init__()
        self.gen = torch.Generator().manual_seed(1234)

    def act(self, model: Any, obs: Any, carry: Any = None, **_: Any) -> tuple[Tensor, Any]:
        noise = torch.rand(obs.shape[0], model.config.action_dim, generator=self.gen)
        return noise * 2 - 1, None


class _StickyWarmStart(Behaviour):
    """A planner-like warm start that reset() forgets to clear."""

    def __init__(self) -> None:
        super().__init__()
        self.mean: Tensor | None = None

    def act(self, model: Any, obs: Any, carry: Any = None, **_: Any) -> tuple[Tensor, Any]:
        b, a = obs.shape[0], model.config.action_dim
        self.mean = torch.zeros(b, a) if self.mean is None else (self.mean + 0.1).clamp(-1, 1)
        return self.mean, None


class _Leaky(ImaginationActorCritic):
    """Imagines with gradients on: the policy loss trains the world model too."""

    def loss(self, model: Any, batch: Batch) -> LossOutput:
        out = super().loss(model, batch)
        leak = model.encode(batch["obs"][:, 0])["latent"].pow(2).mean()
        return LossOutput(loss=out.loss + leak, components=out.components, metrics=out.metrics)


class _Inert(ImaginationActorCritic):
    """A loss that reaches none of the behaviour's parameters."""

    def loss(self, model: Any, batch: Batch) -> LossOutput:
        out = super().loss(model, batch)
        zero = sum(((p * 0.0).sum() for p in self.parameters()), torch.zeros(()))
        return LossOutput(loss=zero, components=out.components, metrics=out.metrics)


def _attached(behaviour: type[Behaviour]) -> type[Planner]:
    return type(f"With{behaviour.__name__}", (_Attached,), {"BEHAVIOUR": behaviour})


def _learning(behaviour: type[ImaginationActorCritic]) -> type[Planner]:
    class WithLearning(Planner):
        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.behaviour = behaviour(self._ctx, type(self.behaviour.p)(**_AC["params"]))  # type: ignore[union-attr]
            self.behaviour.bind(self)

    WithLearning.__name__ = f"With{behaviour.__name__}"
    return WithLearning


ACTS, SAME, ISOLATED = (
    "planning.behaviour_acts",
    "planning.behaviour_deterministic",
    "planning.behaviour_gradient_isolation",
)

BEHAVIOUR_CASES: list[tuple[Any, ...]] = [
    (ACTS, Planner, "pass", "", _with(), False),
    (ACTS, Planner, "pass", "", _with({"impl": "goal_cem", "params": {"num_samples": 16}}), False),
    (ACTS, Planner, "not-exercised", "declares no behaviour", None, False),
    (ACTS, _attached(_Wild), "fail", "expected actions in", None, False),
    (ACTS, _attached(_Bare), "fail", "expected (action, carry)", None, False),
    (SAME, Planner, "pass", "", _with(), False),
    (
        SAME,
        Planner,
        "pass",
        "",
        _with({"impl": "cem", "params": {"num_samples": 16, "num_elites": 4, "num_pi_trajs": 0}}),
        False,
    ),
    (SAME, _attached(_Unseeded), "fail", "differ under the same seed", None, False),
    (SAME, _attached(_StickyWarmStart), "fail", "differ under the same seed", None, False),
    (ISOLATED, Planner, "pass", "", _with(), False),
    (ISOLATED, Planner, "not-exercised", "does not learn", _with({"impl": "cem"}), False),
    (ISOLATED, _learning(_Leaky), "fail", "sends gradient into the world model", _with(), False),
    (ISOLATED, _learning(_Inert), "fail", "no gradient to the behaviour", _with(), False),
]
