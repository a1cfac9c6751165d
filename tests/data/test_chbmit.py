"""CHB-MIT loader: summary parsing, EDF reading, seizure annotations, MOABB dataset, errors.

Every test writes its own tiny CHB-MIT tree (two short EDF files of seeded noise with louder
rhythmic seizures, and a summary in PhysioNet's format); nothing is downloaded.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import mne
import numpy as np
import pytest

edfio = pytest.importorskip("edfio")

from bci.data.chbmit import (  # noqa: E402
    CHBMIT,
    CHBMIT_URL,
    load_chbmit_subject,
    read_chbmit_channels,
    read_chbmit_summary,
    seizure_intervals,
)
from tests._chbmit_files import PHYS_UV, SFREQ, write_case  # noqa: E402

STEP_UV = 2 * PHYS_UV / 65535  # EDF quantisation step (uV)
CHANNELS_1 = ["FP1-F7", "F7-T7", "T8-P8", "-", "FZ-CZ", "T8-P8"]
CHANNELS_2 = ["FP1-F7", "F7-T7", "T8-P8", "FZ-CZ", "T8-P8"]
FILES = {  # name: (channels, duration (s), seizures (s))
    "chb01_01.edf": (CHANNELS_1, 60, []),
    "chb01_03.edf": (CHANNELS_2, 90, [(20.0, 35.0), (60.0, 72.0)]),
}

SUMMARY = """Data Sampling Rate: 256 Hz
*************************

Channels in EDF Files:
**********************
Channel 1: FP1-F7
Channel 2: F7-T7
Channel 3: T8-P8
Channel 4: -
Channel 5: FZ-CZ
Channel 6: T8-P8

File Name: chb01_01.edf
File Start Time: 11:42:54
File End Time: 11:43:54
Number of Seizures in File: 0

Channels changed:
*****************
Channel 1: FP1-F7
Channel 2: F7-T7
Channel 3: T8-P8
Channel 4: FZ-CZ
Channel 5: T8-P8

