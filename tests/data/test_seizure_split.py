"""Seizure data preparation: subsets, splits, windows of segments and of continuous recordings."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from bci.data.seizure import (
    choose_training_windows,
    make_seizure_eeg,
    prepare_recording,
    segment_windows,
    split_segments,
    subsample_segments,
    windows_at,
)


def _segments(n: int = 30):
    return make_seizure_eeg(n, n_times=100, ictal_ratio=1 / 3, random_state=0)


def test_subsample_segments_per_set():
    seg = _segments()  # 20 Z, 10 S
    sub = subsample_segments(seg, 4, random_state=1)
    assert sorted(sub.sets.tolist()) == ["S"] * 4 + ["Z"] * 4
    idx = [seg.names.index(n) for n in sub.names]
    assert idx == sorted(idx)  # original order kept
    np.testing.assert_array_equal(sub.X, seg.X[idx])
    assert subsample_segments(seg, 4, random_state=1).names == sub.names
    assert len(subsample_segments(seg, 50, random_state=1)) == 30  # all of a smaller set
    with pytest.raises(ValueError, match="n_per_set"):
        subsample_segments(seg, 0)


def test_split_segments_stratified_counts():
    sets = np.array(["Z"] * 20 + ["S"] * 10)
    train, val, test = split_segments(sets, random_state=3)
    # Z: 6 test, 2 validation, 12 training; S: 3, 1, 6
    assert (len(train), len(val), len(test)) == (18, 3, 9)
    assert (sets[test] == "S").sum() == 3
    assert (sets[val] == "S").sum() == 1
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(30))
    for part in (train, val, test):
        assert part.dtype.kind == "i"
        assert np.all(np.diff(part) > 0)
    again = split_segments(sets, random_state=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test), strict=True))
    # at least one test and one validation segment of each set, even for tiny sets: of 2 Z
    # segments none is left to train on, of 3 S segments one
    train, val, test = split_segments(np.array(["Z", "Z", "S", "S", "S"]), random_state=0)
    assert (len(train), len(val), len(test)) == (1, 2, 2)
    with pytest.raises(ValueError, match="test_fraction"):
        split_segments(sets, test_fraction=1.0)


def test_segment_windows_half_overlap():
    seg = _segments()
    X, y, owner = segment_windows(seg, [2, 0], 40)
    # starts 0, 20, 40, 60 in each 100-sample segment
    assert X.shape == (8, 1, 40)
    assert owner.tolist() == [2] * 4 + [0] * 4
    assert y.tolist() == [int(seg.ictal[2])] * 4 + [int(seg.ictal[0])] * 4
    np.testing.assert_array_equal(X[1], seg.X[2][:, 20:60])
    np.testing.assert_array_equal(X[7], seg.X[0][:, 60:100])
    assert segment_windows(seg, [1], 40, hop=30)[0].shape[0] == 3
    with pytest.raises(ValueError, match="n_window"):
        segment_windows(seg, [0], 101)
    with pytest.raises(ValueError, match="no segment"):
        segment_windows(seg, [], 40)


def test_windows_at_copies_exact_samples():
    signal = np.arange(40.0).reshape(2, 20)
    w = windows_at(signal, 4.0, [0.0, 1.25, 3.0], 0.5)  # starts 0, 5, 12; 2 samples
    assert w.tolist() == [[[0, 1], [20, 21]], [[5, 6], [25, 26]], [[12, 13], [32, 33]]]
    w[0, 0, 0] = -1
    assert signal[0, 0] == 0  # copies
    assert windows_at(signal, 4.0, [], 0.5).shape == (0, 2, 2)
    with pytest.raises(ValueError, match="does not fit"):
        windows_at(signal, 4.0, [4.75], 0.5)


def test_choose_training_windows_counts():
    # two 10-s recordings, 2-s windows every 1 s (starts 0..8); a seizure at 2-5 s in the
    # first. At least half inside: starts 1, 2, 3, 4. None inside: 0, 5, 6, 7, 8 and all 9
    # of the second recording. Start 1 overlaps [2, 3]: half inside, a seizure window.
    rec, starts, y = choose_training_windows([10.0, 10.0], [np.array([[2.0, 5.0]]),
                                                            np.zeros((0, 2))],
                                             2.0, 1.0, background_ratio=2.0, random_state=0)
    assert y.tolist() == [1] * 4 + [0] * 8
    assert rec[:4].tolist() == [0] * 4
    assert starts[:4].tolist() == [1.0, 2.0, 3.0, 4.0]
    background = {(0, s) for s in (0.0, 5.0, 6.0, 7.0, 8.0)} | {(1, float(s)) for s in range(9)}
    chosen = list(zip(rec[4:].tolist(), starts[4:].tolist(), strict=True))
    assert set(chosen) <= background
    assert len(set(chosen)) == 8
    assert chosen == sorted(chosen)  # by recording, then time
    again = choose_training_windows([10.0, 10.0], [np.array([[2.0, 5.0]]), np.zeros((0, 2))],
                                    2.0, 1.0, background_ratio=2.0, random_state=0)
    assert np.array_equal(again[1], starts)
    # fewer background windows than asked for: all of them
    _, _, y = choose_training_windows([10.0], [np.array([[2.0, 5.0]])], 2.0, 1.0,
                                      background_ratio=10.0, random_state=0)
    assert (y == 0).sum() == 5
    with pytest.raises(ValueError, match="no seizure window of 2.0 s"):
        choose_training_windows([10.0], [np.zeros((0, 2))], 2.0, 1.0)
    with pytest.raises(ValueError, match="one entry per recording"):
        choose_training_windows([10.0, 5.0], [np.zeros((0, 2))], 2.0, 1.0)


def test_prepare_recording_filters_resamples_and_scales():
    sfreq, n = 256.0, 256 * 20
    t = np.arange(n) / sfreq
    data = np.stack([50e-6 * np.sin(2 * np.pi * 10 * t), 20e-6 * np.ones(n),
                     np.zeros(n)])
    raw = mne.io.RawArray(data, mne.create_info(["A", "B", "C"], sfreq, "eeg"), verbose=False)
    signal, new_sfreq = prepare_recording(raw, ["B", "A"], band_hz=(0.5, 40.0), sfreq=128.0)
    assert new_sfreq == 128.0
    assert signal.dtype == np.float32
    assert signal.shape == (2, n // 2)
    middle = signal[:, 256:-256]
    # the 10-Hz sine passes (50 µV amplitude: RMS 50 / sqrt(2)); the constant is removed
    assert np.sqrt(np.mean(middle[1] ** 2)) == pytest.approx(50 / np.sqrt(2), rel=0.02)
    assert np.abs(middle[0]).max() < 0.5
    assert raw.get_data().shape == (3, n)  # not modified
    # no filter, no resampling, another unit factor
    same, rate = prepare_recording(raw, ["B"], band_hz=None, sfreq=None, unit_factor=1e4)
    assert rate == 256.0
    np.testing.assert_allclose(same, 0.2, rtol=1e-6)
    with pytest.raises(ValueError, match="sfreq"):
        prepare_recording(raw, ["A"], sfreq=-1.0)
