"""SKELETON families (dit, ssm, renderer3d, physics, gan): the I/O contract and the build, plus the
cheaper obligations of higher levels (they are honest minimal models, so they hold them too).

Each family is built from its shipped spec (see tests/test_families_harness.py) at ``ci``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_families_harness import (
    build,
    check_bad_inputs,
    check_batch_independence,
    check_contract,
    check_determinism_and_no_mutation,
    check_gradients,
    check_overfit,
    check_rollout_equivalence,
    check_save_load,
    load_spec,
    random_batch,
    registered,
)

from worldflux.core.config import WorldModelConfig
from worldflux.core.model import SpecWorldModel

FAMILIES = ["ssm", "physics", "gan", "dit", "renderer3d"]
#: DiT zero-initialises its output layer and every adaLN-Zero modulation, so at initialisation
#: no gradient reaches the layers behind them (by design); three optimiser steps open the path.
GRADIENT_EXEMPT = {"dit"}

Classes = tuple[type[SpecWorldModel], type[WorldModelConfig]]


@pytest.fixture(scope="module", params=FAMILIES)
def classes(request: pytest.FixtureRequest) -> Iterator[Classes]:
    with registered(request.param) as pair:
        yield pair


def _family(classes: Classes) -> str:
    return classes[0].__name__.removeprefix("WFTest").removesuffix("Model").lower()


def test_spec_declares_skeleton(classes: Classes) -> None:
    assert classes[0].SPEC["maturity"] == "skeleton"


def test_builds_from_every_preset(classes: Classes) -> None:
    spec = load_spec(_family(classes))
    for name, preset in spec["presets"].items():
        model = build(*classes, preset=name)
        assert model.num_parameters() == preset["params"], name


def test_contract(classes: Classes) -> None:
    check_contract(build(*classes))


def test_discrete_actions(classes: Classes) -> None:
    check_contract(build(*classes, action_type="discrete", action_dim=4))


def test_bad_inputs(classes: Classes) -> None:
    check_bad_inputs(build(*classes))


def test_rollout_equals_transitions(classes: Classes) -> None:
    check_rollout_equivalence(build(*classes))


def test_batch_polymorphism_and_independence(classes: Classes) -> None:
    check_batch_independence(build(*classes))


def test_seeded_determinism_and_no_mutation(classes: Classes) -> None:
    check_determinism_and_no_mutation(lambda: build(*classes))


def test_gradients_reach_every_parameter(classes: Classes) -> None:
    model = build(*classes)
    if _family(classes) in GRADIENT_EXEMPT:  # a few steps open the zero-initialised layers
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(3):
            opt.zero_grad()
            model.loss(random_batch(model, b=3, t=4)).loss.backward()
            opt.step()
        model.eval()
    check_gradients(model)


def test_overfits_one_batch(classes: Classes) -> None:
    check_overfit(build(*classes), steps=40)


def test_save_load_round_trip(classes: Classes, tmp_path: Path) -> None:
    check_save_load(build(*classes), tmp_path)


#: For each declared composable slot (other than the rollout executor), alternatives that work.
WORKING_SWAPS = {
    "dit": [("observation_encoder", "jepa.encoder")],
    "gan": [
        ("observation_encoder", "jepa.encoder"),
        ("dynamics_model", "mlp_dynamics"),
        ("dynamics_model", "gru_dynamics"),
        ("dynamics_model", "jepa.predictor"),
    ],
    "renderer3d": [
        ("observation_encoder", "mlp_encoder"),
        ("dynamics_model", "gru_dynamics"),
        ("dynamics_model", "jepa.predictor"),
    ],
}


def test_declared_composable_slots_swap(classes: Classes) -> None:
    family = _family(classes)
    declared = set(classes[0].SPEC.get("composable", ())) - {"rollout_executor"}
    swaps = WORKING_SWAPS.get(family, [])
    assert {slot for slot, _ in swaps} == declared
    for slot, key in swaps:
        model = build(*classes)
        model.swap_component(slot, key)
        check_contract(model)
