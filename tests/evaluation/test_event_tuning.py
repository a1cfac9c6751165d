"""Around the event scoring: leave-one-out choice of parameters, agreement, example plot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bci.evaluation.events import (
    EventCounts,
    choose_leave_one_out,
    detection_agreement,
    event_rates,
    plot_detections,
    pool_event_counts,
)


def _grid_counts():
    # 3 recordings x 2 parameter sets; parameter "hi" is perfect on a and b, useless on c
    return {("a", "lo"): EventCounts(4, 4, 2, 2), ("a", "hi"): EventCounts(4, 4, 4, 4),
            ("b", "lo"): EventCounts(4, 4, 2, 2), ("b", "hi"): EventCounts(4, 4, 4, 4),
            ("c", "lo"): EventCounts(4, 4, 3, 3), ("c", "hi"): EventCounts(4, 8, 0, 0)}


def test_choice_is_made_on_the_other_recordings_only():
    counts = _grid_counts()
    choice = choose_leave_one_out(counts)
    # a: on b + c, lo pools 5/8 (F1 0.625), hi 4/8 events and 4/12 detections (F1 0.4)
    assert choice["a"] == ("lo", 0.625)
    assert choice["b"] == ("lo", 0.625)
    # c: on a + b, hi is perfect
    assert choice["c"] == ("hi", 1.0)
    assert list(choice) == ["a", "b", "c"]
    for k, (params, value) in choice.items():  # the same as pooling by hand
        others = [counts[o, params] for o in "abc" if o != k]
        assert value == event_rates(pool_event_counts(others))["f1"]
    # another rate: recall on b + c is 5/8 for lo, 4/8 for hi
    assert choose_leave_one_out(counts, rate="recall")["a"] == ("lo", 0.625)


def test_ties_go_to_the_first_parameters():
    same = EventCounts(2, 2, 1, 1)
    counts = {(k, p): same for k in (1, 2) for p in ((2.0, 0.1), (1.5, 0.0))}
    assert choose_leave_one_out(counts) == {1: ((2.0, 0.1), 0.5), 2: ((2.0, 0.1), 0.5)}


def test_choice_refuses_an_incomplete_grid():
    counts = _grid_counts()
    del counts["b", "hi"]
    with pytest.raises(ValueError, match=r"every parameter set on every recording; missing "
                                         r"\[\('b', 'hi'\)\]"):
        choose_leave_one_out(counts)
    with pytest.raises(ValueError, match="at least 2 recordings, got 1"):
        choose_leave_one_out({("a", 1): EventCounts(1, 1, 1, 1)})
    with pytest.raises(ValueError, match=r"keyed by \(recording, parameters\)"):
        choose_leave_one_out({"a": EventCounts(1, 1, 1, 1)})
    with pytest.raises(ValueError, match="rate"):
        choose_leave_one_out(_grid_counts(), rate="latency")


def test_agreement_of_two_runs():
    online = [1.0, 2.0, 3.0, 4.005]
    offline = [0.995, 3.2, 4.0, 9.0]
    # nearest offline detection: 0.005, 1.2, 0.2, 0.005 s away
    assert detection_agreement(online, offline, tolerance_s=0.01) == 0.5
    assert detection_agreement(online, offline, tolerance_s=0.2 + 1e-9) == 0.75
    assert detection_agreement(online, offline, tolerance_s=2.0) == 1.0
    assert detection_agreement(online, offline[::-1], tolerance_s=0.01) == 0.5  # any order
    # brute force on random times
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 100, 50), rng.uniform(0, 100, 70)
    brute = np.mean([np.min(np.abs(b - t)) <= 0.5 for t in a])
    assert detection_agreement(a, b, tolerance_s=0.5) == brute
    assert math.isnan(detection_agreement([], offline, tolerance_s=0.1))
    assert detection_agreement(online, [], tolerance_s=0.1) == 0.0
    with pytest.raises(ValueError, match="tolerance_s"):
        detection_agreement(online, offline, tolerance_s=float("nan"))


def test_plot_detections_shows_the_events_in_the_span():
    import matplotlib.pyplot as plt

    figures = plt.get_fignums()
    sfreq = 100.0
    signal = np.sin(np.arange(6000) / sfreq * 2 * np.pi * 13) * 1e-5
    events = np.array([[5.0, 6.0], [20.0, 21.0], [30.0, 31.0], [50.0, 50.5]])
    stims = np.array([5.4, 20.9, 33.5, 45.0])
    fig = plot_detections(signal, sfreq, events, stims, filtered=signal / 2,
                          span_s=(10.0, 60.0), n_examples=2, event_label="experts",
                          detection_label="stimulus")
    assert plt.get_fignums() == figures  # no pyplot figure
    # events in the span: 20, 30, 50 s; two of them evenly spaced: the first and the last
    assert len(fig.axes) == 2
    first, last = fig.axes
    assert first.get_xlim()[0] <= 18.0
    assert first.get_xlim()[1] >= 23.0
    signal_line = first.lines[0]
    np.testing.assert_allclose(signal_line.get_xdata(), np.arange(1800, 2300) / sfreq)
    np.testing.assert_allclose(signal_line.get_ydata(), signal[1800:2300] * 1e6)
    # stimuli within the shown stretch only: 20.9 s around the first, none around 50 s
    assert [line.get_xdata()[0] for line in first.lines[2:]] == [20.9]
    assert len(last.lines) == 2
    labels = [t.get_text() for t in first.get_legend().get_texts()]
    assert labels == ["signal", "filtered", "experts", "stimulus"]
    empty = plot_detections(signal, sfreq, events, stims, span_s=(100.0, 200.0))
    assert empty.axes[0].texts[0].get_text() == "no event in the span"
    with pytest.raises(ValueError, match="one channel"):
        plot_detections(signal[None], sfreq, events, stims)
