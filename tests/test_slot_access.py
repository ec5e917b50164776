"""``slot_as``: typed access to a model's slots, and no ``Any``-typed slot reads left behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from worldflux.core.components import Decoder, ObservationEncoder
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.model import WorldModel
from worldflux.core.slot_access import slot_as
from worldflux.core.types import Batch
from worldflux.factory import create_world_model
from worldflux.families.jepa.objective import JEPAObjective
from worldflux.families.jepa.slots import JEPAEncoder, JEPAHeads
from worldflux.families.tdmpc2.slots import TDMPC2Heads

ROOT = Path(__file__).resolve().parents[1]


def _jepa() -> WorldModel:
    torch.manual_seed(0)
    return create_world_model("jepa:ci", obs_shape=(5,), action_dim=3)


def test_returns_the_module_in_the_slot_typed_as_asked() -> None:
    model = _jepa()
    encoder = slot_as(model, "observation_encoder", JEPAEncoder)
    assert encoder is model.observation_encoder
    assert slot_as(model, "observation_encoder", ObservationEncoder) is encoder  # a base class
    assert slot_as(model, "decoder", JEPAHeads) is model.decoder_module  # slot name, not attr
    assert isinstance(slot_as(model, "objective", JEPAObjective), JEPAObjective)
    encoder.update_target(0.5)  # typed: a JEPA method, no cast


def test_another_implementation_in_the_slot_is_a_configuration_error_naming_it() -> None:
    model = _jepa()
    model.swap_component("decoder", "mlp_decoder", {"predict_obs": False})
    assert isinstance(slot_as(model, "decoder", Decoder), Decoder)  # still a Decoder
    with pytest.raises(ConfigurationError) as caught:
        slot_as(model, "decoder", JEPAHeads)
    message = str(caught.value)
    for name in ("JEPAWorldModel", "decoder slot", "JEPAHeads", "MLPDecoder"):
        assert name in message, (name, message)
    with pytest.raises(ConfigurationError, match=r"JEPAWorldModel: the decoder slot .*TDMPC2"):
        slot_as(model, "decoder", TDMPC2Heads)


def test_an_objective_refuses_a_swapped_in_slot_it_cannot_use_by_name(toy_batch: Batch) -> None:
    """A generic encoder swapped into JEPA: its objective needs the EMA target of JEPA's own
    encoder, and says so (instead of an AttributeError inside the loss)."""
    model = _jepa()
    model.composable_support.add("observation_encoder")
    latent = int(model.config.latent_dim)  # type: ignore[attr-defined]
    model.swap_component("observation_encoder", "mlp_encoder", {"latent": latent})
    with pytest.raises(ConfigurationError, match=r"observation_encoder slot must hold a JEPAEnc"):
        model.loss(toy_batch)
    with pytest.raises(ConfigurationError, match=r"found MLPEncoder"):
        model.objective.after_step(model)  # type: ignore[operator]


def test_empty_slots_and_unknown_names() -> None:
    model = _jepa()
    model.decoder_module = None
    with pytest.raises(ConfigurationError, match=r"decoder slot must hold .*found nothing"):
        slot_as(model, "decoder", nn.Module)
    with pytest.raises(ConfigurationError, match=r"unknown slot 'decodr'.*'decoder'"):
        slot_as(model, "decodr", nn.Module)


#: a slot read cast to Any (what ``slot_as`` replaces): ``x: Any = model.decoder_module``
_ANY_SLOT_READ = re.compile(r":\s*Any\s*=\s*(self\.)?model\.")


def test_no_any_typed_slot_reads_in_worldflux_or_conformance() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in ("worldflux", "conformance")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _ANY_SLOT_READ.search(line)
    ]
    assert not offenders, "use worldflux.core.slot_access.slot_as instead:\n" + "\n".join(offenders)
