"""Shared harness for the non-REFERENCE family tests (tests/test_families_*.py).

It builds a test-local :class:`SpecWorldModel` subclass straight from ``specs/models/<family>.yaml``
(config class from the spec's ``config`` properties, ``SPEC`` from its slots / objective /
io_contract, presets from its presets), so the slots are exercised exactly as the shipped spec
wires them, independently of the generator. The model type is ``wftest_<family>``; it is
registered only inside :func:`registered`.

The ``check_*`` functions are the maturity obligations (ARCHITECTURE.md) as plain assertions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import Field, create_model
from ruamel.yaml import YAML

from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import ContractViolation, WorldFluxError
from worldflux.core.model import SpecWorldModel, WorldModel
from worldflux.core.registry import WorldModelRegistry
from worldflux.core.types import Batch, State

ROOT = Path(__file__).resolve().parent.parent
_TYPES: dict[str, Any] = {"integer": int, "number": float, "boolean": bool, "string": str}


def load_spec(family: str) -> dict[str, Any]:
    """The parsed ``specs/models/<family>.yaml``."""
    data = YAML(typ="safe").load((ROOT / "specs" / "models" / f"{family}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _config_class(family: str, spec: dict[str, Any]) -> type[WorldModelConfig]:
    fields: dict[str, Any] = {}
    for name, prop in spec["config"]["properties"].items():
        kind = tuple if prop["type"] == "array" else _TYPES[prop["type"]]
        default = tuple(prop["default"]) if kind is tuple else prop["default"]
        fields[name] = (kind, Field(default))
    env = spec["default_env"]
    fields["obs_shape"] = (tuple[int, ...], Field(tuple(env["obs_shape"])))
    fields["action_dim"] = (int, Field(env["action_dim"]))
    cls: type[WorldModelConfig] = create_model(
        f"WFTest{family.title()}Config", __base__=WorldModelConfig, **fields
    )
    cls.MODEL_TYPE = f"wftest_{family}"
    return cls


def model_class(family: str) -> tuple[type[SpecWorldModel], type[WorldModelConfig]]:
    """A fresh (unregistered) test model class and its config class for ``family``."""
    spec = load_spec(family)
    config_cls = _config_class(family, spec)
    model_spec: dict[str, Any] = {
        k: copy.deepcopy(spec[k])
        for k in ("slots", "objective", "io_contract", "capabilities", "composable", "maturity")
        if k in spec
    }
    presets = {name: dict(p.get("config") or {}) for name, p in spec["presets"].items()}

    class FamilyTestModel(SpecWorldModel):
        SPEC = model_spec

    FamilyTestModel.presets = presets
    FamilyTestModel.__name__ = f"WFTest{family.title()}Model"
    return FamilyTestModel, config_cls


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread (tiny models: threads only add contention), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def registered(family: str) -> Iterator[tuple[type[SpecWorldModel], type[WorldModelConfig]]]:
    """Register ``wftest_<family>`` for the duration of the block (checkpoints need it)."""
    model_type = f"wftest_{family}"
    WorldModelRegistry.unregister(model_type)
    model_cls, config_cls = model_class(family)
    WorldModelRegistry.register(model_type, config_class=config_cls)(model_cls)
    try:
        with single_thread():
            yield model_cls, config_cls
    finally:
        WorldModelRegistry.unregister(model_type)


def build(
    model_cls: type[SpecWorldModel],
    config_cls: type[WorldModelConfig],
    preset: str = "ci",
    seed: int = 0,
    **overrides: Any,
) -> WorldModel:
    """A seeded model of ``preset`` (env overrides such as ``obs_shape`` allowed), in eval mode."""
    torch.manual_seed(seed)
    values = {**model_cls.presets[preset], **overrides}
    model = model_cls(config_cls(**values))
    return model.eval()


# -- inputs -----------------------------------------------------------------------------------
def obs_shape(model: WorldModel) -> tuple[int, ...]:
    return tuple(model.config.obs_shape)


def random_obs(model: WorldModel, lead: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, *obs_shape(model), generator=gen)


def random_actions(model: WorldModel, lead: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if model.config.action_type == "discrete":
        return torch.randint(0, model.config.action_dim, lead, generator=gen)
    return torch.rand(*lead, model.config.action_dim, generator=gen) * 2 - 1


def random_batch(model: WorldModel, b: int = 2, t: int = 4, seed: int = 0) -> Batch:
    """A valid ``[b, t, ...]`` batch with an episode boundary in sample 0 when ``t >= 3``."""
    gen = torch.Generator().manual_seed(seed + 7)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    terminated = torch.zeros(b, t, dtype=torch.bool)
    if t >= 3:
        is_first[0, 2] = True
        terminated[0, 1] = True
    return Batch(
        obs=random_obs(model, (b, t), seed),
        actions=random_actions(model, (b, t), seed + 1),
        rewards=torch.randn(b, t, generator=gen),
        terminated=terminated,
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=is_first,
    )


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    return bool(torch.allclose(a, b, atol=atol, rtol=1e-4))


def assert_state_close(a: State, b: State, atol: float = 1e-5) -> None:
    assert set(a) == set(b)
    for key in a:
        assert _close(a[key], b[key], atol), f"state[{key!r}] differs"


# -- obligations ------------------------------------------------------------------------------
def check_contract(model: WorldModel, b: int = 3, h: int = 2) -> None:
    """encode / transition / decode / rollout / loss honour the bound contract."""
    contract = model.bound_contract()
    state = model.encode(random_obs(model, (b,)))
    contract.validate_state(state, (b,))
    nxt = model.transition(state, random_actions(model, (b,)))
    contract.validate_state(nxt, (b,))
    contract.validate_predictions(model.decode(nxt).predictions, (b,))
    traj = model.rollout(state, random_actions(model, (b, h)))
    contract.validate_state(traj.states, (b, h + 1), name="trajectory.states")
    contract.validate_predictions(traj.predictions, (b, h), name="trajectory.predictions")
    assert traj.rewards.shape == (b, h) and traj.continues.shape == (b, h)
    out = model.loss(random_batch(model, b=b, t=4))
    assert out.loss.dim() == 0 and bool(torch.isfinite(out.loss))
    contract.validate_loss(out.components)
    for name, value in out.components.items():
        assert value.dim() == 0 and bool(torch.isfinite(value)), name


def check_bad_inputs(model: WorldModel) -> None:
    """Wrong rank, size, dtype and non-finite inputs raise a ContractViolation naming the tensor."""
    good = random_obs(model, (2,))
    bad_obs = [good[0], good[..., :-1], good.long(), good.clone().fill_(float("nan"))]
    for obs in bad_obs:
        with pytest.raises(ContractViolation, match="obs"):
            model.encode(obs)
    state = model.encode(good)
    action = random_actions(model, (2,))
    wrong = action.float() if model.config.action_type == "discrete" else action[:, :-1]
    with pytest.raises(ContractViolation, match="action"):
        model.transition(state, wrong)
    with pytest.raises(ContractViolation, match="actions"):
        model.rollout(state, random_actions(model, (3, 2)))
    batch = random_batch(model)
    with pytest.raises(ContractViolation, match="rewards"):
        model.loss(batch.replace(rewards=batch["rewards"][:, :-1]))
    with pytest.raises(WorldFluxError):
        model.loss(Batch({k: v for k, v in batch.items() if k != "is_first"}))


def check_rollout_equivalence(model: WorldModel, b: int = 2, h: int = 3) -> None:
    """rollout(H) == H x (transition + decode), in eval mode."""
    model.eval()
    state = model.encode(random_obs(model, (b,)))
    actions = random_actions(model, (b, h))
    with torch.no_grad():
        traj = model.rollout(state, actions)
        s = state
        for t in range(h):
            s = model.transition(s, actions[:, t])
            assert_state_close(s, traj.states.index(t + 1))
            pred = model.decode(s).predictions
            for key, value in pred.items():
                assert _close(value, traj.predictions[key][:, t]), key
            assert _close(pred["reward"], traj.rewards[:, t])
            assert _close(pred["continue"], traj.continues[:, t])
        assert_state_close(state, traj.states.index(0))


def check_batch_independence(model: WorldModel, b: int = 4, h: int = 2) -> None:
    """Batch polymorphism (B = 1..b) and per-sample independence of every public call."""
    model.eval()
    obs = random_obs(model, (b,))
    actions = random_actions(model, (b, h))
    with torch.no_grad():
        full = model.rollout(model.encode(obs), actions)
        for i in (0, b - 1):
            one = model.rollout(model.encode(obs[i : i + 1]), actions[i : i + 1])
            for key in one.states:
                assert _close(one.states[key][0], full.states[key][i], 1e-4), key
            for key in one.predictions:
                assert _close(one.predictions[key][0], full.predictions[key][i], 1e-4), key
        # changing another sample does not change sample 0
        other = obs.clone()
        other[1:] = other[1:] * 3.0 + 1.0
        moved = model.rollout(model.encode(other), actions)
        for key in full.predictions:
            assert _close(moved.predictions[key][0], full.predictions[key][0], 1e-4), key


def check_determinism_and_no_mutation(model_factory: Callable[[], WorldModel], b: int = 2) -> None:
    """Two models built with one seed agree on every output; inputs are never mutated."""
    m1, m2 = model_factory(), model_factory()
    obs, actions = random_obs(m1, (b,)), random_actions(m1, (b, 2))
    batch = random_batch(m1, b=b, t=4)
    saved = {"obs": obs.clone(), "actions": actions.clone()}
    saved_batch = {k: v.clone() for k, v in batch.items()}
    outs = []
    for m in (m1, m2):
        torch.manual_seed(123)
        state = m.encode(obs)
        saved_state = {k: v.clone() for k, v in state.items()}
        traj = m.rollout(state, actions)
        m.train()
        torch.manual_seed(123)
        loss = m.loss(batch).loss.detach()
        m.eval()
        for k, v in state.items():
            assert torch.equal(v, saved_state[k]), f"rollout mutated state[{k!r}]"
        outs.append((traj, loss))
    assert torch.equal(obs, saved["obs"]) and torch.equal(actions, saved["actions"])
    for k, v in batch.items():
        assert torch.equal(v, saved_batch[k]), f"loss mutated batch[{k!r}]"
    (t1, l1), (t2, l2) = outs
    assert_state_close(t1.states, t2.states, 0.0)
    assert torch.equal(l1, l2)


def check_gradients(model: WorldModel) -> None:
    """Every trainable parameter gets a finite, non-zero gradient from loss()."""
    model.train()
    model.zero_grad()
    torch.manual_seed(0)
    model.loss(random_batch(model, b=3, t=4)).loss.backward()
    missing = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
    ]
    assert not missing, f"no gradient reaches {missing}"
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert bool(torch.isfinite(p.grad).all()), name
    model.zero_grad()
    model.eval()


def check_overfit(
    model: WorldModel, steps: int = 60, lr: float = 3e-3, main: str | None = None
) -> tuple[float, float]:
    """Loss on one fixed batch decreases under Adam (the objective's after_step included); so
    does the ``main`` component when given (the family's own term, not only the easy heads).

    Returns:
        (mean loss of the first 5 steps, mean loss of the last 5 steps).
    """
    model.train()
    batch = random_batch(model, b=4, t=4, seed=3)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    objective: Any = model.objective
    torch.manual_seed(0)
    losses, mains = [], []
    for _ in range(steps):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        objective.after_step(model)
        losses.append(float(out.loss.detach()))
        if main is not None:
            mains.append(float(out.components[main].detach()))
    model.eval()
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, f"loss did not decrease: {first:.4f} -> {last:.4f}"
    if main is not None:
        m_first, m_last = sum(mains[:5]) / 5, sum(mains[-5:]) / 5
        assert m_last < m_first, f"{main} did not decrease: {m_first:.4f} -> {m_last:.4f}"
    return first, last


def check_save_load(model: WorldModel, tmp_path: Path) -> None:
    """save_pretrained / from_pretrained round trip gives identical outputs."""
    model.eval()
    path = model.save_pretrained(tmp_path / "ckpt")
    loaded = type(model).from_pretrained(path).eval()
    obs, actions = random_obs(model, (2,)), random_actions(model, (2, 2))
    with torch.no_grad():
        a = model.rollout(model.encode(obs), actions)
        b = loaded.rollout(loaded.encode(obs), actions)
    assert_state_close(a.states, b.states, 0.0)
    for key in a.predictions:
        assert torch.equal(a.predictions[key], b.predictions[key]), key
    torch.manual_seed(5)
    la = model.loss(random_batch(model)).loss
    torch.manual_seed(5)
    lb = loaded.loss(random_batch(model)).loss
    assert torch.equal(la, lb)


def trainable(model: WorldModel) -> int:
    return model.num_parameters()
