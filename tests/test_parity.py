"""The shared parity comparison (worldflux.parity.compare): element-wise allclose semantics, the
worst ratio and where it is, and every golden at 1 and 2 torch threads.

Fast: the semantics and the in-repo goldens (specs/parity/*). Slow: the shared goldens
(../shared/parity/*: DreamerV3 size1m, TD-MPC2 5m) at both thread counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from worldflux.cli import main
from worldflux.parity import ParityRow, check_golden, compare

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "parity"
REPO_GOLDENS = [
    ("dreamerv3:ci", ROOT / "specs/parity/dreamerv3/tiny.safetensors"),
    ("dreamerv3:ci", ROOT / "specs/parity/dreamerv3/tiny_perturbed.safetensors"),
    ("tdmpc2:ci", ROOT / "specs/parity/tdmpc2/tiny.safetensors"),
]
SHARED_GOLDENS = [
    ("dreamerv3:size1m", SHARED / "dreamerv3/size1m.safetensors"),
    ("dreamerv3:size1m", SHARED / "dreamerv3/size1m_perturbed.safetensors"),
    ("tdmpc2:5m", SHARED / "tdmpc2/5m.safetensors"),
]


# -- semantics ------------------------------------------------------------------------------------
def test_elementwise_allowance_mixes_atol_and_rtol() -> None:
    """|d| <= atol + rtol*|ref| per element: a large element may use rtol while a near-zero one
    uses atol. The old whole-tensor rule (max_abs <= atol or max_rel <= rtol) failed this case."""
    golden = torch.tensor([1000.0, 1e-9], dtype=torch.float64)
    ours = golden + torch.tensor(
        [8e-3, 5e-7], dtype=torch.float64
    )  # 8e-3 <= 1e-6 + 1e-5*1000; 5e-7 <= 1e-6
    row = compare("x", ours, golden, atol=1e-6, rtol=1e-5)
    assert row.max_abs > row.atol and row.max_rel > row.rtol  # the old rule would fail
    assert row.passed
    assert row.worst_ratio == pytest.approx(8e-3 / (1e-6 + 1e-2), rel=1e-6)
    assert row.worst_index == (0,)


def test_one_element_beyond_fails_and_is_located() -> None:
    golden = torch.zeros(3, 4, 5)
    ours = golden.clone()
    ours[2, 1, 3] = 3e-6  # 3x atol
    ours[0, 0, 0] = 5e-7
    row = compare("x", ours, golden, atol=1e-6, rtol=1e-5)
    assert not row.passed
    assert row.worst_index == (2, 1, 3)
    assert row.worst_ratio == pytest.approx(3.0, rel=1e-6)
    assert "at [2, 1, 3]" in row.summary()


def test_torch_allclose_agrees_on_random_cases() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        golden = torch.randn(17, generator=gen) * 10 ** torch.randint(-3, 4, (1,), generator=gen)
        ours = golden + torch.randn(17, generator=gen) * 1e-5
        row = compare("x", ours, golden, atol=1e-6, rtol=1e-5)
        assert row.passed == torch.allclose(ours.double(), golden.double(), 1e-5, 1e-6)


def test_zero_allowance_is_exact_and_extra_allowance_adds() -> None:
    golden = torch.tensor([3.0, 4.0])
    assert compare("i", golden.clone(), golden, 0.0, 0.0).passed
    off = compare("i", golden + torch.tensor([0.0, 1e-6]), golden, 0.0, 0.0)
    assert not off.passed and math.isinf(off.worst_ratio) and off.worst_index == (1,)
    extra = torch.tensor([0.0, 2e-6])
    assert compare("i", golden + torch.tensor([0.0, 1e-6]), golden, 0.0, 0.0, extra=extra).passed


def test_non_finite_shape_mismatch_and_uncompared_rows_fail() -> None:
    golden = torch.ones(4)
    ours = golden.clone()
    ours[1] = float("nan")
    assert not compare("n", ours, golden, 1.0, 1.0).passed
    assert not compare("s", torch.ones(5), golden, 1.0, 1.0).passed
    assert not ParityRow("r", 0.0, 0.0, 1.0, 1.0).passed  # no comparison: worst_ratio inf
    scalar = compare("0d", torch.tensor(1.0), torch.tensor(1.0 + 1e-7), 1e-6, 0.0)
    assert scalar.passed and scalar.worst_index == ()


# -- goldens at 1 and 2 threads -------------------------------------------------------------------
@pytest.fixture(params=[1, 2], ids=["threads1", "threads2"])
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    before = torch.get_num_threads()
    torch.set_num_threads(int(request.param))
    yield int(request.param)
    torch.set_num_threads(before)


def _check(model_id: str, path: Path) -> list[ParityRow]:
    rows = check_golden(model_id, path)
    failed = [r.summary() for r in rows if not r.passed]
    assert rows and not failed, failed
    return rows


@pytest.mark.parametrize(("model_id", "path"), REPO_GOLDENS, ids=lambda v: str(v).split("/")[-1])
def test_repo_goldens_pass_at_1_and_2_threads(model_id: str, path: Path, threads: int) -> None:
    _check(model_id, path)


@pytest.mark.slow
@pytest.mark.parametrize(("model_id", "path"), SHARED_GOLDENS, ids=lambda v: str(v).split("/")[-1])
def test_shared_goldens_pass_at_1_and_2_threads(model_id: str, path: Path, threads: int) -> None:
    if not path.is_file():
        pytest.skip(f"{path} not available")
    _check(model_id, path)


def test_cli_reports_worst_ratio_and_index(capsys: pytest.CaptureFixture[str]) -> None:
    golden = ROOT / "specs/parity/tdmpc2/tiny.safetensors"
    assert main(["parity", "check", "tdmpc2:ci", "--golden", str(golden)]) == 0
    out = capsys.readouterr().out
    assert "worst" in out and "at index" in out
    assert "60/60 outputs within tolerance" in out
    line = next(x for x in out.splitlines() if x.startswith("outputs.q_logits_all "))
    assert "[" in line and line.rstrip().endswith("ok")
