"""`bci session-export`: recorded sessions to BIDS (mne-bids), EDF+ and FIF, read back by MNE."""

from __future__ import annotations

import hashlib
import json
import sys

import mne
import numpy as np
import pytest

from bci.cli import main
from bci.realtime.recording import Recorder, read_events, read_signal
from bci.realtime.safety import SafetyGate
from bci.realtime.session import run_session
from bci.realtime.session_export import (
    export_session,
    export_session_bids,
    session_raw,
)
from bci.realtime.sources import raw_source
from bci.realtime.stimulation import RecordingStimulator

mne_bids = pytest.importorskip("mne_bids")
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def session(tmp_path_factory, mi_decoder, mi_recording):
    """Record a finished session: decisions, stimuli, suppressed stimuli, t0 = 5000 s (LSL)."""
    root = tmp_path_factory.mktemp("export")
    decoder_file = mi_decoder.save(root / "mi.bci")
    directory = root / "session"
    summary = run_session(
        raw_source(mi_recording, chunk_size=32, t0=5000.0), decoder=decoder_file,
        policy="threshold:target=right_hand,on=0.5,off=0.45,refractory_s=0.25",
        stimulator=RecordingStimulator(), record_dir=directory, step_s=0.25, threaded=False,
        safety=SafetyGate(min_interval_s=6.0, max_per_minute=None, max_per_session=None),
        info={"decoder": str(decoder_file), "policy": "threshold", "stimulator": "dry-run"})
    assert summary["decisions"] > 20
    assert summary["stimuli_fired"] >= 2
    assert summary["stimuli_suppressed"] >= 1
    return directory, decoder_file


def _snapshot(directory):
    """Content hash and modification time of every file: what 'never modified' means."""
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(directory.iterdir())}


def _truth(directory):
    data, times, header = read_signal(directory)
    events = read_events(directory)
    return data.astype(np.float64), header, events


def test_bids_round_trip_through_the_cli(session, tmp_path, capsys):
    """README: `bci session-export DIR --bids ROOT`; read back by mne_bids.read_raw_bids."""
    directory, decoder_file = session
    before = _snapshot(directory)
    root = tmp_path / "bids"
    assert main(["session-export", str(directory), "--bids", str(root), "--subject", "07",
                 "--task", "mi", "--line-freq", "50"]) == 0
    assert "Wrote BIDS" in capsys.readouterr().out
    assert _snapshot(directory) == before  # the session folder is untouched
    data, header, events = _truth(directory)
    bids_path = mne_bids.BIDSPath(subject="07", task="mi", datatype="eeg", root=root)
    raw = mne_bids.read_raw_bids(bids_path, verbose=False)
    # data: BrainVision float32 in units of 0.1 uV (mne-bids' conversion): float32 precision
    assert raw.ch_names == header["ch_names"]
    assert raw.info["sfreq"] == header["sfreq"]
    np.testing.assert_allclose(raw.get_data(), data, rtol=2e-7, atol=1e-16)
    # events.tsv: every decision, stimulus and suppressed stimulus, at its own sample
    tsv = pd.read_csv(bids_path.copy().update(suffix="events", extension=".tsv").fpath,
                      sep="\t")
    placed = [e for e in events if isinstance(e.get("index"), int)
              and 0 <= e["index"] < data.shape[1]]
    unplaced = [e for e in events if e not in placed]  # session_end: on its time
    assert [e["kind"] for e in unplaced] == ["session_end"]
    assert len(tsv) == len(placed) + 1
    by_sample = sorted(zip(tsv["sample"], tsv["trial_type"], strict=True))
    truth = sorted([(e["index"], f"{e['kind']}/{e['description']}") for e in placed]
                   + [(data.shape[1] - 1, f"session_end/{unplaced[0]['description']}")])
    assert by_sample == truth
    np.testing.assert_array_equal(tsv["onset"], tsv["sample"] / header["sfreq"])
    assert (tsv["trial_type"].str.split("/").str[0] == tsv["kind"]).all()
    kinds = tsv["kind"].value_counts()
    summary = json.loads((directory / "summary.json").read_text())
    assert kinds["decision"] == summary["decisions"]
    assert kinds["stim"] == summary["stimuli_fired"]
    assert kinds["suppressed"] == summary["stimuli_suppressed"]
    decisions = tsv[tsv["kind"] == "decision"]
    assert set(decisions["trial_type"]) <= {"decision/left_hand", "decision/right_hand"}
    first = min(placed, key=lambda e: e["index"])
    assert tsv.iloc[0]["lsl_time"] == pytest.approx(first["time"], abs=1e-9)
    assert tsv[tsv["kind"] == "suppressed"]["reason"].notna().all()
    probas = [json.loads(p) for p in decisions["proba"]]
    np.testing.assert_allclose([sum(p) for p in probas], 1.0, atol=1e-9)
    # read back by MNE with events intact
    assert sorted(zip(np.round(raw.annotations.onset * header["sfreq"]).astype(int),
                      raw.annotations.description, strict=True)) == truth
    # the sidecar: the decoder's provenance and the session's summary
    sidecar = json.loads(bids_path.copy().update(suffix="eeg", extension=".json")
                         .fpath.read_text())
    prov = sidecar["BciSession"]
    assert prov["Decoder"] == str(decoder_file)
    assert prov["DecoderSHA256"] == hashlib.sha256(decoder_file.read_bytes()).hexdigest()
    assert prov["Policy"] == "threshold"
    assert prov["FirstSampleLSLTime"] == 5000.0
    assert prov["Summary"]["decisions"] == summary["decisions"]
    assert sidecar["PowerLineFrequency"] == 50
    described = json.loads(bids_path.copy().update(suffix="events", extension=".json")
                           .fpath.read_text())
    assert {"kind", "lsl_time", "score", "proba", "latency_ms", "reason"} <= set(described)
    dataset = json.loads((root / "dataset_description.json").read_text())
    assert [g["Name"] for g in dataset["GeneratedBy"]][0] == "bci"
    channels = pd.read_csv(bids_path.copy().update(suffix="channels", extension=".tsv").fpath,
                           sep="\t")
    assert list(channels["name"]) == header["ch_names"]
    assert set(channels["type"]) == {"EEG"}


