"""The generic slot library: shapes, size symbols, errors, and the generic objective."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from worldflux.core.components import BuildContext
from worldflux.core.config import WorldModelConfig
from worldflux.core.exceptions import ConfigurationError
from worldflux.core.model import build_component
from worldflux.core.registry import list_components
from worldflux.core.types import State


class _Config(WorldModelConfig):
    latent_dim: int = 8
    hidden_dim: int = 16


def _ctx(
    obs_shape: tuple[int, ...] = (5,), action_dim: int = 3, discrete: bool = False
) -> BuildContext:
    return BuildContext(
        _Config(
            obs_shape=obs_shape,
            action_dim=action_dim,
            action_type="discrete" if discrete else "continuous",
        )
    )


def _build(kind: str, key: str, ctx: BuildContext, params: dict[str, Any] | None = None) -> Any:
    return build_component(kind, key, params, ctx)


def test_generic_components_are_registered() -> None:
    keys = list_components()
    assert {"mlp_encoder", "cnn_encoder"} <= set(keys["observation_encoder"])
    assert {"concat", "film"} <= set(keys["action_conditioner"])
    assert {"mlp_dynamics", "gru_dynamics"} <= set(keys["dynamics_model"])
    assert {"mlp_decoder", "cnn_decoder"} <= set(keys["decoder"])
    assert "open_loop" in keys["rollout_executor"]
    assert "generic" in keys["objective"]


def test_mlp_encoder_sizes_come_from_config_symbols() -> None:
    ctx = _ctx()
    encoder = _build("observation_encoder", "mlp_encoder", ctx, {"latent": "2 * latent_dim"})
    state = encoder(torch.randn(4, 5))
    assert state["latent"].shape == (4, 16)
    assert ctx.dims["latent_dim"] == 16 and ctx.dims["embed_dim"] == 16


def test_unknown_size_symbol_names_the_param_and_suggests() -> None:
    with pytest.raises(
        ConfigurationError, match=r"mlp_encoder.hidden: .*'hiden_dim'.*'hidden_dim'"
    ):
        _build("observation_encoder", "mlp_encoder", _ctx(), {"hidden": "hiden_dim"})


def test_size_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="expected a size >= 1"):
        _build("observation_encoder", "mlp_encoder", _ctx(), {"latent": "latent_dim - 8"})


def test_cnn_encoder_and_decoder_round_trip_shapes() -> None:
    ctx = _ctx(obs_shape=(3, 16, 16))
    encoder = _build("observation_encoder", "cnn_encoder", ctx, {"stages": 2, "depth": 4})
    decoder = _build("decoder", "cnn_decoder", ctx, {"stages": 2, "depth": 4})
    state = encoder(torch.randint(0, 255, (2, 3, 16, 16), dtype=torch.uint8))
    out = decoder(state).predictions
    assert out["obs"].shape == (2, 3, 16, 16)
    assert out["reward"].shape == (2,) and out["continue"].shape == (2,)
    assert ((out["continue"] >= 0) & (out["continue"] <= 1)).all()


def test_cnn_encoder_rejects_bad_shapes() -> None:
    with pytest.raises(ConfigurationError, match=r"obs_shape \[C, H, W\], found \[5\]"):
        _build("observation_encoder", "cnn_encoder", _ctx())
    with pytest.raises(ConfigurationError, match="divisible by 8"):
        _build("observation_encoder", "cnn_encoder", _ctx(obs_shape=(3, 12, 12)))


def test_decoder_needs_an_encoder_that_announces_the_latent() -> None:
    with pytest.raises(ConfigurationError, match=r"ctx.dims\['latent_dim'\]"):
        _build("decoder", "mlp_decoder", _ctx())


def test_film_starts_as_identity_and_handles_discrete_actions() -> None:
    ctx = _ctx(discrete=True)
    _build("observation_encoder", "mlp_encoder", ctx)
    film = _build("action_conditioner", "film", ctx, {"hidden": "hidden_dim"})
    assert ctx.dims["dynamics_input_dim"] == 8
    latent = torch.randn(4, 8)
    out = film(State({"latent": latent}), torch.tensor([0, 1, 2, 0]))
    assert torch.equal(out, latent)


def test_concat_then_dynamics() -> None:
    for key in ("mlp_dynamics", "gru_dynamics"):
        ctx = _ctx()
        _build("observation_encoder", "mlp_encoder", ctx)
        conditioner = _build("action_conditioner", "concat", ctx)
        dynamics = _build("dynamics_model", key, ctx)
        state = State({"latent": torch.randn(4, 8)})
        nxt = dynamics(state, conditioner(state, torch.randn(4, 3)))
        assert nxt["latent"].shape == (4, 8)


def test_gru_dynamics_carries_and_observes() -> None:
    ctx = _ctx()
    encoder = _build("observation_encoder", "mlp_encoder", ctx)
    conditioner = _build("action_conditioner", "concat", ctx)
    dynamics = _build("dynamics_model", "gru_dynamics", ctx)
    start = dynamics.initial_state(2, torch.device("cpu"), torch.float32)
    assert torch.equal(start["latent"], torch.zeros(2, 8))
    obs_state = encoder(torch.randn(2, 5))
    first = dynamics.observe(start, None, obs_state)
    second = dynamics.observe(first, conditioner(first, torch.randn(2, 3)), obs_state)
    assert first["latent"].shape == second["latent"].shape == (2, 8)
    assert not torch.allclose(first["latent"], second["latent"])


def test_decoder_prediction_flags() -> None:
    ctx = _ctx()
    _build("observation_encoder", "mlp_encoder", ctx)
    decoder = _build(
        "decoder", "mlp_decoder", ctx, {"predict_obs": False, "predict_continue": False}
    )
    assert set(decoder(State({"latent": torch.randn(3, 8)})).predictions) == {"reward"}


def test_images_conv_reads_and_writes_images_through_convolutions() -> None:
    """``images: conv`` makes the MLP encoder/decoder read and write [C, H, W] observations
    through conv stages (far fewer weights than a flat MLP on pixels); vectors are unchanged."""
    conv = {"images": "conv", "conv_depth": 4, "conv_stages": 2}
    ctx = _ctx(obs_shape=(3, 16, 16))
    encoder = _build("observation_encoder", "mlp_encoder", ctx, conv)
    decoder = _build("decoder", "mlp_decoder", ctx, conv)
    assert any(isinstance(m, torch.nn.Conv2d) for m in encoder.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in decoder.modules())
    obs = torch.rand(2, 3, 16, 16)
    latent = encoder(obs)
    assert latent["latent"].shape == (2, 8)
    assert decoder(latent).predictions["obs"].shape == (2, 3, 16, 16)
    # a local change of the image only reaches the latent through the conv receptive fields:
    # the first conv layer's weights see 4x4 patches, not the whole flattened frame
    first = next(m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert tuple(first.weight.shape) == (4, 3, 4, 4)
    flat_ctx = _ctx(obs_shape=(3, 16, 16))
    flat = _build("observation_encoder", "mlp_encoder", flat_ctx)
    assert sum(p.numel() for p in encoder.parameters()) < sum(p.numel() for p in flat.parameters())
    vector_ctx, plain_ctx = _ctx(obs_shape=(5,)), _ctx(obs_shape=(5,))
    vector = _build("observation_encoder", "mlp_encoder", vector_ctx, conv)
    plain = _build("observation_encoder", "mlp_encoder", plain_ctx)
    assert [n for n, _ in vector.named_parameters()] == [n for n, _ in plain.named_parameters()]
    with pytest.raises(ConfigurationError, match=r"divisible by 4, found obs_shape \[3, 10, 10\]"):
        _build("observation_encoder", "mlp_encoder", _ctx(obs_shape=(3, 10, 10)), conv)
