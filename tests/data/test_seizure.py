"""Seizure data: Bonn loader, streams, sliding windows, synthetic generator.

The loader runs on files the test writes, and on the staged data when present.
"""

from __future__ import annotations

import numpy as np
import pytest

from bci.data.seizure import (
    BONN_SFREQ,
    SeizureSegments,
    load_bonn,
    make_seizure_eeg,
    make_seizure_stream,
    sliding_windows,
)
from tests.conftest import SHARED

BONN = SHARED / "data" / "bonn_epilepsy"
requires_bonn = pytest.mark.skipif(not (BONN / "S").is_dir(),
                                   reason=f"the Bonn epilepsy data is not staged at {BONN}")


def _write_bonn(root, n_per_set: int = 2, sets=("Z", "N", "S"), n_times: int = 4097):
    rng = np.random.default_rng(0)
    written = {}
    for name in sets:
        (root / name).mkdir(parents=True)
        for i in range(n_per_set):
            values = rng.integers(-200, 200, n_times)
            ext = ".TXT" if name == "N" else ".txt"  # the real set N has upper-case names
            np.savetxt(root / name / f"{name}{i + 1:03d}{ext}", values, fmt="%d")
            written[f"{name}{i + 1:03d}"] = values
    return written


def test_load_bonn_from_written_files(tmp_path):
    written = _write_bonn(tmp_path)
    segments = load_bonn(tmp_path, sets=["S", "Z", "N"])
    assert segments.X.shape == (6, 1, 4097)
    assert segments.X.dtype == np.float32
    assert segments.sfreq == BONN_SFREQ
    assert segments.source == "bonn"
    assert segments.names == ["S001", "S002", "Z001", "Z002", "N001", "N002"]
    assert segments.ictal.tolist() == [True, True, False, False, False, False]
    for i, name in enumerate(segments.names):
        np.testing.assert_array_equal(segments.X[i, 0], written[name])
    sub = segments.subset([4, 0])
    assert sub.names == ["N001", "S001"]
    assert len(sub) == 2


def test_load_bonn_errors(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"Bonn epilepsy data not found at .*nowhere.*"
                                                r"Pass path=.*MNE_DATASETS_BONN_PATH"):
        load_bonn(missing)
    _write_bonn(tmp_path, sets=("Z",))
    with pytest.raises(FileNotFoundError, match=r"No segment files \(\*.txt\) for Bonn set S"):
        load_bonn(tmp_path, sets=["Z", "S"])
    with pytest.raises(ValueError, match="Unknown Bonn set 'X'"):
        load_bonn(tmp_path, sets=["X"])
    short = tmp_path / "short"
    _write_bonn(short, n_per_set=1, sets=("Z",), n_times=100)
    with pytest.raises(ValueError, match="a Bonn segment has 4097 samples"):
        load_bonn(short, sets="Z")


def test_load_bonn_default_path_from_config(tmp_path, monkeypatch):
    _write_bonn(tmp_path, n_per_set=1, sets=("S",))
    monkeypatch.setenv("MNE_DATASETS_BONN_PATH", str(tmp_path))
    assert load_bonn(sets="S").names == ["S001"]


@requires_bonn
def test_load_bonn_real_data():
    segments = load_bonn(BONN)
    assert segments.X.shape == (500, 1, 4097)
    assert segments.ictal.sum() == 100
    assert sorted(set(segments.sets)) == ["F", "N", "O", "S", "Z"]
    # seizure segments are of much larger amplitude than the healthy scalp sets
    std = segments.X[:, 0].std(axis=1)
    assert np.median(std[segments.ictal]) > 3 * np.median(std[segments.sets == "Z"])


def test_make_seizure_eeg_is_seeded_and_plants_the_effect():
    a = make_seizure_eeg(20, n_times=512, random_state=3)
    b = make_seizure_eeg(20, n_times=512, random_state=3)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, make_seizure_eeg(20, n_times=512, random_state=4).X)
    assert a.X.shape == (20, 1, 512)
    assert a.ictal.sum() == 5
    assert a.source == "synthetic"
    std = a.X[:, 0].std(axis=1)
    assert std[a.ictal].min() > 1.5 * std[~a.ictal].max()
    with pytest.raises(ValueError, match=r"ictal_ratio must be a fraction in \(0, 1\), got 1.0"):
        make_seizure_eeg(10, ictal_ratio=1.0)
    with pytest.raises(ValueError, match=r"n_segments must be an int >= 2, got 1"):
        make_seizure_eeg(1)
    with pytest.raises(TypeError, match=r"n_segments must be an int, got float \(10.0\)"):
        make_seizure_eeg(10.0)
    with pytest.raises(TypeError, match=r"sfreq must be a number \(Hz\), got str"):
        make_seizure_eeg(10, sfreq="173.61")


