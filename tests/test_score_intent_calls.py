"""tools/score_intent_calls.py's arithmetic: pooled moment F1 and the paired bootstrap over calls."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import score_intent_calls as sic  # noqa: E402


def test_pooled_f1_is_bench_coachs_figure() -> None:
    # bench_coach: F1 = 2 hits / (raised + expected), summed over the calls.
    rows = np.array([[3, 4, 5], [2, 2, 4], [0, 1, 0]])
    assert sic.pooled_f1(rows) == pytest.approx(2 * 5 / (7 + 9))
    assert sic.pooled_f1(np.zeros((2, 3), dtype=int)) == 0.0


def test_a_call_with_nothing_expected_and_nothing_raised_is_perfect() -> None:
    assert sic.call_f1(np.array([0, 0, 0])) == 1.0
    assert sic.call_f1(np.array([0, 2, 0])) == 0.0
    assert sic.call_f1(np.array([2, 2, 2])) == 1.0


def test_the_same_model_twice_differs_by_nothing() -> None:
    rows = np.array([[3, 4, 5], [2, 2, 4], [1, 3, 2]] * 5)
    assert sic.paired_interval(rows, rows) == (0.0, 0.0)


def test_a_gain_on_every_call_has_an_interval_above_zero_and_one_call_does_not() -> None:
    reference = np.array([[3, 5, 5]] * 30)
    better = np.array([[4, 5, 5]] * 30)  # one more right moment, one fewer false, in every call
    low, high = sic.paired_interval(reference, better)
    assert 0.0 < low <= high
    assert low == pytest.approx(sic.pooled_f1(better) - sic.pooled_f1(reference))
    lucky = reference.copy()
    lucky[0] = [5, 5, 5]  # the same gain (0.2 x 30 calls / 10) landing on a single call
    low, high = sic.paired_interval(reference, lucky)
    assert low <= 0.0 < high
