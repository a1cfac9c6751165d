"""Reaching loaders (TrialData, NeuroBench primate reaching) and the simulated generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bci.data.reaching import (
    ReachingData,
    load_center_out,
    load_primate_reaching,
    make_reaching,
    make_windows,
    neurobench_split,
    pad_trials,
)

REACHING = Path(__file__).resolve().parents[3] / "shared" / "data" / "reaching"
requires_reaching = pytest.mark.skipif(
    not (REACHING / "center_out_data.mat").is_file(),
    reason=f"center_out_data.mat is not staged at {REACHING}")


def test_make_reaching_plants_a_linear_tuning():
    data = make_reaching(120, 12, sfreq=20.0, random_state=0)
    assert data.kind == "simulated"
    assert data.n_trials == 120
    assert data.n_chans == 12
    assert make_reaching(3, 4, random_state=1).spikes[0].tolist() == \
        make_reaching(3, 4, random_state=1).spikes[0].tolist()
    # regress counts on velocity: the slopes are the planted weights / sfreq
    counts = np.concatenate(data.spikes, axis=1).T
    vel = np.concatenate(data.velocity, axis=1).T
    design = np.c_[vel, np.ones(len(vel))]
    coef = np.linalg.lstsq(design, counts, rcond=None)[0][:2].T * data.sfreq
    corr = np.corrcoef(coef.ravel(), data.extras["weights"].ravel())[0, 1]
    assert corr > 0.95


def test_pad_trials_and_windows_keep_every_bin_in_place():
    rng = np.random.default_rng(0)
    lengths = [5, 3, 7]
    # channel 0 carries a running bin index, so misplaced or duplicated bins are visible
    spikes, velocity, start = [], [], 0
    for n in lengths:
        idx = np.arange(start, start + n, dtype=float)
        spikes.append(np.stack([idx, rng.poisson(1.0, n)]))
        velocity.append(np.stack([idx, -idx]))
        start += n
    data = ReachingData(spikes, velocity, 20.0, ["index", "unit"])
    X, Y, mask = pad_trials(data)
    assert X.shape == (3, 2, 7)
    assert mask.sum() == 15
    assert X[1, 0, :3].tolist() == [5.0, 6.0, 7.0]
    assert X[1, 0, 3:].tolist() == [0.0] * 4
    W, y, groups = make_windows(data, 3)
    assert W.shape == (15, 2, 3)
    assert y[:, 0].tolist() == list(range(15))
    assert W[6, 0].tolist() == [0.0, 5.0, 6.0]  # second bin of trial 1: zero-padded start
    assert W[14, 0].tolist() == [12.0, 13.0, 14.0]
    assert groups.tolist() == [0] * 5 + [1] * 3 + [2] * 7
    sub = data.subset([2, 0])
    assert sub.spikes[0][0, 0] == 8.0
    assert sub.n_bins == 12


def test_reaching_data_validation():
    with pytest.raises(ValueError, match="velocity must be \\(2, n_bins=4\\)"):
        ReachingData([np.zeros((3, 4))], [np.zeros((2, 5))], 20.0, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"n_times must be an int >= 1 \(bins\), got 0"):
        make_windows(make_reaching(2, 3, random_state=0), 0)
    with pytest.raises(TypeError, match=r"n_times must be an int \(bins\), got float"):
        make_windows(make_reaching(2, 3, random_state=0), 2.0)


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: make_reaching(0, 3), ValueError, r"n_trials must be an int >= 1, got 0"),
    (lambda: make_reaching(2, 3.0), TypeError, r"n_chans must be an int \(units\), got float"),
    (lambda: make_reaching(2, 3, sfreq=-20.0), ValueError,
     r"sfreq must be a finite number > 0 \(Hz\), got -20.0"),
    (lambda: make_reaching(2, 3, trial_s=float("nan")), ValueError,
     r"trial_s must be a finite number > 0 \(seconds\), got nan"),
    (lambda: make_reaching(2, 3, peak_speed=True), TypeError,
     r"peak_speed must be a number \(cm/s\), got bool"),
    (lambda: make_reaching(2, 3, random_state=-1), ValueError,
     r"random_state must be a non-negative int seed"),
    (lambda: neurobench_split(0), ValueError, r"n_segments must be an int >= 1, got 0"),
    (lambda: neurobench_split(10.0), TypeError, r"n_segments must be an int, got float"),
    (lambda: neurobench_split(10, 1.5), ValueError,
     r"train_ratio must be a fraction in \[0, 1\], got 1.5"),
    (lambda: neurobench_split(10, float("nan")), ValueError, r"train_ratio .* got nan"),
])
def test_argument_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _write_neurobench_file(path: Path, rng) -> dict:
    """Write a small file in the O'Doherty/Sabes MATLAB 7.3 layout NeuroBench reads."""
    import h5py

    n_samples, n_chans, n_units = 300, 3, 2
    t = 10.0 + 0.004 * np.arange(n_samples)
    cursor = np.cumsum(rng.standard_normal((2, n_samples)), axis=1)
    target = np.zeros((2, n_samples))
    target[:, 100:] = [[3.0], [1.0]]
    target[0, 220:] = -2.0  # segments [0, 100), [100, 220), [220, 300)
    steps = {}  # (unit, chan) -> sample indices m; spike at t[m] - 2 ms (mid-step)
    with h5py.File(path, "w") as h5:
        refs = np.empty((n_units, n_chans), dtype=h5py.ref_dtype)
        group = h5.create_group("#refs#")
        for u in range(n_units):
            for c in range(n_chans):
                name = f"u{u}c{c}"
                if (u, c) == (1, 2):  # an empty MATLAB cell
                    ds = group.create_dataset(name, data=np.zeros(2, dtype=np.uint64))
                    ds.attrs["MATLAB_empty"] = 1
                    steps[(u, c)] = np.array([], dtype=int)
                else:
                    m = np.sort(rng.choice(np.arange(1, n_samples), 60, replace=False))
                    steps[(u, c)] = m
                    ds = group.create_dataset(name, data=(t[m] - 0.002)[None])
                refs[u, c] = ds.ref
        h5.create_dataset("spikes", data=refs)
        h5.create_dataset("t", data=t[None])
        h5.create_dataset("cursor_pos", data=cursor)
        h5.create_dataset("target_pos", data=target)
    return dict(t=t, cursor=cursor, steps=steps, n_chans=n_chans, n_samples=n_samples)


