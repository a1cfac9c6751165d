"""Recording: append-only, complete up to a crash, read back as MNE Raw with annotations."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest

from bci.realtime.loop import OnlineLoop
from bci.realtime.policies import OscillationTrigger
from bci.realtime.recording import Recorder, read_events, read_session, read_signal
from bci.realtime.report import latency_stats, make_session_report
from bci.realtime.safety import SafetyGate
from bci.realtime.sources import ArraySource
from bci.realtime.stream import Stream

from ._helpers import index_signal

SUMMARY_KEYS = {"samples_received", "samples_lost", "gaps", "decisions", "stimuli_fired",
                "stimuli_suppressed", "latency_ms"}


def _bursty(n_times=6000, sfreq=200.0, seed=0):
    """Noise with 13 Hz bursts every 5 s on channel 1 (row 0 carries the index)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) / sfreq
    x = rng.standard_normal((2, n_times)) * 1e-6
    for onset in np.arange(3.0, t[-1] - 2, 5.0):
        env = np.exp(-0.5 * ((t - onset - 0.5) / 0.2) ** 2)
        x[1] += 10e-6 * env * np.sin(2 * np.pi * 13 * t)
    x[0] = np.arange(n_times)
    return x


def test_session_round_trip_as_mne_raw(tmp_path):
    from bci.realtime.processing import CausalFilter, ProcessingChain

    x = _bursty()
    stream = Stream(ArraySource(x, 200.0, ch_names=["idx", "Cz"], chunk_size=13),
                    threaded=False)
    rec = Recorder(tmp_path / "sess", stream.ch_names, 200.0, info={"source": "test"})
    trigger = OscillationTrigger("Cz", freq=13.0, threshold=3.0, relative=True,
                                 baseline_s=10.0, min_duration_s=0.05)
    loop = OnlineLoop(stream, window_s=0.5, step_s=0.05, recorder=rec, policy=trigger,
                      processing=ProcessingChain([CausalFilter(200.0, 11.0, 15.0)]),
                      safety=SafetyGate(min_interval_s=1.0), catch_up=True)
    summary = loop.run()
    assert SUMMARY_KEYS <= set(summary)
    on_disk = json.loads((tmp_path / "sess" / "summary.json").read_text())
    assert on_disk["stimuli_fired"] == summary["stimuli_fired"] == 5  # bursts at 3, 8, ... 23 s
    for stage in ("acquire", "process", "decode", "act", "end_to_end"):
        assert set(on_disk["latency_ms"][stage]) >= {"p50", "p95", "p99", "max"}

    raw = read_session(tmp_path / "sess")
    assert isinstance(raw, mne.io.BaseRaw)
    assert raw.info["sfreq"] == 200.0
    np.testing.assert_array_equal(raw.get_data(picks="idx")[0], np.arange(6000))  # exact
    np.testing.assert_allclose(raw.get_data(picks="Cz")[0], x[1].astype(np.float32))
    stims = [a for a in raw.annotations if a["description"].startswith("stim/")]
    assert len(stims) == 5
    # each stimulus lands during its burst (onset + 0.5 s peak, sd 0.2 s)
    for a, onset in zip(stims, np.arange(3.0, 24.0, 5.0), strict=True):
        assert onset + 0.1 < a["onset"] < onset + 0.9
    decisions = [e for e in read_events(tmp_path / "sess") if e["kind"] == "decision"]
    assert len(decisions) == summary["decisions"]


def test_recording_complete_up_to_a_crash(tmp_path):
    rec = Recorder(tmp_path / "crash", ["a", "b"], 100.0)
    data = index_signal(250, n_chans=2)
    rec.write_chunk(data[:, :100], np.arange(100) / 100.0, 0)
    rec.write_event("stim", 0.5, index=50, description="code 1")
    rec.write_chunk(data[:, 100:250], np.arange(100, 250) / 100.0, 100)
    # simulate a crash mid-write: a torn sample and a torn event line, no close()
    with open(tmp_path / "crash" / "signal.f32", "ab") as f:
        f.write(b"\x00\x01\x02")
    with open(tmp_path / "crash" / "events.jsonl", "a") as f:
        f.write('{"kind": "stim", "ti')
    sig, ts, _ = read_signal(tmp_path / "crash")
    np.testing.assert_array_equal(sig[0], np.arange(250))
    np.testing.assert_allclose(ts, np.arange(250) / 100.0)
    raw = read_session(tmp_path / "crash")
    assert raw.n_times == 250
    assert list(raw.annotations.description) == ["stim/code 1"]
    assert raw.annotations.onset[0] == pytest.approx(0.5)


