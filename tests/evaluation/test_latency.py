"""Latency statistics: closed forms, filtering, the options the scripts use."""

from __future__ import annotations

import numpy as np
import pytest

from bci.evaluation.latency import latency_stats


def test_percentiles_of_one_to_hundred_closed_form():
    # numpy's linear percentile of 1..100: 1 + q / 100 * 99
    stats = latency_stats(range(1, 101))
    assert stats == {"p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0, "n": 100}


def test_missing_and_non_finite_values_are_left_out():
    stats = latency_stats([4.0, None, float("nan"), 2.0, float("inf"), -float("inf")])
    assert stats["n"] == 2
    assert stats["p50"] == 3.0
    assert stats["max"] == 4.0


def test_empty_gives_none_for_every_statistic():
    assert latency_stats([]) == {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    assert latency_stats([float("nan")], percentiles=(50, 99)) == {
        "p50": None, "p99": None, "max": None, "n": 0}


def test_scale_and_decimals_seconds_to_milliseconds():
    stats = latency_stats(np.array([0.001, 0.002, 0.0035, 0.010]), percentiles=(50, 99),
                          decimals=2, scale=1e3)
    # p50 between 2 and 3.5 ms; p99 = 3.5 + 0.97 x (10 - 3.5) = 9.805 ms
    assert stats == {"p50": 2.75, "p99": 9.8, "max": 10.0, "n": 4}


def test_same_numbers_as_separate_numpy_percentiles():
    values = np.random.default_rng(0).gamma(2.0, 3.0, 1001)
    stats = latency_stats(values, percentiles=(50, 99), decimals=3)
    assert stats == {"p50": round(float(np.percentile(values, 50)), 3),
                     "p99": round(float(np.percentile(values, 99)), 3),
                     "max": round(float(values.max()), 3), "n": 1001}


def test_realtime_report_uses_the_same_function():
    from bci.realtime import report

    assert report.latency_stats is latency_stats


def test_bad_options():
    with pytest.raises(ValueError, match="percentiles"):
        latency_stats([1.0], percentiles=(50, 101))
    with pytest.raises(TypeError, match="percentiles"):
        latency_stats([1.0], percentiles=50)
    with pytest.raises(ValueError, match="decimals"):
        latency_stats([1.0], decimals=-1)
    with pytest.raises(ValueError, match="scale"):
        latency_stats([1.0], scale=0.0)
    with pytest.raises(ValueError, match="scale"):
        latency_stats([1.0], scale=float("nan"))
