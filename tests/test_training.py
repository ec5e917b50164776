"""Trainer: contract validation before compute, update protocol, clipping, NaN guard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import worldflux
from worldflux.core.exceptions import ContractViolation
from worldflux.core.model import WorldModel
from worldflux.core.types import Batch
from worldflux.training.errors import NonFiniteError
from worldflux.training.replay import ReplayBuffer
from worldflux.training.toy import registered_toy_model
from worldflux.training.trainer import Trainer, TrainerConfig

B, T, OBS, ACT = 8, 4, 3, 2


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy() -> Iterator[None]:
    with registered_toy_model():
        yield


@pytest.fixture
def toy2() -> Iterator[None]:
    with registered_toy_model(two_stage=True):
        yield


def make_model(seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    return worldflux.create_world_model("training_toy:ci", obs_shape=(OBS,), action_dim=ACT)


def make_batch(seed: int = 0, b: int = B, t: int = T) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(b, t, OBS, generator=g),
        actions=torch.rand(b, t, ACT, generator=g) * 2 - 1,
        rewards=torch.randn(b, t, generator=g),
        terminated=torch.zeros(b, t, dtype=torch.bool),
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=torch.zeros(b, t, dtype=torch.bool),
    )


def params_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("obs", torch.randn(B, T, OBS + 1), "batch['obs']: expected shape [8, 4, 3]"),
        ("obs", torch.randn(B, OBS), "batch['obs']: expected rank 3"),
        ("actions", torch.randn(B, T, ACT + 3), "batch['actions']: expected shape [8, 4, 2]"),
        ("rewards", torch.randn(B, T + 1), "batch['rewards']: expected shape [8, 4]"),
        ("terminated", torch.zeros(B, T), "batch['terminated']: expected dtype bool"),
    ],
)
def test_wrong_batch_is_rejected_naming_the_tensor_before_any_compute(
    toy: None, key: str, value: torch.Tensor, fragment: str
) -> None:
    model = make_model()
    trainer = Trainer(model)
    before = params_of(model)
    calls: list[int] = []
    model.objective.register_forward_pre_hook(lambda *_: calls.append(1))  # type: ignore[union-attr]
    bad = make_batch().replace(**{key: value})
    with pytest.raises(ContractViolation) as info:
        trainer.train_step(bad)
    assert fragment in str(info.value)
    assert "found" in str(info.value)
    assert calls == []  # the objective never ran
    assert_same(before, params_of(model))
    assert all(not opt.state for opt in trainer.optimizers.values())
    assert trainer.step == 0


def test_missing_key_is_named(toy: None) -> None:
    trainer = Trainer(make_model())
    data = make_batch().as_dict()
    del data["rewards"]
    with pytest.raises(ContractViolation, match=r"missing keys \['rewards'\]"):
        trainer.train_step(data)


def test_update_lowers_the_loss_and_runs_after_step(toy: None) -> None:
    model = make_model()
    trainer = Trainer(model)
    batch = make_batch()
    first = trainer.train_step(batch).metrics
    target = model.objective.target_encoder.net.weight.detach().clone()  # type: ignore[union-attr]
    for _ in range(60):
        result = trainer.train_step(batch)
    assert result.step == 61 and trainer.step == 61
    assert result.metrics["loss/reward"] < first["loss/reward"]
    assert set(result.metrics) >= {"loss", "loss/consistency", "loss/reward", "grad_norm/model"}
    # after_step moved the Polyak target towards the online encoder
    assert not torch.equal(target, model.objective.target_encoder.net.weight)  # type: ignore[union-attr]


def test_optimisers_come_from_the_objective(toy2: None) -> None:
    model = make_model()
    trainer = Trainer(model)
    assert sorted(trainer.optimizers) == ["model", "policy"]
    policy = {id(p) for p in model.objective.policy.parameters()}  # type: ignore[union-attr]
    model_params = {id(p) for g in trainer.optimizers["model"].param_groups for p in g["params"]}
    assert policy and not (policy & model_params)


def test_custom_update_steps_both_optimisers_in_order(toy2: None) -> None:
    model = make_model()
    trainer = Trainer(model)
    policy_before = [p.detach().clone() for p in model.objective.policy.parameters()]  # type: ignore[union-attr]
    enc_before = model.observation_encoder.net.weight.detach().clone()  # type: ignore[union-attr]
    metrics = trainer.train_step(make_batch()).metrics
    assert {"loss", "loss/policy", "loss/consistency"} <= set(metrics)
    assert all(opt.state for opt in trainer.optimizers.values())
    policy_after = list(model.objective.policy.parameters())  # type: ignore[union-attr]
    assert any(not torch.equal(a, b) for a, b in zip(policy_before, policy_after, strict=True))
    assert not torch.equal(enc_before, model.observation_encoder.net.weight)  # type: ignore[union-attr]


def test_gradient_clipping_bounds_the_update(toy: None) -> None:
    model = make_model()
    sgd = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    trainer = Trainer(model, TrainerConfig(grad_clip=1e-3), optimizers={"model": sgd})
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    metrics = trainer.train_step(make_batch()).metrics
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    delta = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before, strict=True)))
    assert metrics["grad_norm/model"] > 1e-3  # the norm before clipping is reported
    assert float(delta) <= 1e-3 * (1 + 1e-4)


@pytest.mark.parametrize(
    ("two_stage", "poison"), [(False, "model"), (True, "model"), (True, "policy")]
)
def test_non_finite_loss_stops_the_step_and_keeps_the_last_good_state(
    two_stage: bool, poison: str
) -> None:
    with registered_toy_model(two_stage=two_stage):
        model = make_model()
        trainer = Trainer(model)
        trainer.train_step(make_batch(1))
        weights = params_of(model)
        opt_states = {
            k: {i: {n: v.clone() for n, v in s.items()} for i, s in o.state_dict()["state"].items()}
            for k, o in trainer.optimizers.items()
        }
        model.objective.poison = poison  # type: ignore[union-attr]
        with pytest.raises(NonFiniteError) as info:
            trainer.train_step(make_batch(2))
        message = str(info.value)
        assert "NaN" in message or "nan" in message
        assert "not applied" in message
        assert trainer.step == 1
        assert_same(weights, params_of(model))
        for name, opt in trainer.optimizers.items():
            for i, state in opt.state_dict()["state"].items():
                for n, v in state.items():
                    assert torch.equal(v, opt_states[name][i][n]), (name, i, n)
        model.objective.poison = None  # type: ignore[union-attr]
        assert trainer.train_step(make_batch(2)).step == 2  # training goes on from there


def test_non_finite_gradient_names_the_parameter(toy: None) -> None:
    model = make_model()
    trainer = Trainer(model)
    # an infinite weight makes the loss finite-looking nowhere: use a hook to poison one grad
    weight = model.decoder_module.cont.weight  # type: ignore[union-attr]
    weight.register_hook(lambda g: g * float("inf"))
    with pytest.raises(NonFiniteError, match=r"decoder_module\.cont\.weight"):
        trainer.train_step(make_batch())


def test_trainer_trains_on_replay_samples(toy: None) -> None:
    rng = np.random.default_rng(0)
    replay = ReplayBuffer(500, (OBS,), ACT, seed=0)
    for _ in range(3):
        replay.begin_episode(rng.normal(size=OBS))
        for t in range(40):
            replay.add(rng.uniform(-1, 1, ACT), 1.0, False, t == 39, rng.normal(size=OBS))
    trainer = Trainer(make_model())
    result = trainer.train_step(replay.sample(B, T))
    assert np.isfinite(result.metrics["loss"])


@pytest.mark.skipif("tdmpc2:ci" not in worldflux.list_models(), reason="tdmpc2 not registered")
def test_tdmpc2_official_update_runs_through_guarded_optimisers() -> None:
    torch.manual_seed(0)
    model = worldflux.create_world_model("tdmpc2:ci", obs_shape=(OBS,), action_dim=ACT)
    trainer = Trainer(model)
    assert sorted(trainer.optimizers) == ["model", "policy"] and trainer.has_custom_update
    batch = make_batch(t=4)
    metrics = trainer.train_step(batch).metrics
    assert {"loss", "consistency_loss", "pi_loss", "grad_norm", "pi_grad_norm"} <= set(metrics)
    assert all(opt.state for opt in trainer.optimizers.values())  # both stepped
    weights = params_of(model)
    with pytest.raises(ContractViolation, match=r"batch\['obs'\]: expected finite values"):
        trainer.train_step(batch.replace(obs=batch["obs"].clone().fill_(float("nan"))))
    heads: Any = model.decoder_module
    pi_weight = next(heads.pi.parameters())
    handle = pi_weight.register_hook(lambda g: g * float("nan"))
    with pytest.raises(NonFiniteError, match=r"gradient of 'decoder_module\.pi"):
        trainer.train_step(batch)  # the policy stage fails after the model stage stepped
    handle.remove()
    assert_same(weights, params_of(model))  # ... and the model stage was rolled back
    assert trainer.step == 1
