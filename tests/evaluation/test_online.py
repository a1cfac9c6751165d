"""ITR and per-trial metrics of pseudo-online evaluations: closed forms and hand-made cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bci.evaluation.online import (
    format_online_table,
    itr_bits_per_min,
    plot_accuracy_curves,
    summarize_online,
    trial_metrics,
    wolpaw_bits,
)


def test_wolpaw_bits_closed_forms():
    for n in (2, 3, 4, 40):
        assert wolpaw_bits(n, 1.0) == pytest.approx(np.log2(n), abs=1e-12)
        assert wolpaw_bits(n, 1.0 / n) == 0.0
        assert wolpaw_bits(n, 0.5 / n) == 0.0  # below chance: no information
    # 2 classes at p: 1 - H(p), the capacity of a binary symmetric channel
    p = 0.9
    assert wolpaw_bits(2, p) == pytest.approx(1 + p * np.log2(p) + (1 - p) * np.log2(1 - p))
    # 4 classes at 0.7 (errors spread over the 3 others)
    assert wolpaw_bits(4, 0.7) == pytest.approx(2 + 0.7 * np.log2(0.7) + 0.3 * np.log2(0.1))


def test_itr_per_minute():
    # one bit every 6 s is 10 bits/min; 2 bits (4 classes, perfect) every 4 s is 30
    assert itr_bits_per_min(2, 1.0, 6.0) == pytest.approx(10.0)
    assert itr_bits_per_min(4, 1.0, 4.0) == pytest.approx(30.0)


@pytest.mark.parametrize(("args", "err", "match"), [
    ((1, 0.5), ValueError, "n_classes"),
    ((2, 1.5), ValueError, "accuracy"),
    ((2, float("nan")), ValueError, "accuracy"),
])
def test_wolpaw_bad_input(args, err, match):
    with pytest.raises(err, match=match):
        wolpaw_bits(*args)


def test_itr_refuses_a_non_positive_time():
    with pytest.raises(ValueError, match="selection_s"):
        itr_bits_per_min(2, 1.0, 0.0)


def test_trial_metrics_by_hand():
    times = np.array([0.0, 0.5, 1.0, 1.5])
    # trial 0 (class 1): wrong, wrong, right, right; trial 1 (class 0): right everywhere, the
    # last window undecided
    proba = np.array([
        [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]],
        [[0.7, 0.3], [0.8, 0.2], [0.95, 0.05], [np.nan, np.nan]],
    ])
    labels = np.array([1, 0])
    activations = [[(0.0, 0), (1.5, 1)], [(1.0, 0)]]
    m = trial_metrics(times, proba, labels, activations, deadline_s=1.2)
    np.testing.assert_array_equal(m["correct"][0], [0, 0, 1, 1])
    np.testing.assert_array_equal(m["correct"][1][:3], [1, 1, 1])
    assert np.isnan(m["correct"][1][3])
    # the deadline 1.2 s is decided by the window ending at 1.0 s
    np.testing.assert_array_equal(m["deadline_correct"], [1.0, 1.0])
    # trial 0 selected class 0 at 0 s (a confident error); trial 1 class 0 at 1 s
    np.testing.assert_array_equal(m["selection_s"], [0.0, 1.0])
    np.testing.assert_array_equal(m["selection_correct"], [0.0, 1.0])
    np.testing.assert_array_equal(m["confident"], [True, True])
    # the first correct confident decision of trial 0 comes after the deadline
    np.testing.assert_array_equal(m["first_correct_s"], [1.5, 1.0])


def test_trial_metrics_forced_decision_without_confidence():
    times = np.array([0.0, 1.0, 2.0])
    proba = np.array([[[0.6, 0.4], [0.4, 0.6], [0.45, 0.55]]])
    m = trial_metrics(times, proba, np.array([1]), [[]], deadline_s=2.0)
    assert m["selection_s"][0] == 2.0
    assert m["selection_correct"][0] == 1.0
    assert not m["confident"][0]
    assert np.isnan(m["first_correct_s"][0])


def test_trial_metrics_shape_errors():
    with pytest.raises(ValueError, match="proba must have shape"):
        trial_metrics([0.0, 1.0], np.zeros((1, 3, 2)), [0], [[]], deadline_s=1.0)
    with pytest.raises(ValueError, match="one list per trial"):
        trial_metrics([0.0], np.zeros((2, 1, 2)), [0, 1], [[]], deadline_s=1.0)


def _results():
    rows = []
    for pipe, online in [("A", 0.9), ("B", 0.7)]:
        for subject in (1, 2):
            rows.append({"pipeline": pipe, "subject": subject, "score": 0.95,
                         "offline_accuracy": 0.9, "online_accuracy": online,
                         "selection_accuracy": online - 0.1, "median_decision_s": 2.0,
                         "itr_bits_min": 5.0 * subject, "false_activations_per_min": np.nan})
    return pd.DataFrame(rows)


def test_summary_and_table():
    summary = summarize_online(_results())
    assert list(summary.index) == ["A", "B"]
    assert summary.loc["A", "itr_bits_min"] == pytest.approx(7.5)
    assert summary.loc["B", "online_accuracy"] == pytest.approx(0.7)
    assert (summary["n"] == 2).all()
    table = format_online_table(_results())
    lines = table.splitlines()
    assert lines[2].split()[:4] == ["A", "0.950", "0.900", "0.900"]
    assert "n/a" in lines[2]  # no rest period: no false-activation rate


def test_accuracy_plot(tmp_path):
    curves = pd.DataFrame({"pipeline": ["A"] * 4, "time_s": [0.0, 1.0, 0.0, 1.0],
                           "accuracy": [0.5, 0.8, 0.5, 1.0], "dataset": "D"})
    fig = plot_accuracy_curves(curves, tmp_path / "acc.png", deadline_s=1.0)
    (line, _) = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), [0.5, 0.9])  # fold mean per time
    assert (tmp_path / "acc.png").stat().st_size > 1000
