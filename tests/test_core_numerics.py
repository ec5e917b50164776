"""all_finite / first_non_finite: the cheap finiteness tests agree with the elementwise one."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from worldflux.core.numerics import all_finite, first_non_finite

# finite floats up to float32's range, so sums overflow often (the slow path must answer then)
F32_MAX = float(torch.finfo(torch.float32).max)
FINITE = st.floats(min_value=-F32_MAX, max_value=F32_MAX, allow_nan=False, width=32)
ANY = st.one_of(FINITE, st.sampled_from([math.nan, math.inf, -math.inf]))


@given(st.lists(ANY, min_size=0, max_size=40))
def test_all_finite_matches_elementwise(values: list[float]) -> None:
    tensor = torch.tensor(values, dtype=torch.float32)
    assert all_finite(tensor) == bool(torch.isfinite(tensor).all())


@given(st.lists(FINITE, min_size=1, max_size=40))
def test_overflowing_sum_of_finite_values_is_finite(values: list[float]) -> None:
    tensor = torch.tensor([*values, F32_MAX, F32_MAX], dtype=torch.float32)
    assert all_finite(tensor)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_all_finite_other_float_dtypes(dtype: torch.dtype) -> None:
    tensor = torch.full((64,), 60000.0 if dtype == torch.float16 else 1e30, dtype=dtype)
    assert all_finite(tensor)  # the sum overflows, the values do not
    tensor[7] = math.nan
    assert not all_finite(tensor)


def test_integer_and_empty_tensors_are_finite() -> None:
    assert all_finite(torch.arange(5))
    assert all_finite(torch.zeros(3, dtype=torch.bool))
    assert all_finite(torch.empty(0))


@given(st.lists(st.lists(ANY, min_size=1, max_size=8), min_size=0, max_size=6))
def test_first_non_finite_matches_scan(rows: list[list[float]]) -> None:
    tensors = [torch.tensor(r, dtype=torch.float32) for r in rows]
    expected = next((i for i, t in enumerate(tensors) if not bool(torch.isfinite(t).all())), None)
    assert first_non_finite(tensors) == expected
