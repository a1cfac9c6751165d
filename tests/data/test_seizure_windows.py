"""Windowed seizure-detection data: Bonn-style split by segment, CHB-MIT split by file.

Each result is checked against the steps it is made of, called by hand (split, windows, stream,
seeded sample), and against counts worked out from the planted seizures.
"""

from __future__ import annotations

import numpy as np
import pytest

from bci.data.chbmit import load_chbmit_subject, seizure_intervals
from bci.data.seizure import (
    SeizureSegments,
    choose_training_windows,
    make_seizure_eeg,
    make_seizure_stream,
    segment_windows,
    split_segments,
)
from bci.data.seizure_windows import prepare_bonn_windows, prepare_chbmit_windows


@pytest.fixture(scope="module")
def segments() -> SeizureSegments:
    # 30 segments of 400 samples (2.3 s at 173.61 Hz), 6 of them ictal
    return make_seizure_eeg(30, n_times=400, ictal_ratio=0.2, random_state=1)


def _rows_of(sample: np.ndarray, pool: np.ndarray) -> list[int]:
    """Index in ``pool`` of every window of ``sample`` (exact equality)."""
    flat = pool.reshape(len(pool), -1)
    return [int(np.flatnonzero((flat == w.ravel()).all(1))[0]) for w in sample]


def test_bonn_windows_are_the_documented_steps(segments):
    data = prepare_bonn_windows(segments, 1.0, n_sample=10, random_state=3)
    train, val, test = split_segments(segments.sets, random_state=3)
    n_window = int(round(1.0 * segments.sfreq))  # 174 samples, hop 87: 3 windows a segment
    for X, y, idx in ((data.X_train, data.y_train, train), (data.X_val, data.y_val, val),
                      (data.X_test, data.y_test, test)):
        X_ref, y_ref, _ = segment_windows(segments, idx, n_window)
        np.testing.assert_array_equal(X, X_ref / 100.0)  # units of 100 µV
        np.testing.assert_array_equal(y, y_ref)
        assert len(X) == 3 * len(idx)
        assert X.dtype == np.float32
    # per set, round(0.3 n) test and round(0.1 n) (at least 1) validation: S (6) 2 + 1,
    # Z (24) 7 + 2
    assert [len(data.info["split"][k]) for k in ("train", "val", "test")] == [18, 3, 9]
    assert data.info["split"]["test"] == [segments.names[i] for i in test]
    np.testing.assert_array_equal(data.test_owner, np.repeat(test, 3))
    np.testing.assert_array_equal(data.segment_ictal, segments.ictal)
    # the one held-out stream: the test segments joined in the stream's seeded order
    stream = make_seizure_stream(segments.subset(test), random_state=3)
    (rec,) = data.recordings
    np.testing.assert_array_equal(rec.signal, stream.signal / 100.0)
    np.testing.assert_array_equal(rec.intervals, stream.intervals)
    assert len(rec.intervals) == int(segments.ictal[test].sum()) == 2
    assert rec.name == "stream"
    assert data.info["stream"]["segments"] == stream.segment_names
    assert data.info["stream"]["duration_s"] == pytest.approx(9 * 400 / segments.sfreq)
    # the sample: 10 distinct test windows, drawn by a generator seeded with 3
    rows = np.random.default_rng(3).choice(len(data.X_test), size=10, replace=False)
    np.testing.assert_array_equal(data.X_sample, data.X_test[rows])
    assert (data.n_chans, data.n_window, data.unit) == (1, 174, "segment")
    assert (data.source, data.description, data.sfreq) == ("synthetic", "synthetic",
                                                           segments.sfreq)
    assert data.details.startswith("synthetic; 30 segments (train 18, val 3, test 9)")


def test_bonn_windows_are_seeded_and_say_real_data(segments):
    a = prepare_bonn_windows(segments, 1.0, random_state=0)
    b = prepare_bonn_windows(segments, 1.0, random_state=0)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.X_sample, b.X_sample)
    assert len(a.X_sample) == len(a.X_test) == 27  # fewer than 64 test windows: all of them
    assert sorted(_rows_of(a.X_sample, a.X_test)) == list(range(27))
    assert prepare_bonn_windows(segments, 1.0, random_state=1).info != a.info
    real = SeizureSegments(segments.X, segments.sets, segments.names, segments.sfreq, "bonn")
    data = prepare_bonn_windows(real, 1.0, random_state=0)
    assert data.description == ("real Bonn segments; streams are concatenations of real "
                                "segments")
    assert data.details.startswith("real; ")


