"""MNESample: MNE's sample layout read offline from a small file the test writes (no network)."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from bci.data.loaders import get_dataset
from bci.data.mne_sample import SAMPLE_FILE, MNESample


def _write_sample(base, rng):
    """Write a 4-gradiometer, 1-magnetometer sample file with STI 014 triggers; return them."""
    sfreq, n_times = 150.0, 150 * 60
    info = mne.create_info(["MEG 0112", "MEG 0113", "MEG 0122", "MEG 0123", "MEG 0111",
                            "STI 014"], sfreq, ["grad"] * 4 + ["mag", "stim"])
    data = np.zeros((6, n_times))
    data[:4] = rng.standard_normal((4, n_times)) * 1e-11
    data[4] = rng.standard_normal(n_times) * 1e-12
    codes = np.array([1, 3, 2, 4, 5, 32, 1, 3, 2, 4] * 5)
    samples = 100 + np.arange(len(codes)) * 150
    data[5, samples] = codes
    fname = base / SAMPLE_FILE
    fname.parent.mkdir(parents=True)
    mne.io.RawArray(data, info, verbose=False).save(fname, verbose=False)
    return codes


def test_sample_layout_read_offline_auditory_vs_visual(tmp_path, monkeypatch):
    codes = _write_sample(tmp_path, np.random.default_rng(0))
    monkeypatch.setenv("MNE_DATASETS_SAMPLE_PATH", str(tmp_path))
    monkeypatch.setattr(mne.datasets.sample, "data_path",
                        lambda *a, **k: pytest.fail("the network must not be touched"))
    ds = get_dataset("MNESample")
    assert ds.data_path(1) == [str(tmp_path / SAMPLE_FILE)]
    from moabb.paradigms import MotorImagery

    X, y, _ = MotorImagery(events=["auditory", "visual"], n_classes=2, fmin=1,
                           fmax=40).get_data(ds, [1])
    assert (y == "auditory").sum() == np.isin(codes, [1, 2]).sum() == 20
    assert (y == "visual").sum() == np.isin(codes, [3, 4]).sum() == 20
    assert X.shape[1] == 4  # the gradiometers (default), in fT/cm
    assert ds.unit_factor == 1e13
    mags = MNESample(ch_types=["mag"])
    X, _, _ = MotorImagery(events=["auditory", "visual"], n_classes=2, fmin=1,
                           fmax=40).get_data(mags, [1])
    assert X.shape[1] == 1
    assert mags.unit_factor == 1e15


def test_missing_sample_without_download_names_the_file(tmp_path):
    ds = MNESample(path=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match=r"sample_audvis_filt-0-40_raw.fif.*"
                                                "MNE_DATASETS_SAMPLE_PATH"):
        ds.data_path(1)
    with pytest.raises(ValueError, match="subject must be 1"):
        ds.data_path(2)
