"""State, Batch, ModelOutput, LossOutput, Trajectory: round trips and device/dtype moves."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from worldflux.core.exceptions import ContractViolation
from worldflux.core.types import Batch, LossOutput, ModelOutput, State, Trajectory

FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

small = st.integers(1, 4)
feature_shapes = st.lists(small, min_size=0, max_size=3).map(tuple)
keys = st.lists(
    st.text(alphabet="abcdefghij_", min_size=1, max_size=6), min_size=1, max_size=4, unique=True
)


@st.composite
def states(draw: st.DrawFn, batch: int | None = None) -> State:
    """A State of random keys, each ``[B, *shape]`` with distinct random contents."""
    b = batch if batch is not None else draw(small)
    names = draw(keys)
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    return State({k: torch.randn(b, *draw(feature_shapes), generator=gen) for k in names})


def assert_same(a: State, b: State) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@given(data=st.data(), steps=st.integers(1, 5), dim=st.integers(0, 1))
def test_state_stack_then_index_round_trip(data: st.DataObject, steps: int, dim: int) -> None:
    first = data.draw(states())
    sequence = [first] + [
        State({k: torch.randn_like(v) for k, v in first.items()}) for _ in range(steps - 1)
    ]
    stacked = State.stack(sequence, dim=dim)
    for key, value in stacked.items():
        assert value.shape[dim] == steps
        assert value.shape[:dim] + value.shape[dim + 1 :] == first[key].shape
    for t, original in enumerate(sequence):
        assert_same(stacked.index(t, dim=dim), original)
    # a slice keeps the stacked dim; stacking the pieces back gives the whole
    head = stacked.index(slice(0, 1), dim=dim)
    assert all(v.shape[dim] == 1 for v in head.values())


@given(state=states(), dtype=st.sampled_from(FLOAT_DTYPES))
def test_state_dtype_move_round_trip(state: State, dtype: torch.dtype) -> None:
    moved = state.to(dtype=dtype)
    assert all(v.dtype == dtype for v in moved.values())
    back = moved.to(dtype=torch.float32)
    if dtype in (torch.float32, torch.float64):  # lossless for float32 contents
        assert_same(back, state)
    assert_same(state.to("cpu"), state)


def test_state_mapping_behaviour_and_immutability() -> None:
    z = torch.zeros(4, 3)
    s = State({"latent": z}, extra=torch.ones(4))
    assert s.batch_size == 4 and len(s) == 2 and set(s) == {"latent", "extra"}
    assert s.device == torch.device("cpu")
    assert State().batch_size == 0
    replaced = s.replace(latent=torch.ones(4, 3))
    assert torch.equal(s["latent"], z) and torch.equal(replaced["latent"], torch.ones(4, 3))
    assert "State(latent: [4, 3], extra: [4])" == repr(s)
    with pytest.raises(
        KeyError, match=r"State has no tensor 'latnt'; it holds \['extra', 'latent'\]"
    ):
        s["latnt"]
    with pytest.raises(ContractViolation, match=r"State\['latent'\]: expected a torch.Tensor"):
        State({"latent": [1.0, 2.0]})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        s["new"] = z  # type: ignore[index]
    assert s.as_dict() is not s.as_dict()


def test_state_stack_rejects_mismatched_states() -> None:
    a, b = State(z=torch.zeros(2, 3)), State(h=torch.zeros(2, 3))
    with pytest.raises(ContractViolation, match=r"state 1 has keys \['h'\], state 0 has \['z'\]"):
        State.stack([a, b])
    with pytest.raises(ContractViolation, match=r"'z' has different shapes .*\[2, 3\], \[2, 4\]"):
        State.stack([a, State(z=torch.zeros(2, 4))])


def test_state_detach_and_flatten() -> None:
    w = torch.ones(2, 3, 4, requires_grad=True)
    s = State(h=w * 2)
    assert s["h"].requires_grad and not s.detach()["h"].requires_grad
    assert s.flatten(0, 1)["h"].shape == (6, 4)
    assert State.stack([]) == State()


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    b, t = draw(small), draw(small)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    obs_shape = draw(feature_shapes)
    multimodal = draw(st.booleans())
    obs: torch.Tensor | dict[str, torch.Tensor]
    if multimodal:
        obs = {
            "image": torch.randint(0, 255, (b, t, 3, 2, 2), generator=gen, dtype=torch.uint8),
            "vec": torch.randn(b, t, *obs_shape, generator=gen),
        }
    else:
        obs = torch.randn(b, t, *obs_shape, generator=gen)
    return Batch(
        obs=obs,
        actions=torch.randint(0, 3, (b, t), generator=gen),
        rewards=torch.randn(b, t, generator=gen),
        terminated=torch.rand(b, t, generator=gen) > 0.5,
        truncated=torch.zeros(b, t, dtype=torch.bool),
        is_first=torch.zeros(b, t, dtype=torch.bool),
    )


def flat(batch: Batch) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in batch.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


@given(batch=batches(), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_batch_to_round_trip(batch: Batch, dtype: torch.dtype) -> None:
    before = flat(batch)
    moved = batch.to("cpu", dtype)
    after = flat(moved)
    assert set(after) == set(before)
    for key, value in before.items():
        if value.is_floating_point():
            assert after[key].dtype == dtype, key
        else:  # integer, uint8 and bool tensors keep their dtype
            assert after[key].dtype == value.dtype, key
    back = flat(moved.to(dtype=torch.float32))
    for key, value in before.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    assert moved.batch_size == batch.batch_size and moved.seq_len == batch.seq_len


def test_batch_mapping_behaviour() -> None:
    b = Batch({"obs": torch.zeros(2, 5, 3)}, rewards=torch.zeros(2, 5))
    assert (b.batch_size, b.seq_len) == (2, 5)
    assert set(b.replace(actions=torch.zeros(2, 5)).keys()) == {"obs", "rewards", "actions"}
    assert set(b) == {"obs", "rewards"}
    assert "obs" in repr(b) and "[2, 5, 3]" in repr(b)
    with pytest.raises(KeyError, match="Batch has no key 'action'"):
        b["action"]
    with pytest.raises(ContractViolation, match="Batch holds no tensor"):
        _ = Batch(note="x").batch_size
    nested = Batch(obs={"image": torch.zeros(3, 4, 1)})
    assert (nested.batch_size, nested.seq_len) == (3, 4)


def test_outputs_move_dtype_but_keep_structure() -> None:
    out = ModelOutput(predictions={"reward": torch.zeros(2)}, state=State(z=torch.zeros(2, 3)))
    moved = out.to(dtype=torch.float64)
    assert moved.predictions["reward"].dtype == torch.float64
    assert moved.state is not None and moved.state["z"].dtype == torch.float64
    assert ModelOutput().to(dtype=torch.float64).state is None
    loss = LossOutput(loss=torch.tensor(1.0), components={"a": torch.tensor(0.5)}, metrics={"m": 1})
    moved_loss = loss.to(dtype=torch.float64)
    assert moved_loss.loss.dtype == torch.float64 and moved_loss.components["a"].dtype == (
        torch.float64
    )
    assert moved_loss.metrics == {"m": 1} and moved_loss.metrics is not loss.metrics


@given(b=small, h=small, a=small, discrete=st.booleans())
def test_trajectory_shapes_and_move(b: int, h: int, a: int, discrete: bool) -> None:
    actions = torch.randint(0, a, (b, h)) if discrete else torch.randn(b, h, a)
    traj = Trajectory(
        states=State(z=torch.randn(b, h + 1, 2)),
        actions=actions,
        rewards=torch.randn(b, h),
        continues=torch.rand(b, h),
        predictions={"reward": torch.randn(b, h)},
    )
    assert traj.horizon == h
    moved = traj.to(dtype=torch.float64)
    assert moved.states["z"].dtype == torch.float64 and moved.rewards.dtype == torch.float64
    assert moved.actions.dtype == (torch.int64 if discrete else torch.float64)
    assert torch.equal(moved.to(dtype=torch.float32).continues, traj.continues)
    assert moved.states.index(0)["z"].shape == (b, 2)
