"""The seizure recipe end to end (small in-process configurations): synthetic Bonn-like
segments, and a tiny CHB-MIT case written by the test.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bci.models._threads import torch_threads

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "seizure_spiking_conformer.py"


def _recipe(monkeypatch):
    spec = importlib.util.spec_from_file_location("seizure_spiking_conformer", RECIPE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _check_outputs(summary: dict, out) -> dict:
    """Checks shared by every data mode; returns the full metrics.json."""
    assert summary["false_alarms_per_hour"] >= 0
    assert 0.0 <= summary["neuron_update_saving"] < 1.0
    # spiking model: accumulates after the input layer; the twin only multiply-accumulates
    assert summary["effective_acs_spiking"] > 0
    assert summary["synops_twin"] > summary["effective_macs_spiking"]
    for name in ("metrics.json", "stream_probability.png", "training.png"):
        assert (out / name).stat().st_size > 0
    full = json.loads((out / "metrics.json").read_text())
    assert set(full["results"]) == {"spiking", "spiking_lif", "twin", "spiking@lif",
                                    "spiking_lif@approx"}
    assert not set(full["split"]["train"]) & set(full["split"]["test"])
    return full


def test_recipe_quick_synthetic(tmp_path, capsys, monkeypatch):
    recipe = _recipe(monkeypatch)
    with torch_threads(1):
        recipe.main(["--quick", "--data", "synthetic", "--epochs", "2", "--segments-per-set", "5",
                     "--out", str(tmp_path)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["data"] == "synthetic"
    assert summary["quick"] is True
    for key in ("sensitivity", "specificity", "false_alarms_per_hour", "synops_spiking",
                "synops_twin", "neuron_update_saving", "latency_s", "segment_accuracy",
                "neuron_update_saving_lif_trained_weights", "lif_trained_segment_accuracy"):
        assert key in summary, key
    for key in ("sensitivity", "specificity", "segment_accuracy", "twin_segment_accuracy"):
        assert 0.0 <= summary[key] <= 1.0, key
    _check_outputs(summary, tmp_path)


# CHB-MIT: a tiny case written by the test (4 common bipolar channels; the first file has one
# more; 256 Hz; seeded noise with louder 3 Hz seizures). Split by file: the last of the three
# seizure files and the last seizure-free file are held out.
CHB_CHANNELS = ["FP1-F7", "F7-T7", "T7-P7", "P7-O1"]
CHB_FILES = {  # name: (channels, duration (s), seizures (s))
    "chb02_01.edf": (CHB_CHANNELS + ["FT9-FT10"], 60, []),
    "chb02_02.edf": (CHB_CHANNELS, 90, [(20.0, 40.0), (60.0, 75.0)]),
    "chb02_03.edf": (CHB_CHANNELS, 90, [(30.0, 50.0)]),
    "chb02_04.edf": (CHB_CHANNELS, 90, [(45.0, 65.0)]),
    "chb02_05.edf": (CHB_CHANNELS, 60, []),
}


def test_recipe_quick_chbmit_splits_by_file(tmp_path, capsys, monkeypatch):
    pytest.importorskip("edfio")
    from tests._chbmit_files import write_case

    recipe = _recipe(monkeypatch)
    write_case(tmp_path / "data", "chb02", CHB_FILES)
    out = tmp_path / "out"
    with torch_threads(1):
        recipe.main(["--quick", "--data", "chbmit", "--path", str(tmp_path / "data"),
                     "--subject", "2", "--epochs", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["data"].startswith("real continuous CHB-MIT recordings (case chb02")
    assert "real continuous CHB-MIT recordings" in printed
    assert summary["quick"] is True
    assert summary["subject"] == 2
    # channels common to all files, in the first file's order; resampled to 128 Hz
    assert summary["channels"] == CHB_CHANNELS
    assert summary["sfreq"] == 128.0
    assert summary["train_files"] == ["chb02_01.edf", "chb02_02.edf", "chb02_03.edf"]
    assert summary["test_files"] == ["chb02_04.edf", "chb02_05.edf"]
    assert summary["n_test_seizures"] == 1
    assert summary["test_hours"] == pytest.approx(150 / 3600)
    for key in ("sensitivity", "specificity", "false_alarms_per_hour", "latency_s",
                "window_accuracy", "window_balanced_accuracy", "twin_window_accuracy",
                "synops_spiking", "synops_twin", "neuron_update_saving",
                "same_weights_plain_lif_window_accuracy", "lif_trained_window_accuracy",
                "neuron_update_saving_lif_trained_weights"):
        assert key in summary, key
    assert "segment_accuracy" not in summary  # no segments in continuous recordings
    for key in ("sensitivity", "specificity", "window_accuracy", "window_balanced_accuracy",
                "twin_window_accuracy", "lif_trained_window_accuracy"):
        assert 0.0 <= summary[key] <= 1.0, key
    full = _check_outputs(summary, out)
    # training windows (2 s, hop 1 s) of the training files only: at least half inside a
    # seizure: 21 + 16 + 21; none inside: 59 + 52 + 68 (fewer than 4 per seizure window: all)
    assert full["training_windows"]["seizure"] == 58
    assert full["training_windows"]["background"] == 179
    # event metrics pooled over the two held-out recordings, each scored on its own
    for name, r in full["results"].items():
        per_file = r["recordings"]
        assert [m["n_seizures"] for m in per_file.values()] == [1, 0], name
        assert r["stream"]["n_seizures"] == 1
        assert r["stream"]["interictal_hours"] == pytest.approx((150 - 20) / 3600)
        assert r["stream"]["n_false_alarms"] == sum(m["n_false_alarms"]
                                                    for m in per_file.values())
    # the loud rhythmic seizures are learnt by the non-spiking twin even in 2 epochs
    assert full["results"]["twin"]["window"]["balanced_accuracy"] > 0.7


def test_recipe_chbmit_missing_data_names_the_fix(tmp_path, capsys, monkeypatch):
    recipe = _recipe(monkeypatch)
    with pytest.raises(SystemExit) as err:
        recipe.main(["--quick", "--data", "chbmit", "--path", str(tmp_path), "--subject", "3",
                     "--out", str(tmp_path / "out")])
    message = str(err.value)
    assert "subject 3" in message
    assert str(tmp_path / "chb03") in message
    assert "--path ROOT" in message
    assert "--download" in message
    with pytest.raises(SystemExit):  # --subject is required
        recipe.main(["--data", "chbmit", "--path", str(tmp_path)])
    assert "--data chbmit needs --subject N" in capsys.readouterr().err


def test_chbmit_file_split(monkeypatch):
    recipe = _recipe(monkeypatch)
    one = [np.array([[1.0, 2.0]]), np.zeros((0, 2)), np.zeros((0, 2))]
    with pytest.raises(ValueError, match=r"at least 2 files with seizures.*have 1"):
        recipe.split_files(one, ["a.edf", "b.edf", "c.edf"], 0.3)
    train, test = recipe.split_files([one[0], one[1], one[0], one[2], one[0]],
                                     list("abcde"), 0.3)
    assert train == [0, 1, 2]
    assert test == [3, 4]
