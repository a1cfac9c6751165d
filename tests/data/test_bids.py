"""BIDSDataset: BIDS folders written with mne-bids (simulated and real MEG/ECoG) as MOABB data."""

from __future__ import annotations

import mne
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mne_bids")

from bci.cli import main  # noqa: E402
from bci.data.bids import BIDSDataset, pick_kwargs  # noqa: E402
from bci.data.loaders import get_dataset, list_datasets  # noqa: E402

from ._bids_files import (  # noqa: E402
    CTF,
    ECOG,
    ELEKTA,
    ecog_clip,
    elekta_events,
    write_elekta,
    write_raw,
    write_simulated,
)

needs_meg = pytest.mark.skipif(not ELEKTA.is_file(), reason=f"staged MEG file absent: {ELEKTA}")


def test_simulated_layout_events_and_counts(tmp_path):
    n_per_class = write_simulated(tmp_path, subjects=("01", "03"), sessions=("a", "b"),
                                  runs=("01", "02"), n_trials=4)
    ds = BIDSDataset(tmp_path)
    assert ds.subject_list == [1, 3]
    assert ds.subject_labels == {1: "01", 3: "03"}
    assert ds.event_id == {"left_hand": 1, "right_hand": 2}
    assert ds.n_sessions == 2
    assert ds.code == f"BIDSDataset-{tmp_path.name.replace('_', '').lower()}"
    data = ds.get_data([3])
    assert list(data[3]) == ["0sesa", "1sesb"]
    assert list(data[3]["0sesa"]) == ["0taskmirun01", "1taskmirun02"]
    from moabb.paradigms import LeftRightImagery

    X, y, meta = LeftRightImagery().get_data(ds, [1, 3])
    # every trial written is found: 4 a class a run, 2 runs, 2 sessions, 2 subjects
    assert X.shape == (2 * 2 * n_per_class, 8, 129)  # interval (0, 1) s at 128 Hz
    assert (pd.Series(y).value_counts() == 2 * n_per_class).all()
    assert sorted(meta.subject.unique()) == [1, 3]
    assert ds.data_path(1)[0].endswith("sub-01_ses-a_task-mi_run-01_eeg.vhdr")


def test_event_id_merges_and_selects_trial_types(tmp_path):
    write_simulated(tmp_path, subjects=("01",), runs=("01",), n_trials=5)
    merged = BIDSDataset(tmp_path, event_id={"left_hand": "hand", "right_hand": "hand"})
    assert merged.event_id == {"hand": 1}
    from moabb.paradigms import MotorImagery

    _, y, _ = MotorImagery(events=["hand"], n_classes=1).get_data(merged, [1])
    assert list(y) == ["hand"] * 10
    only = BIDSDataset(tmp_path, event_id=["right_hand"])
    _, y, _ = MotorImagery(events=["right_hand"], n_classes=1).get_data(only, [1])
    assert len(y) == 5
    with pytest.raises(ValueError, match=r"trial types \['feet'\] that no events.tsv holds"):
        BIDSDataset(tmp_path, event_id=["feet"])


def test_nonnumeric_subject_labels_are_numbered(tmp_path):
    write_simulated(tmp_path, subjects=("pt2", "pt1"), runs=("01",), n_trials=2)
    ds = BIDSDataset(tmp_path, name="Clinic")
    assert ds.subject_labels == {1: "pt1", 2: "pt2"}
    assert ds.code == "BIDSDataset-clinic"


@needs_meg
def test_elekta_meg_triggers_by_channel_type(tmp_path):
    write_elekta(tmp_path)
    raw, events = elekta_events()
    ds = BIDSDataset(tmp_path, event_id={"code1": "one", "code2": "two"}, ch_types="grad")
    assert ds.datatype == "meg"
    assert ds.sfreqs == {"sub-01_task-triggers_meg.fif": 1000.0}
    from moabb.paradigms import MotorImagery

    paradigm = MotorImagery(events=["one", "two"], n_classes=2, fmin=1, fmax=40)
    X, y, _ = paradigm.get_data(ds, [1])
    # truth: the triggers of codes 1 and 2 whose 1-s window ends inside the recording
    last = raw.first_samp + raw.n_times - 1
    fits = events[(events[:, 0] + 1000 <= last) & np.isin(events[:, 2], [1, 2])]
    assert len(y) == len(fits) > 40
    assert (y == "one").sum() == (fits[:, 2] == 1).sum()
    assert X.shape[1] == 2  # the two gradiometers, not the magnetometer nor the trigger
    assert ds.unit_factor == 1e13  # T/m -> fT/cm
    mags = BIDSDataset(tmp_path, event_id=["code1"], ch_types=["mag"])
    X, _, _ = MotorImagery(events=["code1"], n_classes=1, fmin=1, fmax=40).get_data(mags, [1])
    assert X.shape[1] == 1
    assert mags.unit_factor == 1e15
    # the magnetometer in fT: hundreds (1-40 Hz), the range EEG has in µV
    assert 50 < np.std(X) < 5000


