"""Event-level seizure metrics on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bci.evaluation.seizure_metrics import (
    alarm_events,
    consecutive_decisions,
    seizure_metrics,
)

T = np.arange(1.0, 101.0)  # decisions every second, 1 .. 100 s


def _scores(*positive_times):
    p = np.zeros(len(T))
    for t in positive_times:
        p[int(t) - 1] = 1.0
    return p


def test_perfect_detector():
    intervals = [[20.0, 30.0], [60.0, 70.0]]
    p = _scores(*range(20, 31), *range(60, 71))
    m = seizure_metrics(p, T, intervals, duration_s=100.0)
    assert m.sensitivity == 1.0
    assert m.n_detected == 2
    assert m.specificity == 1.0
    assert m.window_sensitivity == 1.0
    assert m.false_alarms_per_hour == 0
    assert m.n_false_alarms == 0
    assert m.n_alarms == 2
    assert m.latency_s == 0.0
    assert m.latencies_s == [0.0, 0.0]
    assert m.interictal_hours == pytest.approx(80 / 3600)


def test_missed_seizure_false_alarm_and_latency():
    # seizure 1 detected 3 s late; seizure 2 missed; one false alarm of 2 windows at 45-46 s
    intervals = [[20.0, 30.0], [60.0, 70.0]]
    p = _scores(23, 24, 25, 45, 46)
    m = seizure_metrics(p, T, intervals, duration_s=3620.0)
    assert m.sensitivity == 0.5
    assert m.latencies_s == [3.0]
    assert m.n_false_alarms == 1
    assert m.n_alarms == 2
    # 1 false alarm over 3620 - 20 s = 1 h of non-seizure time
    assert m.false_alarms_per_hour == pytest.approx(1.0)
    # window specificity: 2 positives among the non-seizure windows (decision time outside)
    n_neg = len(T) - 22
    assert m.specificity == pytest.approx((n_neg - 2) / n_neg)
    assert m.window_sensitivity == pytest.approx(3 / 22)


def test_tolerance_counts_late_detections():
    p = _scores(33, 34)  # after the offset at 30 s
    m0 = seizure_metrics(p, T, [[20.0, 30.0]])
    assert m0.sensitivity == 0
    assert m0.n_false_alarms == 1
    assert math.isnan(m0.latency_s)
    m4 = seizure_metrics(p, T, [[20.0, 30.0]], tolerance_s=4.0)
    assert m4.sensitivity == 1
    assert m4.n_false_alarms == 0
    assert m4.latency_s == 13.0


def test_alarm_running_at_onset_counts_with_latency_from_first_inside_decision():
    p = _scores(*range(15, 25))  # starts 5 s before the onset
    m = seizure_metrics(p, T, [[20.0, 30.0]])
    assert m.sensitivity == 1
    assert m.n_false_alarms == 0
    assert m.latencies_s == [0.0]


def test_min_consecutive_and_merge_gap():
    p = _scores(10, 40, 41, 44, 45)
    # isolated positives removed by the 2-of-2 rule: 10 and the first of each pair go
    assert consecutive_decisions(p >= 0.5, 2).nonzero()[0].tolist() == [40, 44]
    m = seizure_metrics(p, T, [], min_consecutive=2)
    assert m.n_alarms == 2
    assert math.isnan(m.sensitivity)
    merged = seizure_metrics(p, T, [], min_consecutive=2, merge_gap_s=5.0)
    assert merged.n_alarms == 1
    assert merged.n_false_alarms == 1
    np.testing.assert_array_equal(alarm_events(p >= 0.5, T, merge_gap_s=5.0),
                                  [[10.0, 10.0], [40.0, 45.0]])


def test_threshold_on_probabilities():
    p = np.full(len(T), 0.3)
    p[24:28] = 0.8
    assert seizure_metrics(p, T, [[20.0, 30.0]]).sensitivity == 1.0
    assert seizure_metrics(p, T, [[20.0, 30.0]], threshold=0.9).sensitivity == 0.0


def test_labels_given_explicitly():
    labels = np.zeros(len(T), dtype=int)
    labels[:10] = 1
    m = seizure_metrics(_scores(1, 2), T, [[0.0, 10.0]], labels=labels)
    assert m.window_sensitivity == 0.2
    assert m.specificity == 1.0


def test_errors():
    with pytest.raises(ValueError, match=r"scores \(3\) and times \(100\)"):
        seizure_metrics([0, 1, 0], T, [])
    with pytest.raises(ValueError, match="offset >= onset"):
        seizure_metrics(_scores(), T, [[5.0, 2.0]])
    with pytest.raises(ValueError, match="strictly increasing"):
        alarm_events([1, 1], [2.0, 1.0])
    with pytest.raises(ValueError, match=r"min_consecutive must be an int >= 1 \(windows\), got 0"):
        consecutive_decisions([1, 0], 0)
    with pytest.raises(TypeError, match=r"min_consecutive must be an int \(windows\), got float"):
        consecutive_decisions([1, 0], 2.0)
    with pytest.raises(ValueError, match=r"merge_gap_s must be a number >= 0 \(seconds\), got nan"):
        alarm_events([1, 1], [1.0, 2.0], merge_gap_s=float("nan"))
    assert alarm_events([1, 0, 1], [1.0, 2.0, 3.0], merge_gap_s=np.inf).tolist() == [[1.0, 3.0]]
    with pytest.raises(ValueError, match=r"tolerance_s must be a number >= 0 \(seconds\), got -1"):
        seizure_metrics(_scores(), T, [], tolerance_s=-1.0)
    with pytest.raises(ValueError, match=r"duration_s must be a finite number > 0 \(seconds\), "
                                         r"got 0.0"):
        seizure_metrics(_scores(), T, [], duration_s=0.0)
    with pytest.raises(TypeError, match=r"duration_s must be a number \(seconds\), got str"):
        seizure_metrics(_scores(), T, [], duration_s="3600")
    with pytest.raises(ValueError, match=r"labels \(3\) and times \(100\)"):
        seizure_metrics(_scores(), T, [], labels=[0, 1, 0])
