"""WorldModelConfig validation and the error hierarchy."""

from __future__ import annotations

import pickle

import pytest
from pydantic import Field

from worldflux.core import exceptions
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import (
    CapabilityError,
    CheckpointError,
    ConfigurationError,
    ContractViolation,
    ModelNotFoundError,
    ShapeMismatchError,
    SpecError,
    WorldFluxError,
    did_you_mean,
)


class NetConfig(WorldModelConfig):
    MODEL_TYPE = "wf_net"

    latent_dim: int = Field(16, ge=1)
    learning_rate: float = Field(3e-4, gt=0)


def test_defaults_and_model_type() -> None:
    config = NetConfig()
    assert config.model_type == "wf_net"
    assert config.hyperparameters() == {"latent_dim": 16, "learning_rate": 3e-4}
    assert WorldModelConfig().obs_shape == (4,)


def test_unknown_field_suggests_the_closest_one() -> None:
    with pytest.raises(ConfigurationError, match="unknown field 'latnt_dim'; did you mean") as info:
        NetConfig(latnt_dim=3)
    assert "'latent_dim'" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        NetConfig(latnt_dim=3, lerning_rate=1.0)
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and "lerning_rate" in lines[1] and "'learning_rate'" in lines[1]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"latent_dim": 0}, r"NetConfig.latent_dim: Input should be greater than or equal to 1"),
        ({"action_dim": 0}, r"NetConfig.action_dim: Input should be greater than 0 \(found 0\)"),
        ({"obs_shape": ()}, r"NetConfig.obs_shape: Tuple should have at least 1 item"),
        ({"obs_shape": (3, -1)}, r"NetConfig.obs_shape.1: Input should be greater than 0"),
        ({"action_type": "discret"}, r"NetConfig.action_type: Input should be 'continuous'"),
        ({"learning_rate": "fast"}, r"NetConfig.learning_rate: Input should be a valid number"),
    ],
)
def test_invalid_values_are_configuration_errors(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        NetConfig(**values)


def test_assignment_is_validated_too() -> None:
    config = NetConfig()
    config.latent_dim = 32
    assert config.latent_dim == 32
    with pytest.raises(ConfigurationError, match="unknown field 'latent'; did you mean"):
        config.latent = 3
    with pytest.raises(ConfigurationError, match="latent_dim: Input should be greater"):
        config.latent_dim = -1
    assert config.latent_dim == 32


def test_with_overrides_validates() -> None:
    config = NetConfig(latent_dim=8)
    assert config.with_overrides(latent_dim=4).latent_dim == 4 and config.latent_dim == 8
    with pytest.raises(ConfigurationError, match="did you mean 'latent_dim'"):
        config.with_overrides(latent_dims=4)


# -- errors ---------------------------------------------------------------------------------------
STABLE_CODES = {
    WorldFluxError: "WF000",
    ConfigurationError: "WF100",
    SpecError: "WF200",
    ContractViolation: "WF300",
    ShapeMismatchError: "WF301",
    CapabilityError: "WF400",
    ModelNotFoundError: "WF500",
    CheckpointError: "WF600",
}


def test_every_error_has_a_stable_unique_code() -> None:
    public = {
        getattr(exceptions, name)
        for name in exceptions.__all__
        if isinstance(getattr(exceptions, name), type)
    }
    assert public == set(STABLE_CODES)
    for cls, code in STABLE_CODES.items():
        assert cls.code == code
        assert issubclass(cls, WorldFluxError)
        error = cls("expected X, found Y")
        assert str(error) == f"[{code}] expected X, found Y" and error.message == (
            "expected X, found Y"
        )
        again = pickle.loads(pickle.dumps(error))  # crosses process boundaries intact
        assert type(again) is cls and str(again) == str(error)
    assert len(set(STABLE_CODES.values())) == len(STABLE_CODES)


def test_errors_are_also_the_builtin_kinds_callers_expect() -> None:
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(ShapeMismatchError, ContractViolation)
    assert issubclass(ModelNotFoundError, KeyError)
    assert issubclass(CheckpointError, OSError)
    assert issubclass(CapabilityError, NotImplementedError)


def test_spec_error_lists_issues() -> None:
    error = SpecError("spec invalid", ["a.yaml:3:5: bad", "a.yaml:9:1: worse"])
    assert error.issues == ["a.yaml:3:5: bad", "a.yaml:9:1: worse"]
    assert str(error).splitlines() == [
        "[WF200] spec invalid",
        "a.yaml:3:5: bad",
        "a.yaml:9:1: worse",
    ]


def test_did_you_mean() -> None:
    assert did_you_mean("tdmpc", ["tdmpc2", "dreamerv3"]) == "; did you mean 'tdmpc2'?"
    assert did_you_mean("zzz", ["a", "b"]) == "; valid names: 'a', 'b'"
    assert did_you_mean("zzz", [f"name{i}" for i in range(20)]) == ""
    assert did_you_mean("x", []) == ""


def test_public_names_resolve() -> None:
    """Everything ``worldflux`` and ``worldflux.core`` export exists (the guide's paths too)."""
    import worldflux
    import worldflux.core

    for module in (worldflux, worldflux.core):
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == [], module.__name__
    from worldflux.core.config import WorldModelConfig as Config
    from worldflux.core.model import WorldModel
    from worldflux.core.registry import WorldModelRegistry
    from worldflux.core.spec import ModelMaturity

    assert worldflux.WorldModel is WorldModel and worldflux.WorldModelConfig is Config
    assert worldflux.WorldModelRegistry is WorldModelRegistry
    assert worldflux.ModelMaturity is ModelMaturity
