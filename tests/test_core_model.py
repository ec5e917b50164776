"""WorldModel: delegation to the five slots, input validation, capabilities, swap_component."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from worldflux.core.components import ObservationEncoder
from worldflux.core.exceptions import (
    CapabilityError,
    ConfigurationError,
    ContractViolation,
    ShapeMismatchError,
)
from worldflux.core.model import WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.spec import Capability
from worldflux.core.types import Batch, LossOutput, State
from worldflux.factory import create_world_model

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def obs_batch(b: int = 3) -> torch.Tensor:
    return torch.randn(b, 5, generator=torch.Generator().manual_seed(b))


def actions(b: int = 3, h: int | None = None) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    shape = (b, 3) if h is None else (b, h, 3)
    return torch.rand(*shape, generator=gen) * 2 - 1


# -- delegation -----------------------------------------------------------------------------------
def test_methods_delegate_to_the_slots(toy_model: WorldModel) -> None:
    model: Any = toy_model
    obs = obs_batch()
    state = model.encode(obs)
    assert torch.equal(state["latent"], model.observation_encoder(obs)["latent"])
    action = actions()
    nxt = model.transition(state, action)
    expected = model.dynamics_model(state, model.action_conditioner(state, action))
    assert torch.equal(nxt["latent"], expected["latent"])
    out = model.decode(nxt)
    assert torch.equal(out.predictions["reward"], model.decoder_module(nxt).predictions["reward"])
    assert set(model.slot_modules()) == set(WorldModelRegistry._component_slots)
    assert all(isinstance(m, nn.Module) for m in model.slot_modules().values())


def test_rollout_equals_repeated_transition_and_decode(toy_model: WorldModel) -> None:
    state = toy_model.encode(obs_batch())
    acts = actions(h=4)
    traj = toy_model.rollout(state, acts)
    assert traj.states["latent"].shape == (3, 5, 8)
    assert traj.rewards.shape == (3, 4) and traj.continues.shape == (3, 4)
    current = state
    for t in range(4):
        current = toy_model.transition(current, acts[:, t])
        out = toy_model.decode(current)
        assert torch.allclose(traj.states.index(t + 1)["latent"], current["latent"])
        assert torch.allclose(traj.rewards[:, t], out.predictions["reward"])


def test_capabilities_and_composable_support_come_from_the_spec(toy_model: WorldModel) -> None:
    assert toy_model.capabilities == {
        Capability.LATENT_DYNAMICS,
        Capability.REWARD_PRED,
        Capability.CONTINUE_PRED,
    }
    assert toy_model.composable_support == {"observation_encoder", "decoder"}
    assert toy_model.bound_contract().state["latent"].shape == (8,)
    assert toy_model.bound_contract().observation["obs"].shape == (5,)
    assert "model_type='wf_toy'" in repr(toy_model)


def test_loss_goes_through_the_objective_and_validates_the_batch(
    toy_model: WorldModel, toy_batch: Batch
) -> None:
    out = toy_model.loss(toy_batch)
    assert isinstance(out, LossOutput) and out.loss.dim() == 0 and torch.isfinite(out.loss)
    toy_model.bound_contract().validate_loss(out.components)
    out.loss.backward()
    grads = {n for n, p in toy_model.named_parameters() if p.grad is not None}
    assert any(n.startswith("observation_encoder.") for n in grads)
    assert toy_model.loss(toy_batch.as_dict()).loss.item() == pytest.approx(out.loss.item())
    with pytest.raises(ContractViolation, match=r"batch\['rewards'\]: expected shape \[2, 4\]"):
        toy_model.loss(toy_batch.replace(rewards=torch.zeros(2, 3)))
    with pytest.raises(ContractViolation, match=r"batch: missing keys \['is_first'\]"):
        toy_model.loss({k: v for k, v in toy_batch.items() if k != "is_first"})


def test_missing_slots_and_capabilities_raise_capability_errors(toy_model: Any) -> None:
    class Bare(WorldModel):
        def loss(self, batch: Batch) -> LossOutput:
            raise NotImplementedError

    with pytest.raises(CapabilityError, match="Bare has no observation_encoder slot"):
        Bare().encode(torch.zeros(2, 4), validate=False)
    with pytest.raises(CapabilityError, match="has no planner"):
        toy_model.plan(obs_batch())
    toy_model.objective = None
    with pytest.raises(CapabilityError, match="declares no objective"):
        toy_model.loss({})
    with pytest.raises(TypeError):
        WorldModel()  # type: ignore[abstract]


def test_a_spec_must_declare_all_five_slots(toy_model: WorldModel) -> None:
    spec = dict(type(toy_model).SPEC)  # type: ignore[attr-defined]
    spec["slots"] = {k: v for k, v in spec["slots"].items() if k != "decoder"}

    class Partial(type(toy_model)):  # type: ignore[misc]
        SPEC = spec

    with pytest.raises(ConfigurationError, match=r"SPEC\['slots'\] lacks \['decoder'\]"):
        Partial(toy_model.config)


# -- validation -----------------------------------------------------------------------------------
@fixture_ok
@given(
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=4).map(tuple),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64, torch.uint8, torch.bool]),
)
def test_encode_rejects_every_malformed_observation(
    toy_model: WorldModel, shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    obs = torch.zeros(shape, dtype=dtype)
    well_formed = len(shape) == 2 and shape[0] > 0 and shape[1] == 5 and dtype.is_floating_point
    if well_formed:
        assert toy_model.encode(obs)["latent"].shape == (shape[0], 8)
    else:
        with pytest.raises(ContractViolation, match=r"^\[WF30\d\] obs: expected"):
            toy_model.encode(obs)


@fixture_ok
@given(
    batch=st.integers(1, 4),
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple),
    dtype=st.sampled_from([torch.float32, torch.int64, torch.bool]),
)
def test_transition_rejects_every_malformed_action(
    toy_model: WorldModel, batch: int, shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    state = toy_model.encode(obs_batch(batch))
    action = torch.zeros(shape, dtype=dtype)
    if shape == (batch, 3) and dtype == torch.float32:
        assert toy_model.transition(state, action)["latent"].shape == (batch, 8)
    else:
        with pytest.raises(ContractViolation, match=r"^\[WF30\d\] action: expected"):
            toy_model.transition(state, action)


def test_bad_states_are_contract_violations(toy_model: WorldModel) -> None:
    state = toy_model.encode(obs_batch(3))
    with pytest.raises(ContractViolation, match=r"state: expected keys \['latent'\], missing"):
        toy_model.transition(State(h=torch.zeros(3, 8)), actions(3))
    with pytest.raises(ShapeMismatchError, match=r"state\['latent'\]: expected shape \[B, 8\]"):
        toy_model.decode(State(latent=torch.zeros(3, 7)))
    with pytest.raises(
        ShapeMismatchError, match=r"action: expected shape \[3, 3\], found \[2, 3\]"
    ):
        toy_model.transition(state, actions(2))
    with pytest.raises(ContractViolation, match="state: expected a State"):
        toy_model.decode(torch.zeros(3, 8))  # type: ignore[arg-type]
    with pytest.raises(ContractViolation, match=r"state\['latent'\]: expected finite values"):
        toy_model.decode(State(latent=torch.full((3, 8), float("nan"))))
    with pytest.raises(
        ShapeMismatchError, match=r"state\['latent'\]: expected shape \[2, 8\], found \[3, 8\]"
    ):
        toy_model.encode(obs_batch(2), state=state, action=actions(2))
    with pytest.raises(ShapeMismatchError, match=r"action: expected shape \[2, 3\]"):
        toy_model.encode(obs_batch(2), action=actions(3))


def test_rollout_checks_actions_against_the_state(toy_model: WorldModel) -> None:
    state = toy_model.encode(obs_batch(3))
    with pytest.raises(ShapeMismatchError, match=r"actions: expected shape \[3, H, 3\]"):
        toy_model.rollout(state, actions(2, h=4))
    with pytest.raises(ShapeMismatchError, match="actions: expected rank 3"):
        toy_model.rollout(state, actions(3))
    with pytest.raises(ContractViolation, match="actions: expected a horizon H >= 1"):
        toy_model.rollout(state, torch.zeros(3, 0, 3))


def test_validation_can_be_switched_off(toy_model: WorldModel) -> None:
    obs = torch.zeros(3, 5, dtype=torch.float64)
    with pytest.raises(RuntimeError):  # unvalidated: torch itself complains
        toy_model.encode(obs, validate=False)
    toy_model.validate_inputs = False
    with pytest.raises(RuntimeError):
        toy_model.encode(obs)


def test_other_float_dtypes_are_cast_to_the_model_dtype(toy_model: WorldModel) -> None:
    obs = obs_batch()
    reference = toy_model.encode(obs)["latent"]
    as_double = toy_model.encode(obs.double())["latent"]
    assert as_double.dtype == torch.float32 and torch.allclose(as_double, reference)
    toy_model.double()
    state = toy_model.encode(obs)
    assert state["latent"].dtype == torch.float64
    traj = toy_model.rollout(state, actions(h=2))
    assert traj.rewards.dtype == torch.float64
    init = toy_model.initial_state(3)
    assert isinstance(init, State) and len(init) == 0
    assert toy_model.encode(obs, state=init)["latent"].shape == (3, 8)


def test_a_declared_float32_is_exact_and_follows_the_models_precision(
    toy_model: WorldModel,
) -> None:
    """``float32`` observations refuse float64; a converted model's states are its dtype, and
    its checkpoint fingerprint is the declared contract's."""
    strict = toy_model.declared_contract()
    obs_spec = replace(strict.observation["obs"], dtype="float32")
    with pytest.raises(ContractViolation, match="obs: expected dtype float32, found float64"):
        obs_spec.validate("obs", obs_batch().double(), (3,))
    assert toy_model.bound_contract().state["latent"].dtype == "float32"
    toy_model.double()
    assert toy_model.bound_contract().state["latent"].dtype == "float64"
    assert toy_model.bound_contract().observation["obs"].dtype == "float"
    assert toy_model.declared_contract().state["latent"].dtype == "float32"
    with pytest.raises(ContractViolation, match=r"state\['latent'\]: expected dtype float64"):
        toy_model.transition(State(latent=torch.zeros(3, 8)), actions(h=1)[:, 0])