def _segments(n_bg: int = 5, n_ictal: int = 2, n_times: int = 10) -> SeizureSegments:
    # each segment is a constant equal to its index, so the stream shows the order
    X = np.repeat(np.arange(n_bg + n_ictal, dtype=np.float32)[:, None, None], n_times, axis=2)
    sets = np.array(["Z"] * n_bg + ["S"] * n_ictal)
    return SeizureSegments(X=X, sets=sets, names=[f"seg{i}" for i in range(len(X))],
                           sfreq=10.0, source="synthetic")


def test_make_seizure_stream_places_seizures_between_background():
    segs = _segments()
    stream = make_seizure_stream(segs, random_state=0)
    assert stream.signal.shape == (1, 70)
    assert stream.duration_s == 7.0
    assert len(stream.intervals) == 2
    order = stream.signal[0, ::10].astype(int)
    ictal_positions = np.flatnonzero(segs.ictal[order])
    assert 0 not in ictal_positions
    assert 6 not in ictal_positions
    assert np.all(np.diff(ictal_positions) > 1)  # never two in a row
    np.testing.assert_allclose(stream.intervals, [[p, p + 1] for p in ictal_positions])
    assert stream.segment_names == [f"seg{i}" for i in order]
    assert "concatenation" in stream.description
    # seeded
    np.testing.assert_array_equal(make_seizure_stream(segs, random_state=0).signal,
                                  stream.signal)
    assert len(make_seizure_stream(segs, n_seizures=1, random_state=0).intervals) == 1


def test_make_seizure_stream_errors():
    with pytest.raises(ValueError, match="3 seizures need at least 4 non-ictal segments"):
        make_seizure_stream(_segments(n_bg=3, n_ictal=3))
    with pytest.raises(ValueError, match=r"n_seizures must be an int between 0 and 2 \(the ictal "
                                         r"segments available\), got 5"):
        make_seizure_stream(_segments(), n_seizures=5)
    with pytest.raises(TypeError, match=r"n_seizures must be an int \(the ictal segments "
                                        r"available\), got float"):
        make_seizure_stream(_segments(), n_seizures=1.0)


def test_sliding_windows_labels_and_times():
    signal = np.arange(40, dtype=float).reshape(2, 20)
    windows, labels, times = sliding_windows(signal, 2.0, 2.0, 1.0, [[3.0, 6.0]])
    # 4-sample windows every 2 samples: starts 0, 2, ..., 16 (9 windows), ends 2 .. 10 s
    assert windows.shape == (9, 2, 4)
    np.testing.assert_array_equal(windows[3], signal[:, 6:10])
    np.testing.assert_allclose(times, np.arange(2.0, 11.0))
    # window [t-2, t] is ictal when >= 1 s of it lies in [3, 6]
    assert labels.tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0]
    _, labels_any, _ = sliding_windows(signal, 2.0, 2.0, 1.0, [[2.5, 6.0]], ictal_fraction=0.25)
    assert labels_any.tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0]  # >= 0.5 s inside
    windows[0] = -1  # copies, not views
    assert signal[0, 0] == 0


def test_sliding_windows_errors():
    with pytest.raises(ValueError, match=r"window_s must be a finite number > 0 \(seconds\), "
                                         r"got -2.0"):
        sliding_windows(np.zeros(10), 1.0, -2.0, 1.0)
    with pytest.raises(ValueError, match=r"step_s must be a finite number > 0 \(seconds\), "
                                         r"got nan"):
        sliding_windows(np.zeros(10), 1.0, 2.0, float("nan"))
    with pytest.raises(TypeError, match=r"sfreq must be a number \(Hz\), got bool"):
        sliding_windows(np.zeros(10), True, 2.0, 1.0)
    with pytest.raises(ValueError, match=r"ictal_fraction must be a fraction in \(0, 1\], got 0.0"):
        sliding_windows(np.zeros(10), 1.0, 2.0, 1.0, ictal_fraction=0.0)
    with pytest.raises(ValueError, match="longer than the signal"):
        sliding_windows(np.zeros(10), 1.0, 20.0, 1.0)
    with pytest.raises(ValueError, match="signal must be"):
        sliding_windows(np.zeros((2, 2, 10)), 1.0, 2.0, 1.0)