def test_ecog_clip_as_ieeg(tmp_path):
    if not ECOG.is_file():
        pytest.skip(f"staged ECoG clip absent: {ECOG}")
    raw = ecog_clip()
    write_raw(raw, tmp_path, task="monitor", datatype="ieeg", fmt="BrainVision")
    ds = BIDSDataset(tmp_path, event_id={"seizure": "seizure"}, interval=(0.0, 0.5))
    assert ds.datatype == "ieeg"
    assert ds.ch_types == ("seeg", "ecog", "dbs")
    from moabb.paradigms import MotorImagery

    X, y, _ = MotorImagery(events=["seizure"], n_classes=1, fmin=1, fmax=40).get_data(ds, [1])
    assert X.shape[:2] == (2, 83)  # the two "seizure" annotations, all 83 contacts
    assert (y == "seizure").all()


def test_folder_without_events_is_refused(tmp_path):
    if not CTF.is_file():
        pytest.skip(f"staged CTF file absent: {CTF}")
    raw = mne.io.read_raw_fif(CTF, verbose="error")
    write_raw(raw, tmp_path, task="rest", datatype="meg", fmt="FIF")
    with pytest.raises(FileNotFoundError, match=r"has no events: none of its 1 meg recordings"):
        BIDSDataset(tmp_path)


def test_mixed_sampling_rates_refused_or_resampled(tmp_path):
    write_simulated(tmp_path, subjects=("01",), runs=("01", "02"), n_trials=3,
                    sfreqs={"02": 256.0})
    with pytest.raises(ValueError, match=r"different sampling rates \(128, 256 Hz.*resample="):
        BIDSDataset(tmp_path)
    ds = BIDSDataset(tmp_path, resample=128)
    from moabb.paradigms import LeftRightImagery

    X, y, _ = LeftRightImagery().get_data(ds, [1])
    assert X.shape == (12, 8, 129)


def test_bad_roots_and_parameters(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        BIDSDataset(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="No EEG, MEG or iEEG recording"):
        BIDSDataset(tmp_path)
    write_simulated(tmp_path, subjects=("01",), runs=("01",), n_trials=2)
    with pytest.raises(ValueError, match="Did you mean 'grad'"):
        BIDSDataset(tmp_path, ch_types=["grads"])
    with pytest.raises(ValueError, match=r"mix volts \(eeg\) and tesla \(mag\)"):
        BIDSDataset(tmp_path, ch_types=["eeg", "mag"])
    with pytest.raises(ValueError, match="resample must be"):
        BIDSDataset(tmp_path, resample=float("nan"))
    with pytest.raises(ValueError, match=r"interval must be \(tmin, tmax\)"):
        BIDSDataset(tmp_path, interval=(1.0, 0.0))
    if ELEKTA.is_file():
        write_elekta(tmp_path, subject="02")
        with pytest.raises(ValueError, match="several data types.*datatype="):
            BIDSDataset(tmp_path)
        assert BIDSDataset(tmp_path, datatype="eeg").subject_list == [1]


def test_pick_kwargs_per_type():
    assert pick_kwargs(["mag", "grad"])["meg"] is True
    assert pick_kwargs(["grad"])["meg"] == "grad"
    kwargs = pick_kwargs(["seeg", "ecog"])
    assert (kwargs["meg"], kwargs["eeg"], kwargs["seeg"], kwargs["ecog"]) == (False, False,
                                                                              True, True)


def test_cli_benchmark_and_train_on_a_bids_folder(tmp_path, capsys):
    root = tmp_path / "bids"
    write_simulated(root, subjects=("01", "02"), runs=("01", "02"), n_trials=10)
    assert "BIDS" in list_datasets()
    data = ["--dataset", "BIDS", "--dataset-param", f"root={root}",
            "--dataset-param", "interval=(0.5, 3.5)"]
    assert isinstance(get_dataset("BIDS", root=str(root)), BIDSDataset)
    out = tmp_path / "bench"
    assert main(["benchmark", *data, "--pipelines", "TS+LR", "--subjects", "1", "--out", str(out),
                 "--no-cache"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert results.dataset.str.startswith("BIDSDataset-").all()
    assert (results.score > 0.8).all()
    path = tmp_path / "dec.bci"
    assert main(["train", *data, "--pipeline", "MDM", "--subjects", "1-2", "--out", str(path)]) == 0
    assert "Saved MDM decoder" in capsys.readouterr().out