def test_inputs_follow_the_model_to_its_device(toy_model: WorldModel) -> None:
    """CPU inputs are validated, then moved to the model's device (meta: no compute needed)."""
    toy_model.to("meta")
    state = toy_model.encode(obs_batch())
    assert state["latent"].device.type == "meta" and state["latent"].shape == (3, 8)
    assert toy_model.initial_state(3) == State()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_round_trip(toy_model: WorldModel, toy_batch: Batch) -> None:
    cpu_loss = toy_model.loss(toy_batch).loss
    toy_model.to("cuda")
    state = toy_model.encode(obs_batch())  # CPU inputs, CUDA model
    assert state["latent"].is_cuda
    traj = toy_model.rollout(state, actions(h=3))
    assert traj.rewards.is_cuda and traj.to("cpu").rewards.device.type == "cpu"
    gpu_loss = toy_model.loss(toy_batch.to("cuda")).loss
    assert torch.allclose(gpu_loss.cpu(), cpu_loss, atol=1e-5)
    assert toy_model.loss(toy_batch).loss.is_cuda  # a CPU batch is moved too


def test_discrete_actions(toy_model_type: str) -> None:
    model = create_world_model(
        f"{toy_model_type}:ci", obs_shape=(5,), action_dim=4, action_type="discrete"
    )
    assert model.bound_contract().action.kind == "discrete"
    state = model.encode(obs_batch(2))
    assert model.transition(state, torch.tensor([0, 3]))["latent"].shape == (2, 8)
    assert model.rollout(state, torch.tensor([[0, 1, 2], [3, 2, 1]])).horizon == 3
    with pytest.raises(
        ContractViolation, match=r"action: expected discrete action indices in \[0, 4\)"
    ):
        model.transition(state, torch.tensor([0, 4]))
    with pytest.raises(ContractViolation, match="action: expected dtype int64, found float32"):
        model.transition(state, torch.tensor([0.0, 1.0]))
    with pytest.raises(ContractViolation, match=r"actions: expected discrete action indices"):
        model.rollout(state, torch.tensor([[0, -1]] * 2))


