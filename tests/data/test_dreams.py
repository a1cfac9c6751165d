"""DREAMS spindle excerpts: written files with known content, and the staged database."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bci.data.dreams import DREAMS_EXCERPTS, load_dreams_spindles, merge_scorings

STAGED = os.environ.get("MNE_DATASETS_DREAMS_PATH")  # set by tests/conftest.py when staged


def _write_excerpt(folder, k=1, sfreq=50, expert2=True):
    n = int(1800 * sfreq)
    samples = np.round(np.sin(np.arange(n) / 7.0) * 30.0, 4)  # µV
    (folder / f"excerpt{k}.txt").write_text("[CZ-A1]\n" + "\n".join(f"{v:.4f}" for v in samples))
    (folder / f"Visual_scoring1_excerpt{k}.txt").write_text(
        "[vis1_Spindles/CZ-A1]\n10.0 1.0\n20.0 0.5\n100.0 1.5\n")
    if expert2:
        (folder / f"Visual_scoring2_excerpt{k}.txt").write_text(
            "[vis2_Spindles/CZ-A1]\n10.5 1.0\n50.0 0.8\n")
    return samples


def test_load_written_excerpt(tmp_path):
    samples = _write_excerpt(tmp_path, 3)
    ex = load_dreams_spindles(3, tmp_path)
    assert ex.number == 3
    assert ex.ch_name == "CZ-A1"
    assert ex.sfreq == 50.0
    assert ex.duration_s == 1800.0
    np.testing.assert_allclose(ex.signal, samples * 1e-6)  # volts
    np.testing.assert_allclose(ex.expert1, [[10.0, 11.0], [20.0, 20.5], [100.0, 101.5]])
    np.testing.assert_allclose(ex.expert2, [[10.5, 11.5], [50.0, 50.8]])
    # union: 10-11 and 10.5-11.5 merge into 10-11.5
    np.testing.assert_allclose(ex.reference, [[10.0, 11.5], [20.0, 20.5], [50.0, 50.8],
                                              [100.0, 101.5]])


def test_expert1_alone_is_the_reference(tmp_path):
    _write_excerpt(tmp_path, 7, expert2=False)
    ex = load_dreams_spindles(7, tmp_path)
    assert ex.expert2 is None
    np.testing.assert_array_equal(ex.reference, ex.expert1)


def test_found_through_the_environment(tmp_path, monkeypatch):
    _write_excerpt(tmp_path, 2)
    monkeypatch.setenv("MNE_DATASETS_DREAMS_PATH", str(tmp_path))
    assert load_dreams_spindles(2).ch_name == "CZ-A1"


def test_crop_keeps_spindles_that_end_in_time(tmp_path):
    _write_excerpt(tmp_path)
    ex = load_dreams_spindles(1, tmp_path)
    short = ex.crop(60.0)
    assert len(short.signal) == 3000
    np.testing.assert_allclose(short.expert1, [[10.0, 11.0], [20.0, 20.5]])
    np.testing.assert_allclose(short.expert2, [[10.5, 11.5], [50.0, 50.8]])
    assert len(short.reference) == 3
    assert len(ex.signal) == 90000  # not modified
    with pytest.raises(ValueError, match="tmax"):
        ex.crop(0.0)


def test_merge_scorings_closed_form():
    a = np.array([[1.0, 1.0], [10.0, 1.0]])
    b = np.array([[2.0, 0.5], [5.0, 1.0], [10.2, 0.3]])
    # [1, 2] touches [2, 2.5]: one spindle [1, 2.5]; [10.2, 10.5] inside [10, 11]
    np.testing.assert_allclose(merge_scorings(a, b), [[1.0, 1.5], [5.0, 1.0], [10.0, 1.0]])
    assert merge_scorings(np.zeros((0, 2)), np.zeros((0, 2))).shape == (0, 2)


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"excerpt4\.txt not found.*"
                                                "MNE_DATASETS_DREAMS_PATH"):
        load_dreams_spindles(4, tmp_path)
    with pytest.raises(ValueError, match="excerpt"):
        load_dreams_spindles(9, tmp_path)
    with pytest.raises(TypeError, match="excerpt"):
        load_dreams_spindles("1", tmp_path)


@pytest.mark.real_data
@pytest.mark.skipif(not (STAGED and os.path.isdir(STAGED)),
                    reason="DREAMS spindle excerpts are not staged (MNE_DATASETS_DREAMS_PATH)")
def test_staged_excerpts():
    ex = load_dreams_spindles(1)
    assert ex.sfreq == 100.0
    assert ex.signal.size == 180000
    assert ex.ch_name == "C3-A1"
    ref = ex.reference
    assert np.all(ref[1:, 0] > ref[:-1, 1])  # merged: no overlap left
    assert len(ref) <= len(ex.expert1) + len(ex.expert2)
    rates = {k: load_dreams_spindles(k).sfreq for k in DREAMS_EXCERPTS}
    assert rates == {1: 100.0, 2: 200.0, 3: 50.0, 4: 200.0, 5: 200.0, 6: 200.0, 7: 200.0,
                     8: 200.0}
