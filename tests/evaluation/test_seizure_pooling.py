"""Pooling seizure metrics over recordings, binary and segment scores: hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bci.evaluation.seizure_metrics import (
    binary_scores,
    pool_seizure_metrics,
    segment_scores,
    seizure_metrics,
)

T = np.arange(1.0, 101.0)  # decisions every second


def _scores(*times):
    p = np.zeros(len(T))
    p[np.asarray(times, dtype=int) - 1] = 1.0
    return p


def test_pool_two_recordings_as_one_long_recording():
    # recording a: 2 seizures, the first found 3 s late, one false alarm; 3620 s long
    a = seizure_metrics(_scores(23, 24, 45), T, [[20.0, 30.0], [60.0, 70.0]],
                        duration_s=3620.0)
    # recording b: 1 seizure found at once, no false alarm; 1810 s long
    b = seizure_metrics(_scores(50, 51), T, [[50.0, 55.0]], duration_s=1810.0)
    n_neg = [len(T) - 22, len(T) - 6]
    n_pos = [22, 6]
    m = pool_seizure_metrics([a, b], n_neg, n_pos)
    assert (m.n_seizures, m.n_detected, m.n_false_alarms, m.n_alarms) == (3, 2, 1, 3)
    assert m.sensitivity == pytest.approx(2 / 3)
    # 3600 s + 1805 s of non-seizure time
    assert m.interictal_hours == pytest.approx(5405 / 3600)
    assert m.false_alarms_per_hour == pytest.approx(1 / (5405 / 3600))
    assert m.latencies_s == [3.0, 0.0]
    assert m.latency_s == 1.5
    # window specificity weighted by the non-seizure windows: (77 + 94) / (78 + 94)
    assert m.specificity == pytest.approx((n_neg[0] - 1 + n_neg[1]) / sum(n_neg))
    assert m.window_sensitivity == pytest.approx((2 + 2) / 28)


def test_recording_without_seizure_windows_has_no_weight():
    a = seizure_metrics(_scores(20, 21), T, [[20.0, 21.0]], duration_s=200.0)
    b = seizure_metrics(_scores(80), T, [], duration_s=200.0)  # window_sensitivity nan
    assert math.isnan(b.window_sensitivity)
    m = pool_seizure_metrics([a, b], [98, 100], [2, 0])
    assert m.window_sensitivity == 1.0
    assert m.sensitivity == 1.0
    assert m.n_false_alarms == 1


def test_pool_one_recording_is_a_copy():
    a = seizure_metrics(_scores(23, 24), T, [[20.0, 30.0]], duration_s=200.0)
    m = pool_seizure_metrics([a], [89], [11])
    assert m == a
    assert m is not a
    assert m.latencies_s is not a.latencies_s


def test_pool_errors():
    a = seizure_metrics(_scores(23), T, [[20.0, 30.0]], duration_s=200.0)
    with pytest.raises(ValueError, match="one entry per recording"):
        pool_seizure_metrics([a, a], [1], [1, 1])
    with pytest.raises(ValueError, match="one entry per recording"):
        pool_seizure_metrics([], [], [])
    with pytest.raises(TypeError, match="metrics"):
        pool_seizure_metrics([a.as_dict()], [1], [1])
    with pytest.raises(ValueError, match="n_negative"):
        pool_seizure_metrics([a], [-1], [1])


def test_binary_scores_hand_case():
    s = binary_scores([1, 1, 0, 0, 0, 1], [1, 0, 0, 0, 1, 1])
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["sensitivity"] == pytest.approx(2 / 3)
    assert s["specificity"] == pytest.approx(2 / 3)
    assert s["balanced_accuracy"] == pytest.approx(2 / 3)
    # no positive case: sensitivity 0 by convention, not nan
    assert binary_scores([0, 1], [0, 0]) == {"accuracy": 0.5, "sensitivity": 0.0,
                                             "specificity": 0.5, "balanced_accuracy": 0.25}
    with pytest.raises(ValueError, match="one value per window"):
        binary_scores([0, 1], [0])


def test_segment_scores_average_the_windows_of_each_segment():
    proba = np.array([0.9, 0.2, 0.3, 0.4, 0.8, 0.1], dtype=np.float32)
    owner = np.array([4, 4, 1, 1, 2, 2])
    ictal = np.array([False, False, True, False, True])
    # segment 1: mean 0.35 -> 0 (truth 0); 2: 0.45 -> 0 (truth 1); 4: 0.55 -> 1 (truth 1)
    s = segment_scores(proba, owner, ictal)
    assert s["accuracy"] == pytest.approx(2 / 3)
    assert s["sensitivity"] == 0.5
    assert s["specificity"] == 1.0
    assert segment_scores(proba, owner, ictal, threshold=0.4)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="ictal has 3 segments"):
        segment_scores(proba, owner, ictal[:3])
    with pytest.raises(ValueError, match="one value per window"):
        segment_scores(proba, owner[:3], ictal)