def test_fif_round_trip_is_exact(session, tmp_path):
    directory, _ = session
    before = _snapshot(directory)
    out = tmp_path / "session_raw.fif"
    assert main(["session-export", str(directory), "--format", "fif", "--out", str(out)]) == 0
    assert _snapshot(directory) == before
    data, header, events = _truth(directory)
    raw = mne.io.read_raw_fif(out, verbose=False)
    np.testing.assert_array_equal(raw.get_data(), data)  # float32 both ways
    ref, _ = session_raw(directory)
    np.testing.assert_array_equal(raw.annotations.onset, ref.annotations.onset)
    np.testing.assert_array_equal(raw.annotations.description, ref.annotations.description)
    assert raw.info["meas_date"].isoformat(timespec="seconds") == header["created"]


def test_edf_round_trip_to_the_format_resolution(session, tmp_path):
    directory, _ = session
    out = tmp_path / "session.edf"
    assert main(["session-export", str(directory), "--format", "edf", "--out", str(out)]) == 0
    data, header, _ = _truth(directory)
    raw = mne.io.read_raw_edf(out, verbose=False)
    assert raw.ch_names == header["ch_names"]
    # 16-bit samples over the physical range of the EEG channels (one range for all)
    resolution = (data.max() - data.min()) / 65535
    n = data.shape[1]
    assert n <= raw.n_times < n + header["sfreq"]  # the last 1-s record padded
    assert np.abs(raw.get_data()[:, :n] - data).max() <= 0.5 * resolution * 1.01  # rounding
    ref, _ = session_raw(directory)
    pad = raw.annotations.description == "BAD_ACQ_SKIP"  # MNE marks the padding
    assert raw.annotations.onset[pad].tolist() == [n / header["sfreq"]]
    np.testing.assert_allclose(raw.annotations.onset[~pad], ref.annotations.onset, atol=1e-6)
    np.testing.assert_array_equal(raw.annotations.description[~pad],
                                  ref.annotations.description)


