"""The seizure recipe end to end, in small configurations.

Bonn segments (real when staged, synthetic otherwise) and a tiny CHB-MIT case written by the
test.
"""

from __future__ import annotations

import json
import os

import pytest

RECIPE = "recipes/seizure_spiking_conformer.py"
MODELS = {"spiking", "spiking_lif", "twin", "spiking@lif", "spiking_lif@approx"}
BONN = os.environ.get("MNE_DATASETS_BONN_PATH")  # set by tests/conftest.py when staged


def _check_outputs(summary: dict, out) -> dict:
    """Check what every data mode writes; returns the full metrics.json."""
    for name in ("metrics.json", "stream_probability.png", "training.png", "operations.png"):
        assert (out / name).stat().st_size > 0
    full = json.loads((out / "metrics.json").read_text())
    assert full["summary"] == json.loads(json.dumps(summary, default=float))
    assert set(full["results"]) == MODELS
    assert not set(full["split"]["train"]) & set(full["split"]["test"])
    assert summary["quick"] is True
    assert summary["false_alarms_per_hour"] >= 0
    assert 0.0 <= summary["neuron_update_saving"] < 1.0
    assert 0.0 <= summary["neuron_update_saving_lif_trained_weights"] < 1.0
    # delta-encoded spiking model: accumulates only, its first layer too; the twin multiplies
    assert summary["input_encoding"] == "delta"
    assert summary["effective_acs_spiking"] > 0
    assert summary["effective_macs_spiking"] == 0
    twin_layers = full["results"]["twin"]["operations"]["synaptic_operations_by_layer"]
    assert summary["first_layer_synops_twin"] == twin_layers["conv_time"] > 0
    assert sum(twin_layers.values()) == pytest.approx(summary["synops_twin"])
    assert summary["twin_to_spiking_synops"] == pytest.approx(
        summary["synops_twin"] / summary["synops_spiking"])
    # one learnt threshold per channel (Bonn: one channel)
    assert len(summary["encoder_thresholds"]) == len(summary.get("channels", ["Bonn"]))
    for name, r in full["results"].items():
        assert (r["operations"]["neuron_updates"] > 0) == (name != "twin"), name  # ReLU twin
        assert 0.0 <= r["stream"]["sensitivity"] <= 1.0
    return full


def test_quick_auto_falls_back_to_synthetic(tmp_path, capsys, monkeypatch, script_main):
    monkeypatch.setenv("MNE_DATASETS_BONN_PATH", str(tmp_path / "no_bonn_here"))
    summary = script_main(RECIPE)(["--quick", "--epochs", "2", "--segments-per-set", "5",
                                   "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "Falling back to SYNTHETIC segments" in printed
    assert json.loads(printed.strip().splitlines()[-1])["data"] == "synthetic"
    assert summary["data"] == "synthetic"
    for key in ("sensitivity", "specificity", "segment_accuracy", "twin_segment_accuracy",
                "lif_trained_segment_accuracy"):
        assert 0.0 <= summary[key] <= 1.0, key
    full = _check_outputs(summary, tmp_path)
    # 25 synthetic segments (5 ictal): 30 % of each set held out = 2 S + 6 Z test segments,
    # joined into one stream with 2 seizures of 4097 samples at 173.61 Hz
    assert len(full["split"]["test"]) == 8
    assert full["results"]["twin"]["stream"]["n_seizures"] == 2
    assert full["stream"]["duration_s"] == pytest.approx(8 * 4097 / 173.61)


def test_quick_dense_input_is_the_configuration_before(tmp_path, monkeypatch, script_main):
    monkeypatch.setenv("MNE_DATASETS_BONN_PATH", str(tmp_path / "no_bonn_here"))
    summary = script_main(RECIPE)(["--quick", "--epochs", "1", "--segments-per-set", "5",
                                   "--input-encoding", "dense", "--out", str(tmp_path)])
    assert summary["input_encoding"] == "dense"
    assert summary["encoder_thresholds"] is None
    # the raw signal: the first layer multiply-accumulates, the same number in both models
    assert summary["effective_macs_spiking"] == summary["first_layer_synops_spiking"] > 0
    assert summary["first_layer_synops_twin"] == summary["first_layer_synops_spiking"]
    full = json.loads((tmp_path / "metrics.json").read_text())
    assert full["config"]["spiking_input"] == {}
    with pytest.raises(SystemExit):
        script_main(RECIPE)(["--quick", "--input-encoding", "dense", "--encoder-threshold", "1"])


@pytest.mark.real_data
@pytest.mark.skipif(not (BONN and os.path.isdir(BONN)),
                    reason="Bonn epilepsy data are not staged (MNE_DATASETS_BONN_PATH)")
def test_quick_real_bonn_found_through_the_environment(tmp_path, script_main):
    summary = script_main(RECIPE)(["--quick", "--data", "real", "--epochs", "1",
                                   "--segments-per-set", "3", "--out", str(tmp_path)])
    assert summary["data"] == "real Bonn segments; streams are concatenations of real segments"
    full = _check_outputs(summary, tmp_path)
    # 3 segments of each of the 5 sets: one test, one validation, one training segment each
    assert [len(full["split"][k]) for k in ("train", "val", "test")] == [5, 5, 5]
    assert sorted(name[0] for name in full["split"]["test"]) == sorted("ZONFS")
    assert full["results"]["spiking"]["stream"]["n_seizures"] == 1


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


def test_quick_chbmit_splits_by_file(tmp_path, capsys, script_main):
    pytest.importorskip("edfio")
    from tests._chbmit_files import write_case

    write_case(tmp_path / "data", "chb02", CHB_FILES)
    out = tmp_path / "out"
    summary = script_main(RECIPE)(["--quick", "--data", "chbmit", "--path",
                                   str(tmp_path / "data"), "--subject", "2", "--epochs", "2",
                                   "--out", str(out)])
    printed = capsys.readouterr().out
    assert summary["data"].startswith("real continuous CHB-MIT recordings (case chb02")
    assert "real continuous CHB-MIT recordings" in printed
    assert summary["subject"] == 2
    # channels common to all files, in the first file's order; resampled to 128 Hz
    assert summary["channels"] == CHB_CHANNELS
    assert summary["sfreq"] == 128.0
    assert summary["train_files"] == ["chb02_01.edf", "chb02_02.edf", "chb02_03.edf"]
    assert summary["test_files"] == ["chb02_04.edf", "chb02_05.edf"]
    assert summary["n_test_seizures"] == 1
    assert summary["test_hours"] == pytest.approx(150 / 3600)
    assert "segment_accuracy" not in summary  # no segments in continuous recordings
    for key in ("sensitivity", "specificity", "window_accuracy", "window_balanced_accuracy",
                "twin_window_accuracy", "lif_trained_window_accuracy",
                "same_weights_plain_lif_window_accuracy"):
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


def test_chbmit_missing_data_names_the_fix(tmp_path, capsys, script_main):
    main = script_main(RECIPE)
    with pytest.raises(SystemExit) as err:
        main(["--quick", "--data", "chbmit", "--path", str(tmp_path), "--subject", "3",
              "--out", str(tmp_path / "out")])
    message = str(err.value)
    assert "subject 3" in message
    assert str(tmp_path / "chb03") in message
    assert "--path ROOT" in message
    assert "--download" in message
    with pytest.raises(SystemExit):  # --subject is required
        main(["--data", "chbmit", "--path", str(tmp_path)])
    assert "--data chbmit needs --subject N" in capsys.readouterr().err
