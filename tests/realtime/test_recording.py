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
    for a, onset in zip(stims, np.arange(3.0, 24.0, 5.0)):
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