# ------------------------------------------------------------------ bad input
def test_session_still_being_written_is_refused(tmp_path):
    directory = tmp_path / "live"
    with Recorder(directory, ["C3", "C4"], 100.0) as recorder:
        recorder.write_chunk(np.ones((2, 50)), 10.0 + np.arange(50) / 100.0)
        recorder.write_event("decision", 10.2, index=20, description="left_hand")
        before = _snapshot(directory)
        with pytest.raises(RuntimeError, match=r"not finished: it is still being written "
                                               r"\(its recorder holds summary.reserve\)"):
            export_session(directory, tmp_path / "x_raw.fif")
        assert main(["session-export", str(directory), "--bids", str(tmp_path / "b")]) == 2
        assert _snapshot(directory) == before
        # a crashed recording: export what is there, on request
        out = export_session(directory, tmp_path / "x_raw.fif", allow_incomplete=True)
        raw = mne.io.read_raw_fif(out, verbose=False)
        assert raw.n_times == 50
        assert list(raw.annotations.description) == ["decision/left_hand"]
        assert raw.annotations.onset[0] == 0.2
    # closed without a summary (never written by bci stream, which always writes one)
    with pytest.raises(RuntimeError, match="it has no summary.json"):
        export_session_bids(directory, tmp_path / "b")


def test_not_a_session(tmp_path):
    with pytest.raises(FileNotFoundError, match="No session folder .*does not exist"):
        export_session(tmp_path / "missing", tmp_path / "x_raw.fif")
    with pytest.raises(FileNotFoundError, match=r"is not a bci session folder \(no "
                                                r"header.json and signal.f32\)"):
        export_session_bids(tmp_path, tmp_path.parent / "bids")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "header.json").write_text(json.dumps({"format": "other"}))
    (fake / "signal.f32").write_bytes(b"")
    with pytest.raises(ValueError, match="is not a bci session header"):
        export_session(fake, tmp_path / "x_raw.fif")


def test_bad_outputs(session, tmp_path, capsys):
    directory, _ = session
    before = _snapshot(directory)
    with pytest.raises(ValueError, match="inside the session folder"):
        export_session_bids(directory, directory / "bids")
    with pytest.raises(ValueError, match="inside the session folder"):
        export_session(directory, directory / "x_raw.fif")
    with pytest.raises(ValueError, match=r"must end in \.edf"):
        export_session(directory, tmp_path / "x.fif", fmt="edf")
    with pytest.raises(ValueError, match="Unknown format 'bdf'"):
        export_session(directory, tmp_path / "x.bdf", fmt="bdf")
    with pytest.raises(ValueError, match="subject must be a non-empty alphanumeric label"):
        export_session_bids(directory, tmp_path / "b", subject="0-1")
    (tmp_path / "y_raw.fif").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="exists; choose another file"):
        export_session(directory, tmp_path / "y_raw.fif")
    assert (tmp_path / "y_raw.fif").read_bytes() == b"keep"
    export_session_bids(directory, tmp_path / "bids", run="1")
    with pytest.raises(FileExistsError, match=r"already in the BIDS dataset .*--overwrite"):
        export_session_bids(directory, tmp_path / "bids", run="1")
    export_session_bids(directory, tmp_path / "bids", run="1", overwrite=True)
    assert main(["session-export", str(directory), "--out", str(tmp_path / "z.edf")]) == 2
    assert "--out FILE needs --format edf or --format fif" in capsys.readouterr().err
    assert _snapshot(directory) == before


@pytest.mark.parametrize(("missing", "call"), [
    ("mne_bids", lambda d, t: export_session_bids(d, t / "b")),
    ("pybv", lambda d, t: export_session_bids(d, t / "b")),
    ("edfio", lambda d, t: export_session(d, t / "x.edf", fmt="edf")),
])
def test_missing_extra_names_the_pip_line(session, tmp_path, monkeypatch, missing, call):
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ImportError, match=r"pip install 'bci\[bids\]'"):
        call(session[0], tmp_path)
