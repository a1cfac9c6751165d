"""The spindle closed-loop recipe on the first minutes of the DREAMS excerpts.

Offline leave one excerpt out, and a short online run over loopback LSL compared with the
offline replay.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bci.data.dreams import load_dreams_spindles

RECIPE = "recipes/spindle_closed_loop.py"
DREAMS = os.environ.get("MNE_DATASETS_DREAMS_PATH")  # set by tests/conftest.py when staged
pytestmark = [pytest.mark.real_data, pytest.mark.skipif(
    not (DREAMS and os.path.isdir(DREAMS)),
    reason="DREAMS spindle excerpts are not staged (MNE_DATASETS_DREAMS_PATH)")]
THRESHOLDS = [1.5 + 0.25 * i for i in range(11)]
MIN_DURATIONS = [0.0, 0.05, 0.1, 0.2, 0.3]


def _rates_are_sane(r: dict) -> None:
    for key in ("recall", "precision", "f1"):
        assert 0.0 <= r[key] <= 1.0, key
    if r["latency_median_ms"] is not None:
        assert r["latency_median_ms"] <= r["latency_p90_ms"]


def test_offline_leave_one_excerpt_out(tmp_path, script_main):
    # the README's quick offline run: the first 5 minutes of the 8 excerpts
    report = script_main(RECIPE)(["--minutes", "5", "--online-minutes", "0", "--out",
                                  str(tmp_path)])
    assert json.loads((tmp_path / "spindles.json").read_text()) == report
    folds = report["offline_leave_one_excerpt_out"]
    assert list(folds) == [str(k) for k in range(1, 9)]
    truth = {k: load_dreams_spindles(k).crop(300.0) for k in range(1, 9)}
    for k, fold in folds.items():
        assert fold["threshold"] in THRESHOLDS
        assert fold["min_duration_s"] in MIN_DURATIONS
        assert fold["sfreq"] == truth[int(k)].sfreq
        assert fold["n_events"] == len(truth[int(k)].reference)
        _rates_are_sane(fold)
    pooled = report["offline_pooled"]
    assert pooled["n_events"] == sum(len(ex.reference) for ex in truth.values())
    assert pooled["n_detections"] == sum(f["n_detections"] for f in folds.values())
    assert pooled["n_detections"] > 0
    _rates_are_sane(pooled)
    ceiling = report["expert2_vs_expert1"]  # excerpts 1-6 have two experts
    assert ceiling["n_events"] == sum(len(truth[k].expert1) for k in range(1, 7))
    assert ceiling["n_detections"] == sum(len(truth[k].expert2) for k in range(1, 7))
    _rates_are_sane(ceiling)
    assert report["excerpt_minutes"] == 5.0


@pytest.mark.slow
def test_online_over_lsl_matches_offline(tmp_path, script_main):
    main = script_main(RECIPE)
    argv = ["--minutes", "2", "--excerpts", "1,2", "--online-excerpt", "2", "--out",
            str(tmp_path)]
    report = main([*argv, "--online-minutes", "0.2"])  # 12 s in real time
    online = report["online"]
    assert online["summary"]["samples_lost"] == 0
    assert online["summary"]["samples_received"] >= 0.2 * 60 * 200 * 0.9
    assert online["summary"]["faults"] == {}
    # same code, same samples: the online stimuli are the offline ones, except where the
    # safety gate's 1-s interval (wall clock online, sample time offline) decides otherwise
    assert online["n_online_compared"] > 0
    assert online["online_offline_agreement"]["within_one_step"] >= 0.5
    stats = online["marker_minus_trigger_ms"]
    assert stats["n"] == online["summary"]["stimuli_fired"]
    if stats["n"]:
        assert 0 <= stats["p50"] <= stats["p99"] <= stats["max"]
    _rates_are_sane(online["by_marker_time"])
    # a recorded session scores the same when read back
    again = main([*argv, "--online-minutes", "0.2", "--evaluate-session", online["session"]])
    for key in ("by_trigger_sample", "by_marker_time", "online_offline_agreement", "span_s"):
        assert again["online"][key] == online[key]


def test_missing_data_names_the_variable(tmp_path, script_main):
    with pytest.raises(SystemExit, match="MNE_DATASETS_DREAMS_PATH"):
        script_main(RECIPE)(["--path", str(tmp_path), "--online-minutes", "0", "--out",
                             str(tmp_path / "out")])


def test_network_quick(tmp_path, script_main):
    # the network detector's quick mode: 3 excerpts of 3 minutes, a 2-trial search, with the
    # latency settings (wide low-order band-pass, early-weighted loss, goal objective, phase at
    # each spindle's own frequency)
    report = script_main(RECIPE)(["--detector", "net", "--minutes", "3", "--excerpts", "1-3",
                                  "--steps", "20", "--search", "2", "--target-phase", "0",
                                  "--net-band", "5", "22", "--net-order", "2",
                                  "--early-weight", "3", "--objective", "goal",
                                  "--phase-band", "11", "16", "--online-minutes", "0",
                                  "--out", str(tmp_path)])
    assert report["detector"] == "net"
    assert report["net_setup"] == {"band": [5.0, 22.0], "order": 2, "early_weight": 3.0,
                                   "early_s": 0.3, "objective": "goal",
                                   "phase_band": [11.0, 16.0], "phase_s": 0.3}
    methods = report["phase_methods_at_onset"]  # 4 estimates x 2 delays, every spindle
    onsets = np.concatenate([load_dreams_spindles(k).crop(180.0).reference[:, 0]
                             for k in (1, 2, 3)])
    assert len(methods) == 8
    for key, m in methods.items():  # spindles whose estimate has a full second of signal
        delay = float(key.rsplit("+", 1)[1].rstrip("s"))
        assert m["n"] == int(np.sum(onsets + delay >= 1.0)), key
    assert all(0 <= m["median_abs_deg"] <= m["p90_abs_deg"] <= 180 for m in methods.values())
    trials = json.loads((tmp_path / "search.json").read_text())
    assert len(trials) == 2
    assert all(t["objective"] == "goal" and 0.0 <= t["value"] <= 3.0 for t in trials)
    assert trials[0]["config"]["n_filters"] == 8  # the first trial is the default
    assert report["net_config"] in [t["config"] for t in trials]
    partial = json.loads((tmp_path / "folds_partial.json").read_text())
    assert partial == report["offline_leave_one_excerpt_out"]
    assert (tmp_path / "spindle_net.png").stat().st_size > 0
    folds = report["offline_leave_one_excerpt_out"]
    assert list(folds) == ["1", "2", "3"]
    for k, fold in folds.items():
        assert fold["n_events"] == len(load_dreams_spindles(int(k)).crop(180.0).reference)
        assert 0.0 < fold["threshold"] < 1.0
        _rates_are_sane(fold)
        sweep = fold["train_sweep"]  # pooled over the 2 training excerpts, by probability
        assert list(sweep) == ["0.3", "0.5", "0.7", "0.8", "0.9"]
        n_train = sum(len(load_dreams_spindles(j).crop(180.0).reference) for j in (1, 2, 3)
                      if j != int(k))
        for r in sweep.values():
            assert r["n_events"] == n_train
            _rates_are_sane(r)
        for key in ("phase", "phase_fixed_13.5hz"):  # per-spindle frequency, and fixed
            phase = fold[key]["at_stimulus"]
            assert phase["n"] <= fold["n_detections"]
            assert fold[key]["at_stimulus_in_spindles"]["n"] <= phase["n"]
            if phase["n"]:
                assert 0.0 <= phase["median_abs_deg"] <= phase["p90_abs_deg"] <= 180.0