# -- swap_component -------------------------------------------------------------------------------
def test_swap_by_key_with_params_and_train_through_it(
    toy_model: WorldModel, toy_batch: Batch
) -> None:
    new = toy_model.swap_component("observation_encoder", "wftest/mlp_encoder", {"hidden": 6})
    assert toy_model.observation_encoder is new
    assert toy_model.component_overrides == {
        "observation_encoder": {"impl": "wftest/mlp_encoder", "params": {"hidden": 6}}
    }
    assert toy_model.encode(obs_batch())["latent"].shape == (3, 8)
    toy_model.loss(toy_batch).loss.backward()
    assert all(p.grad is not None for p in new.parameters())


def test_swap_errors(toy_model: WorldModel) -> None:
    with pytest.raises(ConfigurationError, match="unknown slot 'decodr'; did you mean 'decoder'"):
        toy_model.swap_component("decodr", "wftest/decoder")
    with pytest.raises(ConfigurationError, match="does not support swapping 'dynamics_model'"):
        toy_model.swap_component("dynamics_model", "wftest/dynamics")
    with pytest.raises(ConfigurationError, match="no observation_encoder implementation"):
        toy_model.swap_component("observation_encoder", "wftest/nope")
    with pytest.raises(ConfigurationError, match=r"unknown param 'hiden'; did you mean 'hidden'"):
        toy_model.swap_component("observation_encoder", "wftest/mlp_encoder", {"hiden": 3})
    with pytest.raises(ConfigurationError, match="is a 'decoder' implementation"):
        toy_model.swap_component("observation_encoder", toy_model.decoder_module)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"expected a registry key or an nn\.Module"):
        toy_model.swap_component("decoder", 42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="params apply to registry keys only"):
        toy_model.swap_component("decoder", nn.Identity(), {"x": 1})
    assert toy_model.component_overrides == {}


