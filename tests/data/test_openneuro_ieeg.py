"""Berezutskaya2022 (OpenNeuro ds003688, sEEG): small files in its layout, the download mocked."""

from __future__ import annotations

import fnmatch
import shutil
import sys
import types
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mne_bids")

from bci.cli import main  # noqa: E402
from bci.data.loaders import get_dataset, list_datasets  # noqa: E402
from bci.data.openneuro_ieeg import DATASET_ID, Berezutskaya2022, fetch_openneuro  # noqa: E402

N_BLOCKS = 20  # alternating music / speech blocks of BLOCK_S seconds (30 s in the real data)
BLOCK_S = 6.0


def _write_subject(root, label, ch_type, rng, sfreq=128.0):
    """One film run in ds003688's layout: music blocks carry a 10-Hz rhythm on 2 contacts."""
    import mne_bids

    n_chans = 6
    n_times = int(N_BLOCKS * BLOCK_S * sfreq) + int(sfreq)
    data = rng.standard_normal((n_chans, n_times)) * 20e-6
    t = np.arange(n_times) / sfreq
    onsets = np.arange(N_BLOCKS) * BLOCK_S + 0.5
    kinds = ["music" if i % 2 == 0 else "speech" for i in range(N_BLOCKS)]
    for onset, kind in zip(onsets, kinds, strict=True):
        if kind == "music":
            sel = (t >= onset) & (t < onset + BLOCK_S)
            data[:2, sel] += 40e-6 * np.sin(2 * np.pi * 10 * t[sel])
    prefix = "LA" if ch_type == "seeg" else "G"
    info = mne.create_info([f"{prefix}{i + 1}" for i in range(n_chans)], sfreq, ch_type)
    raw = mne.io.RawArray(data, info, verbose=False)
    raw.set_annotations(mne.Annotations(onsets, BLOCK_S, kinds))
    path = mne_bids.BIDSPath(subject=label, session="iemu", task="film", acquisition="clinical",
                             run=1, datatype="ieeg", root=root)
    mne_bids.write_raw_bids(raw, path, format="BrainVision", allow_preload=True, overwrite=True,
                            verbose=False)
    return kinds


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Write the 'remote' copy: sEEG subjects 01 and 03, ECoG-only subject 02."""
    root = tmp_path_factory.mktemp("openneuro") / DATASET_ID
    rng = np.random.default_rng(0)
    kinds = {label: _write_subject(root, label, kind, rng)
             for label, kind in (("01", "seeg"), ("02", "ecog"), ("03", "seeg"))}
    return root, kinds


@pytest.fixture
def fake_openneuro(server, monkeypatch):
    """Replace openneuro-py by a copy from ``server`` of the files matching ``include``."""
    calls = []

    def download(*, dataset, tag=None, target_dir, include=None, **_):
        assert dataset == DATASET_ID
        calls.append(list(include))
        src = server[0]
        for fpath in src.rglob("*"):
            rel = fpath.relative_to(src).as_posix()
            if fpath.is_file() and any(fnmatch.fnmatch(rel, pat) for pat in include):
                dest = target_dir / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(fpath, dest)

    monkeypatch.setitem(sys.modules, "openneuro", types.SimpleNamespace(download=download))
    return calls


def test_downloads_sidecars_then_only_seeg_subjects(tmp_path, fake_openneuro, server):
    root = tmp_path / "data"
    ds = Berezutskaya2022(path=root)
    # first the sidecars of every subject, then the recordings of the two sEEG subjects only
    assert len(fake_openneuro) == 2
    assert fake_openneuro[1] == ["sub-01/ses-iemu/ieeg/*", "sub-03/ses-iemu/ieeg/*"]
    assert ds.subject_list == [1, 3]
    assert not list((root / "sub-02").rglob("*.eeg"))
    assert ds.code == "Berezutskaya2022"
    assert ds.unit_factor == 1e6
    from moabb.paradigms import MotorImagery

    X, y, meta = MotorImagery(events=["music", "speech"], n_classes=2, fmin=1,
                              fmax=40).get_data(ds, [1, 3])
    kinds = server[1]["01"] + server[1]["03"]
    assert (y == "music").sum() == kinds.count("music") == 20
    assert (y == "speech").sum() == kinds.count("speech") == 20
    assert X.shape[1] == 6
    # a second construction finds everything on disk: nothing downloaded
    Berezutskaya2022(path=root)
    assert len(fake_openneuro) == 2
    # ECoG instead: the ECoG subject, fetched on demand
    ecog = Berezutskaya2022(ch_types="ecog", path=root)
    assert ecog.subject_list == [2]
    assert fake_openneuro[2] == ["sub-02/ses-iemu/ieeg/*"]


def test_offline_and_bad_subjects_are_clear(tmp_path, fake_openneuro):
    with pytest.raises(FileNotFoundError, match=r"ds003688.*MNE_DATASETS_DS003688_PATH"):
        Berezutskaya2022(path=tmp_path / "none", download=False)
    assert fake_openneuro == []
    root = tmp_path / "data"
    with pytest.raises(ValueError, match=r"Subjects \[2\] .* no seeg contact.*\[1, 3\]"):
        Berezutskaya2022(path=root, subjects=[2])
    # subjects= limits the download to their recordings
    ds = Berezutskaya2022(path=root, subjects=[3])
    assert fake_openneuro[-1] == ["sub-03/ses-iemu/ieeg/*"]
    assert ds.subject_list == [3]
    assert not list((root / "sub-01").rglob("*.eeg"))
    with pytest.raises(TypeError, match="subjects"):
        Berezutskaya2022(path=root, subjects=[True])
    with pytest.raises(ValueError, match="event_id names trial types"):
        Berezutskaya2022(path=root, event_id=["rest"])


def test_missing_openneuro_py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openneuro", None)
    with pytest.raises(ImportError, match=r"pip install 'bci\[openneuro\]'"):
        fetch_openneuro(DATASET_ID, tmp_path, ["dataset_description.json"])


def test_cli_benchmark_and_train(tmp_path, fake_openneuro, monkeypatch, capsys):
    monkeypatch.setenv("MNE_DATASETS_DS003688_PATH", str(tmp_path / "ds"))
    assert "Berezutskaya2022" in list_datasets()
    assert isinstance(get_dataset("Berezutskaya2022"), Berezutskaya2022)
    data = ["--dataset", "Berezutskaya2022", "--paradigm", "MotorImagery",
            "--paradigm-param", "events=['music', 'speech']", "--paradigm-param", "n_classes=2"]
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert ("bci benchmark --dataset Berezutskaya2022 --paradigm MotorImagery \\\n"
            "    --paradigm-param \"events=['music', 'speech']\" --paradigm-param n_classes=2 "
            "--pipelines TS+LR,MDM") in readme
    out = tmp_path / "bench"
    assert main(["benchmark", *data, "--pipelines", "TS+LR,MDM", "--subjects", "1", "--out",
                 str(out), "--no-cache"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert (results.dataset == "Berezutskaya2022").all()
    assert (results.score > 0.8).all()
    path = tmp_path / "dec.bci"
    assert main(["train", *data, "--dataset-param", "subjects=[1, 3]", "--pipeline", "MDM",
                 "--subjects", "1,3", "--out", str(path)]) == 0
    assert "Saved MDM decoder" in capsys.readouterr().out
