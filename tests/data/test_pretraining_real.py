"""Pretraining data on the staged recordings (PhysionetMI subjects 1-5, Kalunga2016 1-11)."""

from __future__ import annotations

import numpy as np
import pytest

from bci.data.pretraining import ChunkSpec, map_channels
from bci.data.pretraining_corpus import (
    EEGBCIRecordings,
    MoabbRecordings,
    PretrainingCorpus,
    channel_report,
    pretraining_source,
)
from bci.data.pretraining_datamodule import PretrainingDataModule
from tests.conftest import requires_kalunga, requires_physionet

pytestmark = pytest.mark.real_data


@requires_physionet
@requires_kalunga
def test_channel_report_of_physionet_and_kalunga():
    report = channel_report([pretraining_source("PhysionetMI", subjects=[2]),
                             pretraining_source("Kalunga2016", subjects=[1])])
    physionet, kalunga = report.to_dict("records")
    assert physionet["dataset"] == "PhysionetMI"
    assert (physionet["n_eeg"], physionet["n_present"]) == (64, 20)
    assert physionet["absent"] == "T1, T2"
    assert "T3=T7" in physionet["present"]
    assert "T6=P8" in physionet["present"]
    assert len(physionet["dropped"].split(", ")) == 44
    assert kalunga["dataset"] == "Kalunga2016"
    assert (kalunga["n_eeg"], kalunga["n_present"]) == (8, 3)
    assert kalunga["present"] == "O1, Oz, O2"
    assert kalunga["dropped"] == "PO3, POz, PO7, PO8, PO4"
    assert len(kalunga["absent"].split(", ")) == 19


@requires_physionet
def test_physionet_every_stored_run_baselines_included(tmp_path):
    source = EEGBCIRecordings(subjects=[2, 3], exclude_subjects=[3])
    assert source.subjects == [2]
    corpus = PretrainingCorpus([source], ChunkSpec(), tmp_path)  # the paper's geometry
    recs = corpus.prepare()
    # subject 2: baseline run 1 (61 s) and hand runs 3, 4, 7, 8, 11, 12 (123 s), at 250 Hz
    assert [r.run for r in recs] == ["1", "3", "4", "7", "8", "11", "12"]
    assert [r.n_times for r in recs] == [15250] + [30750] * 6
    assert all(sum(r.mask) == 20 for r in recs)
    assert corpus.skipped == []
    data = np.load(recs[0].path)
    assert data.dtype == np.float32
    assert data.shape == (22, 15250)
    assert not data[[7, 13]].any()  # T1, T2
    assert np.abs(np.median(data[np.array(recs[0].mask)], axis=1)).max() < 1e-5


@requires_kalunga
def test_kalunga_held_out_subject_and_its_stored_twin_are_left_out(tmp_path):
    # Kalunga2016 stores one recording twice: subject 3 run 1 and subject 7 run 0
    source = pretraining_source("Kalunga2016", subjects=[3, 7], exclude_subjects=[3])
    dm = PretrainingDataModule([source], cache_dir=tmp_path, sfreq=128.0, chunk_s=1.0,
                               overlap_s=0.125, n_chunks=8, batch_size=4, val_fraction=0.0)
    dm.setup()
    assert [(r.subject, r.run) for r in dm.recordings] == [(7, "1"), (7, "2")]
    assert dm.corpus.skipped == [("Kalunga2016", 7, "0", "0",
                                  "identical to held-out Kalunga2016 subject 3 session 0 "
                                  "run 1")]
    batch = next(iter(dm.train_dataloader()))
    assert batch["chunks"].shape == (4, 8, 22, 128)
    assert batch["channel_mask"].sum(1).tolist() == [3, 3, 3, 3]


@requires_physionet
@requires_kalunga
def test_readme_pretraining_data_example_and_minutes(tmp_path):
    # the README's example, with the cache in tmp_path
    sources = [pretraining_source("Kalunga2016", subjects=range(1, 12), exclude_subjects=[3]),
               pretraining_source("PhysionetMI", subjects=[1, 2, 3, 4, 5])]
    data = PretrainingDataModule(sources, cache_dir=tmp_path, sfreq=128.0, chunk_s=1.0,
                                 overlap_s=0.125, n_chunks=8, batch_size=16, seed=0)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert batch["chunks"].shape == (16, 8, 22, 128)
    assert batch["channel_mask"].shape == (16, 22)
    assert {r.subject for r in data.recordings if r.source == "Kalunga2016"} == (
        set(range(1, 12)) - {3})
    assert len([r for r in data.recordings if r.source == "PhysionetMI"]) == 40
    assert data.minutes()["PhysionetMI"] == pytest.approx(78.5, abs=0.05)
    # the README's minutes: Kalunga2016 subjects 1-11, all 25 runs (subject 3 is added to the
    # cache; the others are reused)
    every = PretrainingDataModule([pretraining_source("Kalunga2016", subjects=range(1, 12))],
                                  cache_dir=tmp_path, sfreq=128.0, chunk_s=1.0, overlap_s=0.125,
                                  n_chunks=8)
    assert every.minutes() == {"Kalunga2016": pytest.approx(115.4, abs=0.05)}
    assert len(every.recordings) == 25


@requires_physionet
def test_physionet_names_are_clean_through_moabb_and_mne():
    # MOABB's PhysionetMI and MNE's eegbci.standardize both clean the EDF names ("Fc5." -> FC5)
    moabb = MoabbRecordings("PhysionetMI", subjects=[1], dataset_params={"feet_runs": []})
    moabb_run = moabb.load_subject(1)[0][2]  # run 4
    mne_runs = {run: raw for _, run, raw in EEGBCIRecordings(subjects=[1]).load_subject(1)}
    eeg = [c for c in moabb_run.ch_names if c != "STIM"]
    assert eeg == mne_runs["4"].ch_names
    assert not [c for c in eeg if "." in c]
    np.testing.assert_array_equal(moabb_run.get_data(picks=eeg), mne_runs["4"].get_data())
    assert map_channels(eeg).mask.sum() == 20