def test_recorder_refuses_overwrite_and_out_of_order_chunks(tmp_path):
    rec = Recorder(tmp_path / "r", ["a"], 10.0)
    rec.write_chunk(np.zeros((1, 5)), np.arange(5.0), 0)
    with pytest.raises(RuntimeError, match="starting at sample 9 after 5 samples"):
        rec.write_chunk(np.zeros((1, 5)), np.arange(5.0), 9)
    with pytest.raises(FileExistsError, match="already holds a recording"):
        Recorder(tmp_path / "r", ["a"], 10.0)
    rec.close()
    with pytest.raises(RuntimeError, match="is closed"):
        rec.write_event("x", 0.0)
    assert read_signal(tmp_path / "r")[0].shape == (1, 5)  # bad input lost nothing
    with pytest.raises(FileNotFoundError, match="not a bci session folder"):
        read_session(tmp_path / "nothing")


def test_latency_stats_and_report(tmp_path):
    stats = latency_stats(list(range(1, 101)) + [float("nan")])
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["max"] == 100
    assert stats["n"] == 100
    assert latency_stats([])["p99"] is None
    stream = Stream(ArraySource(_bursty(2000), 200.0, chunk_size=20), threaded=False)
    rec = Recorder(tmp_path / "rep", stream.ch_names, 200.0)
    OnlineLoop(stream, window_s=0.5, step_s=0.1, recorder=rec, catch_up=True,
               policy=OscillationTrigger(1, freq=13.0, threshold=3.0)).run()
    paths = make_session_report(tmp_path / "rep")
    assert [p.name for p in paths] == ["latency.png", "timeline.png", "report.html"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert "stimuli_fired" in (tmp_path / "rep" / "report.html").read_text()


# ---------------------------------------------------------------------- full disk, bad places
@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs of a given size (KiB) under tmp_path: a real disk that fills up."""
    import shutil
    import subprocess

    mounted = []

    def mount(size_kib: int, *, read_only: bool = False):
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no `mount` command: cannot make a small real disk here")
        opts = f"size={size_kib}k,mode=0755" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:  # lazily if a file is still open, so no mount is ever left behind
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


class EveryWindow(OscillationTrigger):
    """Score every window and request a stimulus at each (many events to record)."""

    def update(self, decision):
        from bci.realtime.events import StimRequest

        decision.score = 1.0
        return StimRequest(reason="every", t_trigger=decision.t_end)


def _check_whole(directory, n_chans):
    """Both data files hold the same number of whole samples; every event line parses."""
    sig = (directory / "signal.f32").stat().st_size
    times = (directory / "timestamps.f64").stat().st_size
    assert sig % (4 * n_chans) == 0
    assert times % 8 == 0
    assert sig // (4 * n_chans) == times // 8
    lines = (directory / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # no torn line
    assert not (directory / "summary.json.part").exists()
    assert not (directory / "summary.reserve").exists()
    return times // 8, events


def test_full_disk_stops_the_session_with_whole_files_and_a_summary(small_disk):
    from bci.realtime.session import run_session

    disk = small_disk(320)  # 64 KiB for data once 256 KiB are held back for the summary
    n_chans = 8
    source = ArraySource(index_signal(40000, n_chans=n_chans), 256.0, chunk_size=32)
    summary = run_session(source, record_dir=disk / "s", window_s=0.5, step_s=0.25,
                          policy=EveryWindow(0), threaded=False,
                          safety=SafetyGate(min_interval_s=0.0, max_per_minute=None))
    assert summary["stopped_reason"].startswith(f"recording failed: Recording to {disk / 's'} "
                                                "stopped: writing")
    assert "No space left on device" in summary["stopped_reason"]
    assert summary["faults"]["recording_error"] == 1
    on_disk = json.loads((disk / "s" / "summary.json").read_text())
    assert on_disk["stopped_reason"] == summary["stopped_reason"]
    assert summary["summary_written"] is True
    n, events = _check_whole(disk / "s", n_chans)
    rec = summary["recording"]
    assert n == rec["samples_recorded"] == on_disk["recording"]["samples_recorded"]
    assert 500 < n < 40000
    assert rec["samples_not_recorded"] == summary["samples_received"] - n >= 1
    data, _, _ = read_signal(disk / "s")
    np.testing.assert_array_equal(data[0], np.arange(n))  # exact, nothing torn or repeated
    assert [e["kind"] for e in events][-2:] == ["fault", "session_end"]
    assert events[-2]["fault"] == "recording_error"


@pytest.mark.parametrize("fail_in", ["signal.f32", "timestamps.f64", "events.jsonl"])
def test_write_failure_at_os_level_keeps_the_files_consistent(tmp_path, monkeypatch, fail_in):
    """A disk that fills up in the middle of a write (partial write, then ENOSPC)."""
    import errno
    import os
    import sys

    from bci.realtime import recording

    if not sys.platform.startswith("linux"):
        pytest.skip("names open files through /proc/self/fd (Linux)")
    state = {"n": 0, "partial": False}

    def full_disk_write(fd, data):
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name == fail_in:
            state["n"] += 1
            if state["n"] > 40:
                if not state["partial"]:
                    state["partial"] = True
                    return os.write(fd, bytes(data)[:len(data) // 2 + 1])
                raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    monkeypatch.setattr(recording, "_os_write", full_disk_write)
    stream = Stream(ArraySource(index_signal(5000), 100.0, chunk_size=10), threaded=False)
    rec = Recorder(tmp_path / "s", stream.ch_names, 100.0)
    loop = OnlineLoop(stream, window_s=0.5, step_s=0.1, recorder=rec, policy=EveryWindow(0),
                      safety=SafetyGate(min_interval_s=0.0, max_per_minute=None,
                                        max_per_session=None), catch_up=True)
    summary = loop.run()
    assert "No space left on device" in summary["stopped_reason"]
    what = "events.jsonl" if fail_in == "events.jsonl" else "signal.f32 and timestamps.f64"
    assert f"writing {what} failed" in summary["stopped_reason"]
    n, events = _check_whole(tmp_path / "s", 3)
    assert n == summary["recording"]["samples_recorded"]
    data, _, _ = read_signal(tmp_path / "s")
    np.testing.assert_array_equal(data[0], np.arange(n))
    if fail_in != "events.jsonl":
        assert n == 400  # 40 chunks of 10 written whole; the 41st cut back
    assert len(events) == loop.recorder.n_events
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["recording"]["error"]


def test_summary_that_cannot_be_written_says_why(small_disk, caplog):
    disk = small_disk(64)
    stream = Stream(ArraySource(index_signal(200000), 100.0, chunk_size=50), threaded=False)
    rec = Recorder(disk / "s", stream.ch_names, 100.0, reserve_bytes=0)  # nothing held back
    loop = OnlineLoop(stream, window_s=0.5, step_s=0.5, recorder=rec, catch_up=True)
    summary = loop.run()
    assert summary["summary_written"] is False
    assert summary["summary_error"].startswith(f"summary.json could not be written to "
                                               f"{disk / 's'} (No space left on device)")
    assert "summary.json could not be written" in caplog.text
    assert not (disk / "s" / "summary.json").exists()
    _check_whole(disk / "s", 3)


def test_an_unwritable_place_is_refused_before_any_work(tmp_path, small_disk):
    from bci.realtime.session import run_session

    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=r"Cannot write to the session folder .*a_file/"
                                                 r"s': Not a directory"):
        Recorder(tmp_path / "a_file" / "s", ["a"], 10.0)
    # checked before the decoder is even loaded (a missing file would raise otherwise)
    with pytest.raises(NotADirectoryError, match="Cannot write to the session folder"):
        run_session(ArraySource(np.zeros((1, 10)), 10.0), decoder=tmp_path / "missing.bci",
                    record_dir=tmp_path / "a_file" / "s", window_s=0.5, threaded=False)
    read_only = small_disk(64, read_only=True)
    with pytest.raises(OSError, match=r"Cannot write to the session folder .*Read-only file "
                                      r"system"):
        Recorder(read_only / "s", ["a"], 10.0)


@pytest.mark.parametrize("sfreq", [float("nan"), float("inf"), 0.0, -256.0])
def test_recorder_refuses_a_bad_rate(tmp_path, sfreq):
    with pytest.raises(ValueError, match=r"sfreq must be a finite number > 0 \(Hz\)"):
        Recorder(tmp_path / "r", ["a"], sfreq)
    assert not (tmp_path / "r").exists()


def test_annotations_stay_on_their_samples_after_lost_samples_and_a_clock_jump(tmp_path):
    """Decisions and stimuli annotate the sample they belong to, not their time minus t0."""
    from bci.realtime.events import StimRequest
    from bci.realtime.policies import Policy

    from ._helpers import paced_loop

    class FireAlways(Policy):
        def update(self, decision):
            return StimRequest(reason="always", t_trigger=decision.t_end)

    sfreq = 128.0
    rec = Recorder(tmp_path / "s", ["Ch1", "Ch2", "Ch3"], sfreq)  # ArraySource's names
    loop = paced_loop(sfreq, 16, 60, FireAlways(), recorder=rec,
                      jump={20: 2.0}, drop={30, 31, 32})  # +2 s clock jump, 48 samples lost
    stream = loop.stream
    assert stream.n_lost == 48
    raw = read_session(tmp_path / "s")
    idx = raw.get_data(picks=[0])[0]  # the original sample index of every recorded sample
    ann = raw.annotations
    onsets = {kind: [round(o * sfreq) for o, d in zip(ann.onset, ann.description, strict=True)
                     if d.startswith(kind + "/")] for kind in ("decision", "stim")}
    assert len(onsets["decision"]) == len(loop.decisions) > 20
    # each decision sits on its window's last sample: its original index is its timestamp on
    # the source's clock before the jump (the index channel says which samples were recorded)
    t0 = read_signal(tmp_path / "s")[1][0]
    truth = [round((d.t_end - stream.clock_offset(d.stop_index - 1) - t0) * sfreq)
             for d in loop.decisions]
    assert [int(idx[k]) for k in onsets["decision"]] == truth
    # stimuli fire in the step of their decision: on the newest sample of that step
    assert len(onsets["stim"]) == len(loop.stim_events) > 20
    assert all(idx[k] >= t for k, t in zip(onsets["stim"], truth, strict=False))