def test_swap_by_module_follows_the_model_dtype(toy_model: WorldModel) -> None:
    class Plain(ObservationEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(5, 8)

        def forward(self, obs: Any) -> State:
            return State(latent=self.net(obs))

    toy_model.double()
    module = toy_model.swap_component("observation_encoder", Plain())
    assert next(module.parameters()).dtype == torch.float64
    assert toy_model.encode(obs_batch())["latent"].dtype == torch.float64
    assert toy_model.component_overrides == {"observation_encoder": None}  # not saveable


def test_swap_of_an_implementation_that_cannot_serve_the_model_is_refused(
    toy_model: WorldModel,
) -> None:
    class WrongWidth(ObservationEncoder):
        """Encodes into a latent of the wrong width: the dynamics cannot read it."""

        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(toy_model.config.obs_shape[-1], 3)

        def forward(self, obs: Any) -> State:
            return State(latent=self.proj(obs))

    before, wrong = toy_model.observation_encoder, WrongWidth()
    rng = torch.random.get_rng_state()
    with pytest.raises(ConfigurationError, match=r"observation_encoder=WrongWidth cannot serve"):
        toy_model.swap_component("observation_encoder", wrong)
    assert toy_model.observation_encoder is before
    assert "observation_encoder" not in toy_model.component_overrides
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_reference_objectives_refuse_decoders_they_cannot_use() -> None:
    model = create_world_model("tdmpc2:ci")
    heads = model.decoder_module
    with pytest.raises(ConfigurationError, match=r"tdmpc2\.objective needs the tdmpc2\.heads"):
        model.swap_component("decoder", "jepa.heads")
    assert model.decoder_module is heads


def test_swap_to_an_implementation_that_cannot_be_built_is_refused() -> None:
    """A registered implementation whose constructor fails on this model (a raw TypeError from
    a missing hyperparameter) is refused with a ConfigurationError; the old slot is kept."""
    from worldflux.core.components import Decoder
    from worldflux.core.registry import register_component, unregister_component

    @register_component("decoder", "test_unbuildable_decoder")
    class Unbuildable(Decoder):
        def __init__(self, ctx: Any, params: Any) -> None:
            super().__init__()
            self.width = int(ctx.hparam("no_such_width", None))  # TypeError: int(None)

    model = create_world_model("tdmpc2:ci", obs_shape=(4,), action_dim=2)
    before = model.decoder_module
    try:
        with pytest.raises(ConfigurationError, match=r"cannot be built for this model.*TypeError"):
            model.swap_component("decoder", "test_unbuildable_decoder")
        assert model.decoder_module is before
    finally:
        unregister_component("decoder", "test_unbuildable_decoder")
