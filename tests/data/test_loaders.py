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
    load_data,
    load_epochs,
)
from tests.conftest import requires_physionet


def test_names_resolve_with_did_you_mean():
    assert "PhysionetMI" in list_datasets()
    assert "SyntheticMotorImagery" in list_datasets()
    assert type(get_dataset("Kalunga2016")).__name__ == "Kalunga2016"
    assert get_paradigm("MotorImagery", n_classes=4).n_classes == 4
    with pytest.raises(ValueError, match="Unknown dataset 'PhysionetM'. Did you mean 'PhysionetMI'"):
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