def test_bonn_windows_refuse_bad_input(segments):
    with pytest.raises(TypeError, match="segments must be"):
        prepare_bonn_windows(segments.X, 1.0)
    with pytest.raises(ValueError, match="window_s"):
        prepare_bonn_windows(segments, float("nan"))
    with pytest.raises(ValueError, match="n_window"):
        prepare_bonn_windows(segments, 5.0)  # longer than a segment (2.3 s)
    with pytest.raises(ValueError, match="n_sample"):
        prepare_bonn_windows(segments, 1.0, n_sample=0)


# a small CHB-MIT case: 3 common channels (the first file has one more), 256 Hz
CHANNELS = ["FP1-F7", "F7-T7", "T7-P7"]
FILES = {  # name: (channels, duration (s), seizures (s))
    "chb05_01.edf": (CHANNELS + ["FT9-FT10"], 40, []),
    "chb05_02.edf": (CHANNELS, 60, [(20.0, 30.0)]),
    "chb05_03.edf": (CHANNELS, 60, [(10.0, 25.0)]),
    "chb05_04.edf": (CHANNELS, 40, []),
}


@pytest.fixture(scope="module")
def chb_root(tmp_path_factory):
    pytest.importorskip("edfio")
    from tests._chbmit_files import write_case

    root = tmp_path_factory.mktemp("chbmit")
    write_case(root, "chb05", FILES)
    return root


def test_chbmit_windows_split_by_file(chb_root):
    data = prepare_chbmit_windows(5, chb_root, download=False, window_s=2.0, step_s=1.0,
                                  n_sample=16, random_state=0)
    # held out: the last seizure file and the last seizure-free file, whole
    assert data.info["split"] == {"train": ["chb05_01.edf", "chb05_02.edf"],
                                  "test": ["chb05_03.edf", "chb05_04.edf"]}
    assert data.info["channels"] == CHANNELS
    assert (data.source, data.sfreq, data.n_chans, data.n_window) == ("chbmit", 128.0, 3, 256)
    assert data.X_test is None
    assert data.test_owner is None
    assert data.unit == "window"
    assert [r.name for r in data.recordings] == ["chb05_03.edf", "chb05_04.edf"]
    assert [r.signal.shape for r in data.recordings] == [(3, 60 * 128), (3, 40 * 128)]
    np.testing.assert_array_equal(data.recordings[0].intervals, [[10.0, 25.0]])
    assert data.info["test_hours"] == pytest.approx(100 / 3600)
    assert data.info["n_test_seizures"] == 1
    assert data.description.startswith("real continuous CHB-MIT recordings (case chb05")
    # training windows of the training files only: 2-s windows every 1 s at least half inside
    # the 20-30 s seizure of chb05_02: starts 19..29 -> 11; background (no overlap): starts
    # 0..38 of chb05_01 (39) and 0..17, 30..58 of chb05_02 (18 + 29), subsampled to 4 x 11
    owner, starts, labels = choose_training_windows(
        [40.0, 60.0], [np.zeros((0, 2)), np.array([[20.0, 30.0]])], 2.0, 1.0,
        background_ratio=4.0, random_state=np.random.default_rng(0))
    assert data.info["training_windows"]["seizure"] == int(labels.sum()) == 11
    assert data.info["training_windows"]["background"] == int((labels == 0).sum()) == 44
    n_val = data.info["training_windows"]["val"]
    assert len(data.y_train) + len(data.y_val) == 55
    assert len(data.y_val) == n_val == 8  # round(0.15 x 55), stratified: 2 seizure, 6 not
    assert int(data.y_val.sum()) == 2
    assert data.X_train.dtype == np.float32
    # the sample: 16 windows of the held-out recordings
    pool = np.concatenate([np.stack([r.signal[:, s:s + 256]
                                     for s in range(0, r.signal.shape[1] - 256 + 1, 128)])
                           for r in data.recordings])
    assert len(set(_rows_of(data.X_sample, pool))) == 16


def test_chbmit_windows_are_the_prepared_recordings(chb_root):
    data = prepare_chbmit_windows(5, chb_root, download=False, window_s=2.0, step_s=1.0,
                                  band_hz=None, sfreq=None, unit_uv=1.0, random_state=0)
    raw = load_chbmit_subject(5, chb_root, ["chb05_04.edf"], download=False)[0]
    np.testing.assert_allclose(data.recordings[1].signal,
                               raw.get_data(picks=CHANNELS) * 1e6, rtol=1e-6)
    assert data.sfreq == 256.0
    np.testing.assert_array_equal(data.recordings[1].intervals, seizure_intervals(raw))


def test_chbmit_windows_missing_case_names_the_subject(tmp_path):
    with pytest.raises(FileNotFoundError, match="subject 7"):
        prepare_chbmit_windows(7, tmp_path, download=False)
    with pytest.raises(ValueError, match="step_s"):
        prepare_chbmit_windows(7, tmp_path, download=False, step_s=0.0)
