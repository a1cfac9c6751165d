"""MOABB loading: names with hints, offline errors, real PhysionetMI subject 1."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from bci.data.loaders import (
    check_class_count,
    check_subjects,
    get_dataset,
    get_paradigm,
    list_datasets,
    load_band_epochs,
    load_data,
    load_epochs,
    skip_unused_runs,
)
from tests.conftest import requires_physionet


def test_names_resolve_with_did_you_mean():
    assert "PhysionetMI" in list_datasets()
    assert "SyntheticMotorImagery" in list_datasets()
    assert type(get_dataset("Kalunga2016")).__name__ == "Kalunga2016"
    assert get_paradigm("MotorImagery", n_classes=4).n_classes == 4
    with pytest.raises(ValueError,
                       match="Unknown dataset 'PhysionetM'. Did you mean 'PhysionetMI'"):
        get_dataset("PhysionetM")
    with pytest.raises(ValueError, match="Did you mean 'LeftRightImagery'"):
        get_paradigm("LeftRightImagry")
    with pytest.raises(TypeError, match="dataset must be a name"):
        get_dataset(3)
    with pytest.raises(ValueError, match=r"Subject\(s\) \[0, 200\] not in PhysionetMI"):
        check_subjects(get_dataset("PhysionetMI"), [0, 1, 200])


def test_missing_files_raise_file_not_found(empty_mne_data, monkeypatch):
    """Offline with nothing on disk: one FileNotFoundError naming dataset, subject, path, fix."""

    def offline(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)  # no network, whatever the machine
    with pytest.raises(FileNotFoundError) as info:
        load_data("PhysionetMI", "LeftRightImagery", [1])
    message = str(info.value)
    assert "PhysionetMI" in message
    assert "subject 1" in message
    assert str(empty_mne_data) in message
    assert "S001R04.edf" in message
    assert "MNE_DATA" in message


def test_missing_root_folder_names_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "does-not-exist"))
    with pytest.raises(FileNotFoundError, match="Kalunga2016: the files of subject 2"):
        load_data("Kalunga2016", "SSVEP", [2])


@requires_physionet
def test_physionet_subject1_arrays_and_epochs():
    X, y, meta = load_data("PhysionetMI", "LeftRightImagery", [1])
    assert X.shape == (45, 64, 481)
    assert sorted(np.unique(y, return_counts=True)[1]) == [22, 23]
    assert set(meta.columns) >= {"subject", "session", "run"}
    epochs = load_epochs("PhysionetMI", "LeftRightImagery", [1])
    assert len(epochs) == 45
    assert len(epochs.ch_names) == 64
    assert epochs.info["sfreq"] == 160.0
    np.testing.assert_array_equal(epochs.metadata["label"].to_numpy(), y)
    np.testing.assert_allclose(epochs.get_data() * 1e6, X)  # arrays in µV, epochs in V


def test_motor_imagery_n_classes_without_events_is_refused():
    # MOABB's MotorImagery ignores n_classes without events and takes every event type
    from moabb.datasets.fake import FakeDataset
    from moabb.paradigms import MotorImagery

    import bci

    dataset = FakeDataset(event_list=("left_hand", "right_hand", "feet"), paradigm="imagery",
                          n_subjects=1, n_sessions=1, n_runs=1, duration=30, seed=0)
    assert len(MotorImagery(n_classes=2).used_events(dataset)) == 3  # the MOABB behaviour
    with pytest.raises(ValueError, match=r"all 3 event types.*'events': \['left_hand', "
                                         r"'right_hand'\]"):
        check_class_count(MotorImagery(n_classes=2), dataset)
    with pytest.raises(ValueError, match="MOABB ignores n_classes"):
        load_data(dataset, "MotorImagery", paradigm_params={"n_classes": 2})
    with pytest.raises(ValueError, match="MOABB ignores n_classes"):
        bci.benchmark(dataset=dataset, paradigm="MotorImagery",
                      paradigm_params={"n_classes": 2}, pipelines=["TS+SVM"], progress=False)
    check_class_count(MotorImagery(n_classes=2, events=["left_hand", "feet"]), dataset)
    check_class_count(MotorImagery(), dataset)
    _, y, _ = load_data(dataset, "MotorImagery",
                        paradigm_params={"n_classes": 2, "events": ["left_hand", "feet"]})
    assert sorted(set(y)) == ["feet", "left_hand"]


def test_dataset_parameters_and_run_lists():
    ds = get_dataset("PhysionetMI", feet_runs=[])
    assert (ds.hand_runs, ds.feet_runs) == ([4, 8, 12], [])
    ds = get_dataset("PhysionetMI", executed=True, hand_runs=[4, 3])  # a constructor argument too
    assert (ds.hand_runs, ds.feet_runs) == ([4, 3], [6, 10, 14, 5, 9, 13])
    assert get_dataset("SyntheticMotorImagery", n_trials=7).n_trials == 7
    with pytest.raises(ValueError, match="Unknown parameter 'feet_run' of dataset PhysionetMI. "
                                         "Did you mean 'feet_runs'.*It takes: imagined, "
                                         "executed.*hand_runs, feet_runs"):
        get_dataset("PhysionetMI", feet_run=[])
    with pytest.raises(ValueError, match=r"PhysionetMI feet_runs must list runs among \[5, 6, "
                                         r"9, 10, 13, 14\], got \[4\]"):
        get_dataset("PhysionetMI", feet_runs=[4, 6])
    with pytest.raises(TypeError, match="hand_runs must be a list of run numbers"):
        get_dataset("PhysionetMI", hand_runs="4,8")
    with pytest.raises(ValueError, match="only be given with a dataset name"):
        get_dataset(ds, feet_runs=[])


def test_runs_without_the_paradigms_events_are_skipped():
    from moabb.paradigms import LeftRightImagery, MotorImagery

    full = get_dataset("PhysionetMI")
    hands = skip_unused_runs(full, LeftRightImagery())
    assert (hands.hand_runs, hands.feet_runs) == ([4, 8, 12], [])
    assert hands is not full
    assert full.feet_runs == [6, 10, 14]  # the caller's dataset is not modified
    feet = skip_unused_runs(full, MotorImagery(n_classes=2, events=["feet", "hands"]))
    assert (feet.hand_runs, feet.feet_runs) == ([], [6, 10, 14])
    four = MotorImagery(n_classes=4, events=["left_hand", "right_hand", "feet", "hands"])
    assert skip_unused_runs(full, four) is full
    with_rest = MotorImagery(n_classes=3, events=["left_hand", "right_hand", "rest"])
    assert skip_unused_runs(full, with_rest) is full  # both kinds of runs hold rest
    kalunga = get_dataset("Kalunga2016")
    assert skip_unused_runs(kalunga, get_paradigm("SSVEP")) is kalunga


def test_filter_bank_epochs_stack_into_moabbs_arrays():
    from bci.data import SyntheticSSVEP

    dataset = SyntheticSSVEP(n_subjects=1, n_runs=1, n_trials=4)
    X, y, meta = load_data(dataset, "FilterBankSSVEP", [1])
    bands = load_band_epochs(dataset, "FilterBankSSVEP", [1])
    assert len(bands) == X.shape[-1] == 3
    stacked = np.stack([b.get_data(copy=True) for b in bands], axis=-1) * dataset.unit_factor
    np.testing.assert_array_equal(stacked, X)
    for b in bands:
        np.testing.assert_array_equal(b.metadata["label"].to_numpy(), y)
        np.testing.assert_array_equal(b.metadata["run"].to_numpy(), meta["run"].to_numpy())
    assert len(load_band_epochs(dataset, "SSVEP", [1])) == 1


@pytest.mark.real_data
@requires_physionet
def test_physionet_subjects_2_and_3_offline(monkeypatch):
    """Subjects 2-5 have their hand runs only: left/right loads them without the network."""
    from moabb.datasets import PhysionetMI
    from moabb.paradigms import LeftRightImagery

    def offline(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    X, y, meta = load_data("PhysionetMI", "LeftRightImagery", [2, 3])
    assert X.shape == (90, 64, 481)
    assert (meta.subject.value_counts().sort_index() == [45, 45]).all()
    assert sorted(set(y)) == ["left_hand", "right_hand"]
    # subject 1 has its feet runs: skipping them changes no epoch
    X1, y1, meta1 = load_data("PhysionetMI", "LeftRightImagery", [1])
    X1_moabb, y1_moabb, meta1_moabb = LeftRightImagery().get_data(PhysionetMI(), subjects=[1])
    np.testing.assert_array_equal(X1, X1_moabb)
    np.testing.assert_array_equal(y1, y1_moabb)
    assert meta1.equals(meta1_moabb)
    # with every run asked for, the feet runs of subject 2 are missing: a clear error
    with pytest.raises(FileNotFoundError, match="PhysionetMI: the files of subject 2"):
        load_data("PhysionetMI", "MotorImagery", [2], paradigm_params={
            "n_classes": 4, "events": ["left_hand", "right_hand", "feet", "hands"]})