def test_load_primate_reaching_on_a_written_file(tmp_path):
    pytest.importorskip("h5py")
    truth = _write_neurobench_file(tmp_path / "indy_test.mat", np.random.default_rng(0))
    data = load_primate_reaching(tmp_path / "indy_test.mat")
    assert data.sfreq == pytest.approx(250.0)
    assert data.n_chans == 3
    # NeuroBench's get_flag_index starts a segment at the last sample before the target moves
    assert data.trial_info["segment_bounds"].tolist() == [[0, 99], [99, 219], [219, 300]]
    counts = np.concatenate(data.spikes, axis=1)
    # independent count: distinct marked steps m of any unit with k - 7 <= m <= k - 1
    for c in range(truth["n_chans"]):
        marked = np.union1d(truth["steps"][(0, c)], truth["steps"][(1, c)])
        expected = [np.sum((marked >= k - 7) & (marked <= k - 1))
                    for k in range(truth["n_samples"])]
        np.testing.assert_array_equal(counts[c], expected)
    np.testing.assert_allclose(np.concatenate(data.velocity, axis=1),
                               np.gradient(truth["cursor"], axis=1))
    sorted_units = load_primate_reaching(tmp_path / "indy_test.mat", sort_units=True,
                                         stride_s=0.012)
    assert sorted_units.n_chans == 5  # the empty unit is dropped
    assert sorted_units.spikes[0].shape[1] == 33  # every third sample of 99
    with pytest.raises(ValueError, match="multiple of 0.004 s"):
        load_primate_reaching(tmp_path / "indy_test.mat", bin_width_s=0.03)


def test_neurobench_split_and_missing_files(tmp_path):
    train, val, test = neurobench_split(23)
    assert (len(train), len(val), len(test)) == (18, 2, 3)
    assert np.array_equal(np.concatenate([train, val, test]), np.arange(23))
    with pytest.raises(FileNotFoundError, match="MNE_DATASETS_REACHING_PATH"):
        load_center_out(tmp_path)
    from scipy.io import savemat

    savemat(tmp_path / "center_out_data.mat", {"x": np.ones(3)})
    with pytest.raises(ValueError, match="no 'trial_data' struct \\(found \\['x'\\]\\)"):
        load_center_out(tmp_path)


@pytest.mark.real_data
@requires_reaching
def test_center_out_real_data_and_linear_sanity_check():
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold, cross_val_predict

    data = load_center_out(REACHING)
    assert (data.n_trials, data.n_chans, data.n_bins, data.sfreq) == (286, 84, 22263, 20.0)
    assert data.kind == "real"
    assert data.ch_names[0] == "M1_e1_u1"
    # the README's check: ridge on sqrt counts with 3 lags, 5-fold CV over trials, R^2 ~ 0.58
    X, y, groups = make_windows(data, 3)
    pred = cross_val_predict(Ridge(alpha=10.0), np.sqrt(X).reshape(len(X), -1), y,
                             groups=groups, cv=GroupKFold(5))
    r2 = 1 - ((y - pred) ** 2).sum(0) / (y.var(0) * len(y))
    assert np.all((r2 > 0.54) & (r2 < 0.62))
