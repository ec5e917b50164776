"""TensorSpec / ActionSpec / ModelIOContract: binding symbols and validating tensors."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import ConfigurationError, ContractViolation, ShapeMismatchError
from worldflux.core.spec import (
    ActionSpec,
    Capability,
    ModelIOContract,
    ModelMaturity,
    TensorSpec,
    resolve_dim,
)

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
FLOATS = {torch.float32, torch.float64, torch.float16, torch.bfloat16}

small_dim = st.integers(min_value=1, max_value=5)
per_sample_shape = st.lists(small_dim, min_size=0, max_size=4).map(tuple)
lead_dims = st.lists(small_dim, min_size=1, max_size=2).map(tuple)


def accepts(declared: str, dtype: torch.dtype) -> bool:
    """The documented dtype rule: ``float`` accepts every floating dtype, any other declared
    dtype (``float32`` included) exactly itself."""
    if declared == "float":
        return dtype in FLOATS
    return dtype == DTYPES[declared]


def tensor_of(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


# -- maturity / capability -------------------------------------------------------------------------
def test_maturity_parse_and_rank() -> None:
    assert ModelMaturity.parse("REFERENCE") is ModelMaturity.REFERENCE
    assert ModelMaturity.parse(ModelMaturity.SKELETON) is ModelMaturity.SKELETON
    ranks = [m.rank for m in (ModelMaturity.SKELETON, ModelMaturity.EXPERIMENTAL)]
    assert ranks == [0, 1] and ModelMaturity.REFERENCE.rank == 2
    with pytest.raises(ConfigurationError, match=r"unknown maturity 'gold'.*reference"):
        ModelMaturity.parse("gold")


def test_enums_compare_equal_to_their_yaml_strings() -> None:
    assert ModelMaturity.REFERENCE == "reference"
    assert Capability("planning") is Capability.PLANNING


# -- symbolic dimensions -------------------------------------------------------------------------
@given(a=st.integers(0, 64), b=st.integers(1, 64), c=st.integers(0, 64))
def test_resolve_dim_evaluates_expressions(a: int, b: int, c: int) -> None:
    symbols = {"a": a, "b": b, "c": c}
    assert resolve_dim("a * b", symbols) == a * b
    assert resolve_dim("a + c", symbols) == a + c
    assert resolve_dim("(a + c) // b", symbols) == (a + c) // b
    assert resolve_dim(" b ", symbols) == b
    assert resolve_dim(7, symbols) == 7


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("latnt_dim", "unknown symbol 'latnt_dim'; did you mean 'latent_dim'"),
        ("latent_dim ** 2", "only ints, symbols"),
        ("len(latent_dim)", "only ints, symbols"),
        ("latent_dim -", "not a valid expression"),
        ("latent_dim - 100", "resolves to -92"),
        ("latent_dim // 0", "divides by zero"),
        ("flag", "expected an int"),
    ],
)
def test_resolve_dim_rejects_bad_expressions(expr: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace("*", r"\*")):
        resolve_dim(expr, {"latent_dim": 8, "flag": True})


def test_resolve_dim_rejects_bool() -> None:
    with pytest.raises(ConfigurationError, match="bool"):
        resolve_dim(True, {})


class _Cfg(WorldModelConfig):
    latent_dim: int = 8
    stoch: int = 4
    classes: int = 4


contract_inputs = st.fixed_dictionaries(
    {
        "latent_dim": st.integers(1, 64),
        "stoch": st.integers(1, 16),
        "classes": st.integers(1, 16),
        "obs_shape": st.lists(st.integers(1, 16), min_size=1, max_size=3).map(tuple),
        "action_dim": st.integers(1, 12),
    }
)

SYMBOLIC = ModelIOContract.from_dict(
    {
        "observation": {"obs": {"shape": ["*obs_shape"], "dtype": "float32"}},
        "action": {"kind": "continuous", "dim": "action_dim"},
        "state": {
            "deter": {"shape": ["latent_dim"]},
            "stoch": {"shape": ["stoch", "classes"]},
            "flat": {"shape": ["stoch * classes + latent_dim"]},
        },
        "predictions": {
            "reward": {"shape": []},
            "obs": {"shape": ["*obs_shape"]},
            "last": {"shape": ["obs_dim", 2]},
        },
        "loss_components": ["a", "b"],
    }
)


@given(values=contract_inputs)
def test_bind_resolves_every_symbol_consistently(values: dict[str, Any]) -> None:
    config = _Cfg(
        latent_dim=values["latent_dim"],
        stoch=values["stoch"],
        classes=values["classes"],
        obs_shape=values["obs_shape"],
        action_dim=values["action_dim"],
    )
    bound = SYMBOLIC.bind(config, config.obs_shape, config.action_dim)
    obs, ld = tuple(values["obs_shape"]), values["latent_dim"]
    s, c = values["stoch"], values["classes"]
    assert bound.is_bound and not SYMBOLIC.is_bound
    assert bound.observation["obs"].shape == obs
    assert bound.predictions["obs"].shape == obs  # same splice, same value, in two groups
    assert bound.predictions["last"].shape == (obs[-1], 2)
    assert bound.state["deter"].shape == (ld,)
    assert bound.state["stoch"].shape == (s, c)
    assert bound.state["flat"].shape == (s * c + ld,)
    assert bound.action.dim == values["action_dim"]
    # binding is idempotent, and the fingerprint is a function of the bound values
    assert bound.bind(config, obs, values["action_dim"]) == bound
    again = SYMBOLIC.bind(config.model_dump(), obs, values["action_dim"])
    assert again.fingerprint() == bound.fingerprint()
    assert SYMBOLIC.symbols() == {"obs_shape", "obs_dim", "latent_dim", "stoch", "classes"} | {
        "action_dim"
    }


@given(values=contract_inputs, bump=st.integers(1, 5))
def test_fingerprint_changes_with_any_bound_dim(values: dict[str, Any], bump: int) -> None:
    base = SYMBOLIC.bind(values, values["obs_shape"], values["action_dim"])
    for key in ("latent_dim", "stoch", "classes", "action_dim"):
        changed = {**values, key: values[key] + bump}
        other = SYMBOLIC.bind(changed, changed["obs_shape"], changed["action_dim"])
        assert other.fingerprint() != base.fingerprint(), key


def test_bind_arguments_override_config_and_unknown_symbols_are_named() -> None:
    bound = SYMBOLIC.bind(_Cfg(obs_shape=(3,), action_dim=2), obs_shape=(7, 5), action_dim=4)
    assert bound.observation["obs"].shape == (7, 5) and bound.action.dim == 4
    assert bound.predictions["last"].shape == (5, 2)
    with pytest.raises(ConfigurationError, match="unknown symbol 'classes'"):
        SYMBOLIC.bind({"latent_dim": 3, "stoch": 2}, (4,), 2)
    with pytest.raises(ConfigurationError, match="splices unknown symbol 'img_shape'"):
        TensorSpec(shape=("*img_shape",)).bind({"obs_shape": (3,)})
    with pytest.raises(ConfigurationError, match="expected a tuple of ints"):
        TensorSpec(shape=("*obs_shape",)).bind({"obs_shape": 3})


def test_bind_takes_the_action_kind_from_the_config() -> None:
    continuous = ModelIOContract.from_dict({"action": {"kind": "continuous", "dim": "action_dim"}})
    bound = continuous.bind(WorldModelConfig(action_type="discrete", action_dim=5))
    assert bound.action.kind == "discrete" and bound.action.dim == 5
    assert continuous.bind({"action_dim": 5}).action.kind == "continuous"


@given(values=contract_inputs)
def test_contract_dict_round_trip(values: dict[str, Any]) -> None:
    for contract in (SYMBOLIC, SYMBOLIC.bind(values, values["obs_shape"], values["action_dim"])):
        again = ModelIOContract.from_dict(contract.to_dict())
        assert again == contract
        assert again.fingerprint() == contract.fingerprint()


# -- TensorSpec.validate -------------------------------------------------------------------------
@given(
    shape=per_sample_shape,
    lead=lead_dims,
    declared=st.sampled_from(sorted(DTYPES)),
    found=st.sampled_from(sorted(DTYPES)),
)
def test_validate_accepts_exactly_the_declared_dtype(
    shape: tuple[int, ...], lead: tuple[int, ...], declared: str, found: str
) -> None:
    spec = TensorSpec(shape=shape, dtype=declared)
    tensor = tensor_of((*lead, *shape), DTYPES[found])
    if accepts(declared, DTYPES[found]):
        spec.validate("x", tensor, lead)
    else:
        with pytest.raises(ContractViolation, match=f"^.*x: expected dtype {declared}, found"):
            spec.validate("x", tensor, lead)


@given(shape=per_sample_shape, lead=lead_dims, data=st.data())
def test_validate_rejects_every_single_dim_perturbation(
    shape: tuple[int, ...], lead: tuple[int, ...], data: st.DataObject
) -> None:
    spec = TensorSpec(shape=shape, dtype="float32")
    full = (*lead, *shape)
    spec.validate("obs", torch.zeros(full), lead)  # the exact shape passes
    index = data.draw(st.integers(0, len(full) - 1), label="perturbed dim")
    size = data.draw(st.integers(0, 7).filter(lambda n: n != full[index]), label="new size")
    perturbed = (*full[:index], size, *full[index + 1 :])
    with pytest.raises(ShapeMismatchError, match=r"obs: expected shape \[.*\], found") as info:
        spec.validate("obs", torch.zeros(perturbed), lead)
    assert f"(dim {index})" in str(info.value)
    assert info.value.code == "WF301"


@given(shape=per_sample_shape, lead=lead_dims, extra=small_dim, drop_first=st.booleans())
def test_validate_rejects_wrong_rank(
    shape: tuple[int, ...], lead: tuple[int, ...], extra: int, drop_first: bool
) -> None:
    spec = TensorSpec(shape=shape)
    full = (*lead, *shape)
    wrong = full[1:] if drop_first else (*full, extra)
    with pytest.raises(ShapeMismatchError, match=rf"state\['z'\]: expected rank {len(full)}"):
        spec.validate("state['z']", torch.zeros(wrong), lead)


def test_validate_free_lead_dims_and_non_tensors_and_nonfinite() -> None:
    spec = TensorSpec(shape=(3,))
    for batch in (1, 2, 9):
        spec.validate("obs", torch.zeros(batch, 3), (None,))
    with pytest.raises(ContractViolation, match=r"obs: expected a torch\.Tensor, found list"):
        spec.validate("obs", [0.0, 0.0, 0.0], (None,))
    with pytest.raises(ContractViolation, match="obs: expected finite values"):
        spec.validate("obs", torch.tensor([[0.0, float("nan"), 0.0]]), (None,))
    with pytest.raises(ContractViolation, match="not bound"):
        TensorSpec(shape=("latent_dim",)).validate("z", torch.zeros(1, 3), (None,))
    with pytest.raises(ConfigurationError, match="unknown dtype 'float8'"):
        TensorSpec(dtype="float8")


# -- actions ------------------------------------------------------------------------------------
@given(n=st.integers(1, 10), batch=small_dim, data=st.data())
def test_discrete_actions_must_be_int64_indices_in_range(
    n: int, batch: int, data: st.DataObject
) -> None:
    spec = ActionSpec(kind="discrete", dim=n)
    good = data.draw(st.lists(st.integers(0, n - 1), min_size=batch, max_size=batch))
    spec.validate("action", torch.tensor(good, dtype=torch.int64), (batch,))
    bad = data.draw(st.one_of(st.integers(-5, -1), st.integers(n, n + 5)), label="bad index")
    where = data.draw(st.integers(0, batch - 1), label="where")
    wrong = list(good)
    wrong[where] = bad
    with pytest.raises(
        ContractViolation, match=rf"action: expected discrete action indices in \[0, {n}\)"
    ):
        spec.validate("action", torch.tensor(wrong, dtype=torch.int64), (batch,))
    with pytest.raises(ContractViolation, match="action: expected dtype int64, found float32"):
        spec.validate("action", torch.tensor(good, dtype=torch.float32), (batch,))
    with pytest.raises(ShapeMismatchError, match="action: expected rank 1"):
        spec.validate("action", torch.zeros(batch, n, dtype=torch.int64), (batch,))


def test_continuous_actions_have_shape_a() -> None:
    spec = ActionSpec(kind="continuous", dim=3)
    spec.validate("action", torch.zeros(2, 3), (2,))
    spec.validate("action", torch.zeros(2, 3, dtype=torch.float64), (2,))
    with pytest.raises(
        ShapeMismatchError, match=r"action: expected shape \[2, 3\], found \[2, 4\]"
    ):
        spec.validate("action", torch.zeros(2, 4), (2,))
    with pytest.raises(ContractViolation, match="expected dtype float, found int64"):
        spec.validate("action", torch.zeros(2, 3, dtype=torch.int64), (2,))


# -- contract helpers ---------------------------------------------------------------------------
BOUND = SYMBOLIC.bind({"latent_dim": 4, "stoch": 2, "classes": 3}, (5,), 3)


def good_batch(b: int = 2, t: int = 3) -> dict[str, Any]:
    return {
        "obs": torch.zeros(b, t, 5),
        "actions": torch.zeros(b, t, 3),
        "rewards": torch.zeros(b, t),
        "terminated": torch.zeros(b, t, dtype=torch.bool),
        "truncated": torch.zeros(b, t, dtype=torch.bool),
        "is_first": torch.zeros(b, t, dtype=torch.bool),
    }


@given(b=small_dim, t=small_dim)
def test_validate_batch_accepts_any_b_and_t(b: int, t: int) -> None:
    BOUND.validate_batch(good_batch(b, t))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rewards", torch.zeros(2, 4), r"batch\['rewards'\]: expected shape \[2, 3\]"),
        ("actions", torch.zeros(2, 3, 2), r"batch\['actions'\]: expected shape \[2, 3, 3\]"),
        ("terminated", torch.zeros(2, 3), r"batch\['terminated'\]: expected dtype bool"),
        ("obs", torch.zeros(2, 3, 6), r"batch\['obs'\]: expected shape \[2, 3, 5\]"),
        ("is_first", torch.zeros(3, 3, dtype=torch.bool), r"batch\['is_first'\]: expected shape"),
    ],
)
def test_validate_batch_names_the_bad_key(key: str, value: torch.Tensor, message: str) -> None:
    batch = good_batch()
    batch[key] = value
    with pytest.raises(ContractViolation, match=message):
        BOUND.validate_batch(batch)


def test_validate_batch_missing_keys_and_non_mappings() -> None:
    batch = good_batch()
    del batch["truncated"]
    with pytest.raises(ContractViolation, match=r"batch: missing keys \['truncated'\]"):
        BOUND.validate_batch(batch)
    with pytest.raises(ContractViolation, match="expected a Batch"):
        BOUND.validate_batch(torch.zeros(2, 3))  # type: ignore[arg-type]
    with pytest.raises(ContractViolation, match=r"tensors must be \[B, T, ...\]"):
        BOUND.validate_batch({**good_batch(), "obs": torch.zeros(2)})


def test_multi_modality_observations() -> None:
    contract = ModelIOContract.from_dict(
        {
            "observation": {
                "image": {"shape": [3, 8, 8], "dtype": "uint8"},
                "vec": {"shape": [4]},
            }
        }
    ).bind({}, None, 2)
    obs = {"image": torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "vec": torch.zeros(2, 4)}
    contract.validate_observation(obs)
    with pytest.raises(
        ContractViolation, match=r"obs: expected a dict with keys \['image', 'vec'\]"
    ):
        contract.validate_observation(torch.zeros(2, 4))
    with pytest.raises(ContractViolation, match=r"missing \['vec'\], unexpected \['vector'\]"):
        contract.validate_observation({"image": obs["image"], "vector": obs["vec"]})
    with pytest.raises(ContractViolation, match=r"obs\['image'\]: expected dtype uint8"):
        contract.validate_observation({**obs, "image": obs["image"].float()})


def test_validate_state_predictions_and_loss() -> None:
    state = {"deter": torch.zeros(2, 4), "stoch": torch.zeros(2, 2, 3), "flat": torch.zeros(2, 10)}
    BOUND.validate_state(state)
    with pytest.raises(ContractViolation, match=r"state: expected keys .* missing \['flat'\]"):
        BOUND.validate_state({k: v for k, v in state.items() if k != "flat"})
    with pytest.raises(ShapeMismatchError, match=r"state\['stoch'\]: expected shape \[B, 2, 3\]"):
        BOUND.validate_state({**state, "stoch": torch.zeros(2, 3, 2)})
    with pytest.raises(ContractViolation, match="expected a State"):
        BOUND.validate_state(torch.zeros(2, 4))  # type: ignore[arg-type]
    preds = {"reward": torch.zeros(2), "obs": torch.zeros(2, 5), "last": torch.zeros(2, 5, 2)}
    BOUND.validate_predictions(preds)
    with pytest.raises(ContractViolation, match=r"missing \['reward'\]"):
        BOUND.validate_predictions({k: v for k, v in preds.items() if k != "reward"})
    BOUND.validate_loss({"a": 0, "b": 1})
    with pytest.raises(
        ContractViolation, match=r"expected exactly \['a', 'b'\], found \['a', 'c'\]"
    ):
        BOUND.validate_loss({"a": 0, "c": 1})


@given(shape=per_sample_shape, declared=st.sampled_from(sorted(DTYPES)))
def test_tensor_spec_dict_round_trip(shape: tuple[int, ...], declared: str) -> None:
    spec = TensorSpec(shape=shape, dtype=declared, low=-1.0, high=None)
    assert TensorSpec.from_dict(spec.to_dict()) == spec


def test_checkpoints_from_before_exact_dtypes_keep_loading() -> None:
    """Observations now declared ``float`` were ``float32``: the old fingerprint is accepted,
    any other change of the contract is not."""
    base = {
        "observation": {"obs": {"shape": [4], "dtype": "float"}},
        "action": {"kind": "continuous", "dim": 2},
        "state": {"latent": {"shape": [3], "dtype": "float32"}},
    }
    contract = ModelIOContract.from_dict(base).bind()
    old = ModelIOContract.from_dict(
        {**base, "observation": {"obs": {"shape": [4], "dtype": "float32"}}}
    ).bind()
    other = ModelIOContract.from_dict(
        {**base, "state": {"latent": {"shape": [3], "dtype": "float64"}}}
    ).bind()
    assert old.fingerprint() != contract.fingerprint()
    assert old.fingerprint() in contract.accepted_fingerprints()
    assert other.fingerprint() not in contract.accepted_fingerprints()
