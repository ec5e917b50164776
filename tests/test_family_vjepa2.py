"""vjepa2: the V-JEPA 2-AC mechanisms (frozen / pretrained encoder, 3-D RoPE in the predictor).

Each test checks the property that defines the mechanism, not only that it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_families_harness import build, random_batch, random_obs, registered
from worldflux.conformance.engine import check_model

from worldflux import create_world_model
from worldflux.core.exceptions import CheckpointError, ConfigurationError
from worldflux.core.model import WorldModel
from worldflux.families.vjepa2.rope import RoPEBlock, RoPETransformer, apply_rope, window_positions
from worldflux.families.vjepa2.slots import block_causal_mask


def _train(model: WorldModel, steps: int, seed: int = 0) -> None:
    """``steps`` updates through the objective's own optimiser and after_step (EMA)."""
    model.train()
    objective: Any = model.objective
    optimizer = objective.make_optimizers(model)["model"]
    batch = random_batch(model, b=2, t=4, seed=seed)
    for _ in range(steps):
        out = model.loss(batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        objective.after_step(model)
    model.eval()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# -- frozen, pretrained encoder (V-JEPA 2-AC) ----------------------------------------------------
def test_frozen_encoder_stays_fixed_while_the_predictor_trains() -> None:
    with registered("vjepa2") as classes:
        model = build(*classes, freeze_encoder=True)
        joint = build(*classes)
        encoder: Any = model.observation_encoder
        assert not any(p.requires_grad for p in encoder.parameters())
        frozen_count = sum(p.numel() for p in encoder.context.parameters())
        assert model.num_parameters() == joint.num_parameters() - frozen_count
        before_enc, before_pred = _snapshot(encoder), _snapshot(model.dynamics_model)
        _train(model, steps=3)
        for key, value in _snapshot(encoder).items():
            assert torch.equal(value, before_enc[key]), f"encoder {key} changed"
        after_pred = _snapshot(model.dynamics_model)
        assert any(not torch.equal(after_pred[k], v) for k, v in before_pred.items())
        model.train()
        assert not encoder.context.training and not encoder.target.training  # eval mode
        # in the joint mode the same updates do move the encoder (the test can fail)
        joint_encoder: Any = joint.observation_encoder
        before_joint = _snapshot(joint_encoder.context)
        _train(joint, steps=3)
        after_joint = _snapshot(joint_encoder.context)
        assert any(not torch.equal(after_joint[k], v) for k, v in before_joint.items())


def test_frozen_targets_are_the_frozen_encoders_features() -> None:
    """V-JEPA 2-AC predicts the frozen encoder's own features: target == context output."""
    with registered("vjepa2") as classes:
        model = build(*classes, freeze_encoder=True)
        encoder: Any = model.observation_encoder
        obs = random_obs(model, (3,))
        with torch.no_grad():
            assert torch.equal(encoder(obs)["frame"], encoder.target_tokens(obs))


def test_pretrained_encoder_reproduces_the_source_features(tmp_path: Path) -> None:
    with registered("vjepa2") as classes:
        source = build(*classes)
        _train(source, steps=3)  # the EMA target now differs from the context encoder
        enc: Any = source.observation_encoder
        obs = random_obs(source, (3,), seed=5)
        with torch.no_grad():
            want = enc.target_tokens(obs)
            assert not torch.equal(want, enc(obs)["frame"])
        source.save_pretrained(tmp_path / "source")
        torch.manual_seed(123)
        model = create_world_model(
            "vjepa2:ci", freeze_encoder=True, encoder_checkpoint=str(tmp_path / "source")
        ).eval()
        loaded: Any = model.observation_encoder
        with torch.no_grad():
            assert torch.equal(loaded(obs)["frame"], want)
            assert torch.equal(loaded.target_tokens(obs), want)
        # only the encoder is taken: the predictor is freshly initialised
        assert not torch.equal(model.dynamics_model.inp.weight, source.dynamics_model.inp.weight)


def test_pretrained_encoder_of_another_shape_is_refused(tmp_path: Path) -> None:
    source = create_world_model("vjepa2:ci", embed_dim=12, enc_heads=2)
    source.save_pretrained(tmp_path / "wide")
    with pytest.raises(CheckpointError, match="does not match the vjepa2 encoder"):
        create_world_model("vjepa2:ci", encoder_checkpoint=str(tmp_path / "wide"))
    create_world_model("jepa:ci").save_pretrained(tmp_path / "jepa")
    with pytest.raises(CheckpointError, match="not a vjepa2 model"):
        create_world_model("vjepa2:ci", encoder_checkpoint=str(tmp_path / "jepa"))


def test_frozen_mode_meets_the_experimental_obligations(tmp_path: Path) -> None:
    """The conformance engine counts only requires_grad parameters (as for the EMA target)."""
    source = create_world_model("vjepa2:ci")
    source.save_pretrained(tmp_path / "source")

    def factory() -> WorldModel:
        return create_world_model(
            "vjepa2:ci", freeze_encoder=True, encoder_checkpoint=str(tmp_path / "source")
        )

    torch.set_num_threads(1)
    report = check_model(factory, "experimental", profile="ci", seed=1, crash_dir=None)
    (result,) = report.results
    assert not result.failures(), [f"{c.id}: {c.message}" for c in result.failures()]
    assert result.achieved_maturity == "experimental"


# -- 3-D RoPE in the predictor --------------------------------------------------------------------
def _positions(length: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 6, (length, 3), generator=gen).float()


def test_rope_scores_depend_only_on_relative_positions() -> None:
    torch.manual_seed(0)
    block = RoPEBlock(24, 2, 10000.0, "test")  # head width 12: 4 channels per axis
    x = torch.randn(2, 7, 24)
    pos = _positions(7, 0)
    scores = block.scores(x, pos)
    shift = torch.tensor([3.0, -2.0, 5.0])
    torch.testing.assert_close(block.scores(x, pos + shift), scores, rtol=1e-4, atol=1e-4)
    for axis in range(3):  # each axis matters: moving one token along it changes its scores
        moved = pos.clone()
        moved[0, axis] += 1.0
        assert not torch.allclose(block.scores(x, moved), scores, atol=1e-3)
    # the rotation keeps norms, and position 0 is the identity
    q = torch.randn(2, 7, 12)
    torch.testing.assert_close(apply_rope(q, pos).norm(dim=-1), q.norm(dim=-1))
    assert torch.equal(apply_rope(q, torch.zeros(7, 3)), q)


def test_rope_transformer_is_shift_invariant_and_block_causal() -> None:
    torch.manual_seed(0)
    frames, side = 3, 2
    tokens = 1 + side * side
    body = RoPETransformer(12, 2, 2, 10000.0, "test").eval()
    pos = window_positions(frames, side)
    assert pos.shape == (frames * tokens, 3)
    assert torch.equal(pos[tokens], torch.tensor([1.0, 0.0, 0.0]))  # frame 1's action token
    assert torch.equal(pos[tokens + 4], torch.tensor([1.0, 1.0, 1.0]))  # its last patch
    mask = block_causal_mask(torch.ones(1, frames), tokens)
    x = torch.randn(1, frames * tokens, 12)
    with torch.no_grad():
        out = body(x, mask, pos)
        torch.testing.assert_close(body(x, mask, pos + 7.0), out, rtol=1e-4, atol=1e-4)
        later = x.clone()
        later[:, 2 * tokens :] += torch.randn_like(later[:, 2 * tokens :])
        changed = body(later, mask, pos)
        torch.testing.assert_close(changed[:, : 2 * tokens], out[:, : 2 * tokens])
        assert not torch.allclose(changed[:, 2 * tokens :], out[:, 2 * tokens :])
        earlier = x.clone()
        earlier[:, :tokens] += 1.0
        assert not torch.allclose(body(earlier, mask, pos)[:, tokens:], out[:, tokens:])


def test_predictor_uses_rope_by_default_and_learned_positions_on_request() -> None:
    with registered("vjepa2") as classes:
        rope, learned = build(*classes), build(*classes, pos_embedding="learned")
        assert isinstance(rope.dynamics_model.body, RoPETransformer)
        names = {n for n, _ in learned.dynamics_model.named_parameters()}
        assert {"pos_space", "pos_time"} <= names
        assert not {"pos_space", "pos_time"} & {
            n for n, _ in rope.dynamics_model.named_parameters()
        }
    with pytest.raises(ConfigurationError, match="head width of at least 6"):
        create_world_model("vjepa2:ci", pred_heads=2)  # pred_dim 8 / 2 heads = 4 channels