File Name: chb01_03.edf
File Start Time: 23:59:30
File End Time: 24:01:00
Number of Seizures in File: 2
Seizure 1 Start Time: 20 seconds
Seizure 1 End Time: 35 seconds
Seizure 2 Start Time:  60 seconds
Seizure 2 End Time: 72 seconds
"""


def _write_tree(root: Path, case: str = "chb01") -> dict[str, np.ndarray]:
    """Write ``root/case`` (two EDF files and the summary); return the data written (uV)."""
    files = {name.replace("chb01", case): spec for name, spec in FILES.items()}
    written = write_case(root, case, files, summary=SUMMARY.replace("chb01", case))
    return {name: written[name.replace("chb01", case)] for name in FILES}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("chbmit")
    return root, _write_tree(root)


def test_read_summary_gives_intervals_and_channel_lists(tree):
    root, _ = tree
    summary = root / "chb01" / "chb01-summary.txt"
    assert read_chbmit_summary(summary) == {
        "chb01_01.edf": [], "chb01_03.edf": [(20.0, 35.0), (60.0, 72.0)]}
    assert read_chbmit_channels(summary) == {"chb01_01.edf": CHANNELS_1,
                                             "chb01_03.edf": CHANNELS_2}


def test_read_summary_without_seizure_numbers(tmp_path):
    # The spelling of most cases ("Seizure Start Time"), no channel list, no file times.
    summary = tmp_path / "chb05-summary.txt"
    summary.write_text("File Name: chb05_06.edf\nNumber of Seizures in File: 1\n"
                       "Seizure Start Time: 417 seconds\nSeizure End Time: 532 seconds\n\n"
                       "File Name: chb05_07.edf\nNumber of Seizures in File: 0\n")
    assert read_chbmit_summary(summary) == {"chb05_06.edf": [(417.0, 532.0)],
                                            "chb05_07.edf": []}
    assert read_chbmit_channels(summary) == {"chb05_06.edf": [], "chb05_07.edf": []}


@pytest.mark.parametrize(("bad", "match"), [
    ("Seizure Start Time: soon seconds", r"line 4 .*Seizure Start Time: 2996 seconds"),
    ("File Name chb01_03.edf", r"line 4 .*File Name: chb01_03.edf"),
    ("Number of Seizures in File: two", r"line 4 .*Number of Seizures in File: 1"),
])
def test_malformed_summary_line_names_the_line(tmp_path, bad, match):
    summary = tmp_path / "chb01-summary.txt"
    summary.write_text("File Name: chb01_01.edf\nNumber of Seizures in File: 0\n\n"
                       f"{bad}\n")
    with pytest.raises(ValueError, match=match):
        read_chbmit_summary(summary)


@pytest.mark.parametrize(("text", "match"), [
    ("File Name: a.edf\nNumber of Seizures in File: 2\nSeizure Start Time: 1 seconds\n"
     "Seizure End Time: 2 seconds\n", r"Number of Seizures in File: 2' but 1 seizure"),
    ("File Name: a.edf\nNumber of Seizures in File: 1\nSeizure Start Time: 5 seconds\n",
     r"1 seizure start time\(s\) but 0 end"),
    ("File Name: a.edf\nSeizure Start Time: 5 seconds\nSeizure End Time: 4 seconds\n",
     r"end 4.0 s is not after its start 5.0 s"),
    ("Seizure Start Time: 5 seconds\n", r"before any 'File Name:' line"),
    ("Data Sampling Rate: 256 Hz\n", r"lists no file"),
])
def test_inconsistent_summary_is_refused(tmp_path, text, match):
    summary = tmp_path / "chb01-summary.txt"
    summary.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_chbmit_summary(summary)


def test_missing_summary_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No CHB-MIT summary file at .*nope.txt"):
        read_chbmit_summary(tmp_path / "nope.txt")


def test_load_subject_reads_data_channels_and_seizures(tree):
    root, written = tree
    raws = load_chbmit_subject(1, path=root, download=False)
    assert [Path(r.filenames[0]).name for r in raws] == list(FILES)
    first, second = raws
    # repeated labels numbered by MNE; the dummy "-" channel is misc
    assert first.ch_names == ["FP1-F7", "F7-T7", "T8-P8-0", "-", "FZ-CZ", "T8-P8-1"]
    assert first.get_channel_types() == ["eeg", "eeg", "eeg", "misc", "eeg", "eeg"]
    assert second.ch_names == ["FP1-F7", "F7-T7", "T8-P8-0", "FZ-CZ", "T8-P8-1"]
    assert set(second.get_channel_types()) == {"eeg"}
    for raw, name in zip(raws, FILES, strict=True):
        assert raw.info["sfreq"] == SFREQ
        assert raw.n_times == FILES[name][1] * SFREQ
        # volts in MNE, equal to what was written within the EDF quantisation
        np.testing.assert_allclose(raw.get_data() * 1e6, written[name], rtol=0, atol=STEP_UV)
    assert len(first.annotations) == 0
    assert seizure_intervals(first).shape == (0, 2)
    assert list(second.annotations.description) == ["seizure", "seizure"]
    np.testing.assert_allclose(second.annotations.duration, [15.0, 12.0])
    np.testing.assert_allclose(seizure_intervals(second), [[20.0, 35.0], [60.0, 72.0]])
    # the annotations sit on the louder rhythmic segments
    data = second.get_data(picks="eeg")
    t = second.times
    ictal = np.zeros(t.size, bool)
    for onset, offset in seizure_intervals(second):
        ictal |= (t >= onset) & (t < offset)
    assert data[:, ictal].std() > 4 * data[:, ~ictal].std()


def test_files_subset_and_unknown_file(tree):
    root, _ = tree
    (raw,) = load_chbmit_subject(1, path=root, files=["chb01_03"], download=False)
    assert Path(raw.filenames[0]).name == "chb01_03.edf"
    with pytest.raises(ValueError, match=r"chb01_99.edf'\] not listed in .*chb01-summary.txt"):
        load_chbmit_subject(1, path=root, files=["chb01_99.edf"], download=False)


def test_seizure_intervals_follow_a_crop():
    raw = mne.io.RawArray(np.zeros((2, 30 * 100)), mne.create_info(2, 100.0, "eeg"),
                          verbose=False)
    raw.set_meas_date(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
    raw.set_annotations(mne.Annotations([12.0, 3.0], [4.0, 2.0], ["seizure", "seizure"]))
    np.testing.assert_allclose(seizure_intervals(raw), [[3.0, 5.0], [12.0, 16.0]])
    cropped = raw.copy().crop(tmin=10.0)
    np.testing.assert_allclose(seizure_intervals(cropped), [[2.0, 6.0]])
    with pytest.raises(TypeError, match="mne.io.BaseRaw"):
        seizure_intervals(np.zeros((2, 10)))


def test_dataset_get_data_keeps_seizure_durations(tree):
    root, written = tree
    dataset = CHBMIT(path=root, download=False, subjects=[1])
    assert dataset.code == "CHB-MIT"
    assert dataset.paradigm == "seizure"
    assert dataset.all_subjects == list(range(1, 25))
    assert dataset.subject_list == [1]
    data = dataset.get_data()
    assert list(data) == [1]
    assert list(data[1]) == ["0"]
    runs = data[1]["0"]
    assert list(runs) == ["0chb0101", "1chb0103"]
    assert all(isinstance(r, mne.io.BaseRaw) for r in runs.values())
    # MOABB's default pipeline would cut each seizure to `interval`; ours keeps them
    np.testing.assert_allclose(seizure_intervals(runs["1chb0103"]), [[20.0, 35.0], [60.0, 72.0]])
    np.testing.assert_allclose(runs["0chb0101"].get_data() * 1e6, written["chb01_01.edf"],
                               rtol=0, atol=STEP_UV)
    paths = dataset.data_path(1)
    assert [Path(p).name for p in paths] == ["chb01-summary.txt", *FILES]
    only = CHBMIT(path=root, download=False, seizure_files_only=True).get_data([1])
    assert list(only[1]["0"]) == ["1chb0103"]
    with pytest.raises(ValueError, match="Invalid subject"):
        dataset.get_data([2])


def test_paradigm_free_windowing(tree):
    seizure = pytest.importorskip("bci.data.seizure")
    root, _ = tree
    raw = CHBMIT(path=root, download=False).get_data([1])[1]["0"]["1chb0103"]
    X, y, t = seizure.sliding_windows(raw.get_data(picks="eeg"), raw.info["sfreq"], 4.0, 2.0,
                                      seizure_intervals(raw))
    assert X.shape == (44, 5, 4 * SFREQ)
    # windows at least half inside [20, 35] or [60, 72] s
    starts = t - 4.0
    expected = [(max(0, min(e, 35) - max(s, 20)) + max(0, min(e, 72) - max(s, 60))) >= 2.0
                for s, e in zip(starts, t, strict=True)]
    assert y.tolist() == [int(v) for v in expected]
    rms = np.sqrt((X.astype(float) ** 2).mean(axis=(1, 2)))
    assert rms[y == 1].min() > rms[y == 0].max()


def test_missing_data_errors_name_subject_path_and_fix(tmp_path, tree):
    root, _ = tree
    with pytest.raises(FileNotFoundError) as err:
        load_chbmit_subject(3, path=tmp_path, download=False)
    message = str(err.value)
    assert "subject 3" in message
    assert str(tmp_path / "chb03") in message
    assert "MNE_DATA" in message
    assert CHBMIT_URL in message
    # a case folder without its summary
    shutil.copytree(root / "chb01", tmp_path / "chb01")
    (tmp_path / "chb01" / "chb01-summary.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"subject 1: the summary file .*chb01-summary"):
        load_chbmit_subject(1, path=tmp_path, download=False)
    # an EDF file listed in the summary but absent
    shutil.copy(root / "chb01" / "chb01-summary.txt", tmp_path / "chb01")
    (tmp_path / "chb01" / "chb01_03.edf").unlink()
    with pytest.raises(FileNotFoundError, match=r"subject 1: 1 EDF file.*chb01_03.edf"):
        CHBMIT(path=tmp_path, download=False).get_data([1])
    (raw,) = load_chbmit_subject(1, path=tmp_path, files=["chb01_01.edf"], download=False)
    assert raw.n_times == 60 * SFREQ
    with pytest.raises(ValueError, match="1..24"):
        load_chbmit_subject(25, path=tmp_path)
    with pytest.raises(TypeError, match="case number"):
        load_chbmit_subject("chb01", path=tmp_path)


def test_root_from_mne_config_and_mne_layout(tmp_path, tree, monkeypatch):
    root, _ = tree
    shutil.copytree(root / "chb01", tmp_path / "MNE-chbmit-data" / "chb01")
    monkeypatch.delenv("MNE_DATA", raising=False)
    monkeypatch.setenv("MNE_DATASETS_CHBMIT_PATH", str(tmp_path))
    raws = load_chbmit_subject(1, files=["chb01_01.edf"], download=False)
    assert Path(raws[0].filenames[0]).parent == tmp_path / "MNE-chbmit-data" / "chb01"
    monkeypatch.delenv("MNE_DATASETS_CHBMIT_PATH")
    monkeypatch.setenv("MNE_DATA", str(tmp_path))
    assert CHBMIT(download=False).data_path(1)[0] == str(
        tmp_path / "MNE-chbmit-data" / "chb01" / "chb01-summary.txt")


def test_download_fetches_summary_then_edf_files(tmp_path, tree, monkeypatch):
    pooch = pytest.importorskip("pooch")
    root, written = tree
    urls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):  # a PhysioNet that works
        urls.append(url)
        assert url.startswith(CHBMIT_URL)
        Path(path).mkdir(parents=True, exist_ok=True)
        return shutil.copy(root / url[len(CHBMIT_URL):], Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    paths = CHBMIT(path=tmp_path, seizure_files_only=True).data_path(1)
    assert urls == [f"{CHBMIT_URL}chb01/chb01-summary.txt", f"{CHBMIT_URL}chb01/chb01_03.edf"]
    assert paths == [str(tmp_path / "MNE-chbmit-data" / "chb01" / n)
                     for n in ("chb01-summary.txt", "chb01_03.edf")]
    (raw,) = load_chbmit_subject(1, path=tmp_path, files=["chb01_03.edf"])
    np.testing.assert_allclose(raw.get_data() * 1e6, written["chb01_03.edf"], atol=STEP_UV)
    assert len(urls) == 2  # present files are not fetched again


def test_offline_download_becomes_file_not_found(tmp_path, monkeypatch):
    pooch = pytest.importorskip("pooch")
    requests = pytest.importorskip("requests")

    def offline(url, **kwargs):
        raise requests.exceptions.ConnectionError("no route to host")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(FileNotFoundError) as err:
        load_chbmit_subject(2, path=tmp_path)
    message = str(err.value)
    assert "subject 2" in message
    assert "could not be downloaded" in message
    assert str(tmp_path / "MNE-chbmit-data" / "chb02") in message
    assert "path=" in message


def test_common_eeg_channels_keeps_shared_channels_and_first_repeat():
    import mne

    from bci.data.chbmit import common_eeg_channels

    raws = [mne.io.RawArray(np.zeros((len(chs), 10)), mne.create_info(chs, 256.0, "eeg"),
                            verbose=False)
            for chs in (["FP1-F7", "T8-P8-0", "T8-P8-1"], ["T8-P8-1", "T8-P8-0", "FP1-F7"])]
    assert common_eeg_channels(raws) == ["FP1-F7", "T8-P8-0"]
    other = mne.io.RawArray(np.zeros((1, 10)), mne.create_info(["CZ-PZ"], 256.0, "eeg"),
                            verbose=False)
    with pytest.raises(ValueError, match=r"No EEG channel is common.*share a montage"):
        common_eeg_channels([raws[0], other])
