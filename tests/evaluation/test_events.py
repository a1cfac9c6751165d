"""Detections against annotated events: hand-made cases with known matches and latencies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bci.evaluation.events import (
    EventCounts,
    event_rates,
    match_events,
    pool_event_counts,
    score_detections,
)

# three spindles [onset, offset] (s) and three stimuli: 10.0 s (0.1 s after the first onset),
# 20.0 s (nothing), 31.0 s (inside the second)
SPINDLES = np.array([[9.9, 10.4], [30.0, 30.8], [50.0, 51.0]])
STIMULI = np.array([10.0, 20.0, 31.0])


def test_match_widening_and_budget():
    events = [[1.0, 2.0]]
    # a stimulus 0.2 s before the onset matches only with before_s >= 0.2
    assert not match_events([0.8], events).any()
    assert match_events([0.8], events, before_s=0.25).all()
    # 0.3 s after the offset: matches with after_s >= 0.3
    assert not match_events([2.3], events, after_s=0.25).any()
    assert match_events([2.3], events, after_s=0.3).all()
    # a budget of 0.5 s after the onset: 1.4 s matches, 1.6 s does not
    assert match_events([1.4, 1.6], events, max_delay_s=0.5)[:, 0].tolist() == [True, False]
    # intervals overlap when they share a point
    hits = match_events([[0.0, 1.0], [2.0, 3.0], [2.1, 3.0]], events)
    assert hits[:, 0].tolist() == [True, True, False]
    assert match_events(np.zeros(0), events).shape == (0, 1)


def test_score_detections_counts_and_latencies():
    c = score_detections(STIMULI, SPINDLES, tolerance_s=0.25)
    assert (c.n_events, c.n_detections, c.tp_events, c.tp_detections) == (3, 3, 2, 2)
    np.testing.assert_allclose(c.latencies_s, [0.1, 1.0])


def test_earliest_matching_detection_sets_the_latency():
    c = score_detections([30.5, 30.2, 30.7], [[30.0, 31.0]])
    assert c.tp_detections == 3
    np.testing.assert_allclose(c.latencies_s, [0.2])


def test_detection_before_the_onset_has_a_negative_latency():
    c = score_detections([9.7], SPINDLES, tolerance_s=0.25)
    np.testing.assert_allclose(c.latencies_s, [-0.2])


def test_latency_budget_turns_late_stimuli_into_misses():
    c = score_detections(STIMULI, SPINDLES, tolerance_s=0.25, max_delay_s=0.5)
    assert (c.tp_events, c.tp_detections) == (1, 1)  # 31.0 s is 1 s after its onset


def test_span_scores_only_what_lies_inside():
    c = score_detections(STIMULI, SPINDLES, tolerance_s=0.25, span=(15.0, 45.0))
    assert (c.n_events, c.n_detections, c.tp_events, c.tp_detections) == (1, 2, 1, 1)


def test_expert_agreement_by_interval_overlap():
    expert1 = np.array([[1.0, 2.0], [5.0, 6.0], [9.0, 9.5]])
    expert2 = np.array([[1.5, 2.5], [4.0, 4.5], [8.8, 9.2], [8.0, 9.0]])
    c = score_detections(expert2, expert1)
    assert (c.tp_events, c.tp_detections) == (2, 3)  # [8, 9] touches [9, 9.5]
    np.testing.assert_allclose(c.latencies_s, [0.5, -1.0])


def test_pool_and_rates_closed_form():
    a = score_detections(STIMULI, SPINDLES, tolerance_s=0.25)
    b = EventCounts(n_events=2, n_detections=1, tp_events=1, tp_detections=1,
                    latencies_s=[0.5])
    pooled = pool_event_counts([a, b])
    assert (pooled.n_events, pooled.n_detections, pooled.tp_events, pooled.tp_detections) == \
        (5, 4, 3, 3)
    rates = event_rates(pooled)
    assert rates["recall"] == 0.6
    assert rates["precision"] == 0.75
    assert rates["f1"] == round(2 * 0.6 * 0.75 / 1.35, 3)
    # latencies 0.1, 1.0, 0.5 s: median 500 ms, p90 0.5 + 0.8 x 0.5 = 0.9 s
    assert rates["latency_median_ms"] == 500.0
    assert rates["latency_p90_ms"] == 900.0
    assert rates["within_300ms"] == round(1 / 3, 3)
    assert (rates["n_events"], rates["n_detections"]) == (5, 4)
    assert event_rates(pooled, within_s=0.5)["within_500ms"] == round(2 / 3, 3)


def test_rates_without_matches_or_detections():
    rates = event_rates(EventCounts(n_events=4, n_detections=0, tp_events=0, tp_detections=0))
    assert (rates["recall"], rates["precision"], rates["f1"]) == (0.0, 0.0, 0.0)
    assert rates["latency_median_ms"] is None
    assert rates["within_300ms"] is None
    assert not math.isnan(rates["f1"])


def test_errors():
    with pytest.raises(ValueError, match="end >= start"):
        score_detections([[2.0, 1.0]], SPINDLES)
    with pytest.raises(ValueError, match=r"events must be intervals of shape \(n, 2\)"):
        score_detections(STIMULI, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="before_s"):
        match_events(STIMULI, SPINDLES, before_s=-0.1)
    with pytest.raises(ValueError, match="span"):
        score_detections(STIMULI, SPINDLES, span=(1.0, 2.0, 3.0))
    with pytest.raises(TypeError, match="counts"):
        event_rates({"n_events": 1})
    with pytest.raises(TypeError, match="parts"):
        pool_event_counts([{"n_events": 1}])
