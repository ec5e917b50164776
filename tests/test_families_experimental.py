"""EXPERIMENTAL families (jepa, vjepa2, token, diffusion): every obligation of that maturity.

Each family is built from its shipped spec (see tests/test_families_harness.py) at the ``ci``
preset and driven through the public WorldModel interface.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
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
    registered,
)

from worldflux.core.config import WorldModelConfig
from worldflux.core.model import SpecWorldModel

FAMILIES = ["jepa", "diffusion", "token", "vjepa2"]

Classes = tuple[type[SpecWorldModel], type[WorldModelConfig]]


@pytest.fixture(scope="module", params=FAMILIES)
def classes(request: pytest.FixtureRequest) -> Iterator[Classes]:
    with registered(request.param) as pair:
        yield pair


def test_spec_declares_experimental(classes: Classes) -> None:
    model_cls, _ = classes
    assert model_cls.SPEC["maturity"] == "experimental"


def test_contract(classes: Classes) -> None:
    check_contract(build(*classes))


def test_bad_inputs(classes: Classes) -> None:
    check_bad_inputs(build(*classes))


def test_rollout_equals_transitions(classes: Classes) -> None:
    check_rollout_equivalence(build(*classes))


def test_batch_polymorphism_and_independence(classes: Classes) -> None:
    check_batch_independence(build(*classes))


def test_seeded_determinism_and_no_mutation(classes: Classes) -> None:
    check_determinism_and_no_mutation(lambda: build(*classes))


def test_gradients_reach_every_parameter(classes: Classes) -> None:
    check_gradients(build(*classes))


#: The family's own loss term, which must decrease too (not only the reward / continue heads).
MAIN_COMPONENT = {
    "jepa": "latent",
    "diffusion": "denoising",
    "token": "tokens",
    "vjepa2": "teacher_forcing",
}


def test_overfits_one_batch(classes: Classes) -> None:
    model_cls = classes[0]
    family = model_cls.__name__.removeprefix("WFTest").removesuffix("Model").lower()
    check_overfit(build(*classes), main=MAIN_COMPONENT[family])


def test_save_load_round_trip(classes: Classes, tmp_path: Path) -> None:
    check_save_load(build(*classes), tmp_path)


def test_discrete_actions(classes: Classes) -> None:
    model = build(*classes, action_type="discrete", action_dim=4)
    check_contract(model)
    check_rollout_equivalence(model)


def test_preset_param_counts(classes: Classes) -> None:
    """Each preset's ``params`` in the spec is the measured trainable count at default_env."""
    model_cls, config_cls = classes
    family = model_cls.__name__.removeprefix("WFTest").removesuffix("Model").lower()
    spec = load_spec(family)
    for name, preset in spec["presets"].items():
        model = build(model_cls, config_cls, preset=name)
        assert model.num_parameters() == preset["params"], name


def test_family_slots_refuse_foreign_models() -> None:
    """Family-specific slots raise ConfigurationError (a refused swap) outside their family."""
    from worldflux.core.exceptions import ConfigurationError

    with registered("jepa") as pair:
        model = build(*pair)
        for key in ("diffusion.heads", "vjepa2.heads", "token.decoder"):
            with pytest.raises(ConfigurationError, match=key):
                model.swap_component("decoder", key)
    with registered("diffusion") as pair:
        model = build(*pair)
        model.composable_support.add("observation_encoder")
        for key in ("token.tokenizer", "vjepa2.encoder", "jepa.encoder"):
            with pytest.raises(ConfigurationError):
                model.swap_component("observation_encoder", key)


def test_jepa_decoder_swap_to_generic_heads() -> None:
    """A compatible swap (the generic mlp_decoder) works end to end: rollout, loss, grads."""
    with registered("jepa") as pair:
        model = build(*pair)
        # JEPA has no reconstruction loss, so the generic heads come without an obs head
        model.swap_component("decoder", "mlp_decoder", {"predict_obs": False})
        check_contract(model)
        check_gradients(model)
