"""Window probabilities over held-out recordings: prediction, pooled scoring, the plot.

A network with a closed-form output (a logistic function of the window's mean amplitude) on a
recording with a planted loud seizure; hand-made traces for the scoring.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bci.data.seizure import SeizureStream, sliding_windows
from bci.evaluation.seizure_metrics import (
    StreamTrace,
    alarm_events,
    binary_scores,
    consecutive_decisions,
    plot_traces,
    pool_seizure_metrics,
    predict_stream,
    score_traces,
    seizure_metrics,
)
from bci.models.inference import predict_proba


class Amplitude(nn.Module):
    """Logits ``[0, gain * (mean |x| - 1)]``: P(seizure) = sigmoid(gain * (mean |x| - 1))."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.abs().mean((1, 2))
        return torch.stack([torch.zeros_like(a), self.gain * (a - 1.0)], 1)


def _stream() -> SeizureStream:
    # 60 s at 100 Hz, 2 channels: 0 everywhere, 2.0 during the seizure [20, 30] s
    signal = np.zeros((2, 6000), dtype=np.float32)
    signal[:, 2000:3000] = 2.0
    return SeizureStream(signal, 100.0, np.array([[20.0, 30.0]]), [], "planted", name="rec")


def test_predict_stream_windows_and_probabilities():
    stream = _stream()
    models = {"steep": Amplitude(4.0), "flat": Amplitude(0.5)}
    trace = predict_stream(models, stream, window_s=2.0, step_s=1.0)
    windows, labels, times = sliding_windows(stream.signal, 100.0, 2.0, 1.0, stream.intervals)
    np.testing.assert_array_equal(trace.times, np.arange(2.0, 61.0))
    np.testing.assert_array_equal(trace.times, times)
    # labelled windows: at least 1 s inside [20, 30]: ends 21 .. 31 s
    assert np.flatnonzero(trace.labels).tolist() == list(range(19, 30))
    np.testing.assert_array_equal(trace.labels, labels)
    assert (trace.name, trace.duration_s) == ("rec", 60.0)
    assert list(trace.probas) == ["steep", "flat"]
    for name, model in models.items():
        np.testing.assert_array_equal(trace.probas[name], predict_proba(model, windows)[:, 1])
    # closed form: a window inside the seizure has mean |x| = 2, one outside 0
    p = trace.probas["steep"]
    assert p[24] == pytest.approx(1 / (1 + math.exp(-4.0)), rel=1e-6)  # ends at 26 s
    assert p[0] == pytest.approx(1 / (1 + math.exp(4.0)), rel=1e-6)
    assert p[19] == pytest.approx(0.5, rel=1e-6)  # [19, 21] s: half inside, mean |x| = 1
    with pytest.raises(TypeError, match="stream must be"):
        predict_stream(models, stream.signal, window_s=2.0, step_s=1.0)


T = np.arange(1.0, 101.0)  # decisions every second of a 100-s recording


def _trace(name, proba_times, intervals, duration_s):
    p = np.zeros(len(T), dtype=np.float32)
    p[np.asarray(proba_times, dtype=int) - 1] = 0.9
    labels = np.zeros(len(T), dtype=int)
    for onset, offset in intervals:
        labels[(T > onset) & (T <= offset)] = 1
    return StreamTrace(name, T, labels, np.array(intervals, dtype=float).reshape(-1, 2),
                       duration_s, {"m": p, "other": 1 - p})


def test_score_traces_pools_the_recordings():
    a = _trace("a", [23, 24, 45], [[20.0, 30.0], [60.0, 70.0]], 3620.0)
    b = _trace("b", [50, 51, 90], [[50.0, 55.0]], 1810.0)
    rules = dict(threshold=0.5, min_consecutive=2, merge_gap_s=10.0, tolerance_s=2.0)
    scores = score_traces([a, b], "m", **rules)
    per = [seizure_metrics(t.probas["m"], T, t.intervals, labels=t.labels,
                           duration_s=t.duration_s, **rules) for t in (a, b)]
    assert [m.as_dict() for m in scores.recordings] == [m.as_dict() for m in per]
    assert scores.pooled == pool_seizure_metrics(per, [80, 95], [20, 5])
    # a: the first seizure found at 24 s (2 consecutive), 45 s is one window (no alarm);
    # b: found at 51 s, 90 s alone: no false alarm either
    assert (scores.pooled.n_seizures, scores.pooled.n_detected) == (3, 2)
    assert scores.pooled.latencies_s == [4.0, 1.0]
    assert scores.pooled.n_false_alarms == 0
    # raw window decisions (no consecutive rule) over the 200 windows: 6 positive; in
    # seizure windows (labels: decision time in (onset, offset]): 23, 24 of a and 51 of b
    pred = np.concatenate([a.probas["m"], b.probas["m"]]) >= 0.5
    truth = np.concatenate([a.labels, b.labels])
    assert scores.window == binary_scores(pred, truth)
    assert scores.window["sensitivity"] == pytest.approx(3 / 25)
    assert scores.window["specificity"] == pytest.approx(172 / 175)


def test_score_traces_refuses_unknown_models_and_empty_input():
    a = _trace("a", [23], [[20.0, 30.0]], 3600.0)
    with pytest.raises(ValueError, match=r"No probabilities of model 'x' in trace 'a'; it has "
                                         r"\['m', 'other'\]"):
        score_traces([a], "x")
    with pytest.raises(ValueError, match="traces is empty"):
        score_traces([], "m")
    with pytest.raises(TypeError, match="traces must be"):
        score_traces(a, "m")


def test_plot_traces_draws_probabilities_seizures_and_alarms():
    import matplotlib
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    a = _trace("a", [23, 24, 45, 46], [[20.0, 30.0]], 100.0)
    b = _trace("b", [50, 51], [[50.0, 55.0]], 100.0)
    fig = plot_traces([a, b], threshold=0.5, min_consecutive=2, merge_gap_s=0.0, title="t")
    # made without pyplot: no figure registered, the backend untouched
    assert plt.get_fignums() == figures
    assert matplotlib.get_backend() == backend
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["m", "other"]
    ax = fig.axes[0]
    black = [line for line in ax.lines if line.get_color() == "k"]
    np.testing.assert_array_equal(black[0].get_ydata(), a.probas["m"])
    np.testing.assert_allclose(black[1].get_xdata(), (100.0 + T) / 60)  # b after a
    alarms = [line for line in ax.lines if line.get_color() == "tab:orange"]
    expected = sum(len(alarm_events(consecutive_decisions(t.probas["m"] >= 0.5, 2), T))
                   for t in (a, b))
    assert len(alarms) == expected == 3  # 23-24 and 45-46 s in a, 50-51 s in b
    np.testing.assert_allclose(alarms[2].get_xdata(), [(100 + 51) / 60, (100 + 51) / 60])
    assert len(ax.patches) == 2  # the two seizures, shaded
    assert fig._suptitle.get_text() == "t"
    with pytest.raises(ValueError, match="at least one trace"):
        plot_traces([])
