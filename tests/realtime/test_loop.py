"""Online loop: decoder checks, window timing, decoding a planted effect, faults, safety."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bci.realtime.events import StimRequest
from bci.realtime.loop import OnlineLoop
from bci.realtime.policies import Policy, ThresholdPolicy
from bci.realtime.safety import SafetyGate
from bci.realtime.sources import ArraySource, raw_source
from bci.realtime.stimulation import RecordingStimulator
from bci.realtime.stream import Stream

from ._helpers import FaultySource, index_signal

STAGES = {"acquire", "process", "decode", "act", "end_to_end"}


class AlwaysFire(Policy):
    """Request a stimulus at every decision (to load the safety limits)."""

    def update(self, decision):
        return StimRequest(reason="always", t_trigger=decision.t_end)


class ConstantDecoder:
    """A minimal decoder-like object; ``fail`` makes it raise, ``block`` makes it hang."""

    def __init__(self, ch_names, sfreq, n_times, fail=False, block=None):
        self.ch_names, self.sfreq, self.n_times = list(ch_names), sfreq, n_times
        self.tmin, self.tmax = 0.0, (n_times - 1) / sfreq
        self.classes = ["a", "b"]
        self.fail, self.block = fail, block
        self.n_calls = 0

    def predict_proba(self, X):
        self.n_calls += 1
        if self.fail:
            raise ValueError("broken weights")
        if self.block is not None:
            self.block.wait(5.0)
        return np.array([[0.3, 0.7]])


def _stream(data, sfreq=100.0, chunk=10, **kw):
    return Stream(ArraySource(data, sfreq, chunk_size=chunk), threaded=False, **kw)


def test_windows_follow_source_timestamps_exactly():
    data = index_signal(1000)
    loop = OnlineLoop(_stream(data, chunk=7), window_s=0.5, step_s=0.2, catch_up=True)
    seen = []
    orig = loop._decide

    def spy(end):
        window, _ = loop._processed.get(end + 1 - loop.n_window, end + 1)
        seen.append(window[0].copy())
        return orig(end)

    loop._decide = spy
    summary = loop.run()
    ends = np.array([d.t_end for d in loop.decisions])
    np.testing.assert_allclose(ends, 0.49 + 0.2 * np.arange(len(ends)), atol=1e-9)
    assert len(ends) == 48
    assert summary["decisions"] == 48
    for d, w in zip(loop.decisions, seen):
        assert d.t_start == pytest.approx(d.t_end - 0.49)
        np.testing.assert_array_equal(w, np.arange(d.stop_index - 50, d.stop_index))
    assert set(summary["latency_ms"]) >= STAGES


def test_decoder_on_replayed_recording_finds_the_planted_effect(mi_decoder, mi_recording):
    loop = OnlineLoop(Stream(raw_source(mi_recording, chunk_size=16), threaded=False),
                      mi_decoder, step_s=1.0, catch_up=True)
    summary = loop.run()
    assert loop.n_window == mi_decoder.n_times == 257
    onsets, labels = mi_recording.annotations.onset, mi_recording.annotations.description
    hits = []
    for d in loop.decisions:
        k = np.searchsorted(onsets, d.t_start, side="right") - 1
        if k >= 0 and d.t_start >= onsets[k] + 0.25 and d.t_end <= onsets[k] + 4.0:
            hits.append(d.label == labels[k])
            assert d.proba.shape == (2,)
            assert d.proba.sum() == pytest.approx(1.0)
    assert len(hits) >= 20
    assert np.mean(hits) >= 0.8
    assert summary["latency_ms"]["decode"]["p50"] > 0


def test_decoder_checked_against_stream(mi_decoder, mi_recording):
    raw = mi_recording.copy().pick(mi_decoder.ch_names[:-2])
    with pytest.raises(ValueError, match=r"lacks 2 of the decoder's 8 channels: \['CP3', 'CP4'\]"):
        OnlineLoop(Stream(raw_source(raw), threaded=False), mi_decoder)
    fast = mi_recording.copy().resample(256.0)
    with pytest.raises(ValueError, match="trained at 128 Hz but the stream runs at 256 Hz"):
        OnlineLoop(Stream(raw_source(fast), threaded=False), mi_decoder)
    with pytest.raises(ValueError, match="the decoder takes 257"):
        OnlineLoop(Stream(raw_source(mi_recording), threaded=False), mi_decoder, window_s=1.0)
    with pytest.raises(TypeError, match="lacks 'ch_names'; load one with bci.load_decoder"):
        OnlineLoop(Stream(raw_source(mi_recording), threaded=False), object())
    with pytest.raises(ValueError, match="window_s must be positive"):
        OnlineLoop(Stream(raw_source(mi_recording), threaded=False))


def test_decoder_that_raises_stops_cleanly():
    data = index_signal(2000)
    dec = ConstantDecoder(["Ch1", "Ch2", "Ch3"], 100.0, 50, fail=True)
    loop = OnlineLoop(_stream(data), dec, step_s=0.1, max_faults=4, catch_up=True)
    summary = loop.run()
    assert dec.n_calls == 4
    assert summary["decisions"] == 0
    assert summary["faults"]["decoder_error"] == 4
    assert "4 consecutive decoder faults" in summary["stopped_reason"]
    assert "broken weights" in summary["stopped_reason"]


def test_hanging_decoder_costs_decisions_not_the_session():
    release = threading.Event()
    dec = ConstantDecoder(["Ch1", "Ch2", "Ch3"], 100.0, 50, block=release)
    loop = OnlineLoop(_stream(index_signal(600)), dec, step_s=0.1, decode_timeout_s=0.05,
                      max_faults=100, catch_up=True)
    summary = loop.run()
    release.set()
    # 56 windows: the first hangs (timeout), the 55 next find the decoder still busy
    assert summary["faults"]["decoder_timeout"] == 1
    assert summary["faults"]["decoder_busy"] == 55
    assert summary["decisions"] == 0
    assert dec.n_calls == 1
    assert summary["stopped_reason"] == "end of the replayed source"
    assert summary["samples_received"] == 600


def test_safety_limits_hold_against_an_always_firing_policy():
    n = 100 * 300  # 5 minutes at 100 Hz
    stim = RecordingStimulator()
    safety = SafetyGate(min_interval_s=2.0, max_per_minute=12, max_per_session=40)
    loop = OnlineLoop(_stream(np.zeros((2, n)), chunk=50), window_s=0.5, step_s=0.5,
                      policy=AlwaysFire(), safety=safety, stimulator=stim, catch_up=True)
    summary = loop.run()
    fired = np.array(safety.fired)  # the times the gate judged (source clock)
    assert summary["stimuli_fired"] == len(stim.events) == len(fired) == 40
    assert np.diff(fired).min() >= 2.0 - 1e-9
    for t in fired:
        assert ((fired > t - 60.0) & (fired <= t)).sum() <= 12
    assert summary["decisions"] == 600
    assert summary["stimuli_suppressed"] == 600 - 40
    assert set(summary["suppressed_by_reason"]) == {"min_interval", "max_per_minute",
                                                   "max_per_session"}


def test_manual_stop_blocks_every_later_stimulus(tmp_path):
    safety = SafetyGate(min_interval_s=0.0, max_per_minute=None, max_per_session=None,
                        stop_file=tmp_path / "STOP")
    assert safety.allow(0.0) is None
    assert safety.allow(0.1) is None
    (tmp_path / "STOP").touch()
    assert [safety.allow(t) for t in (0.2, 10.0)] == ["manual_stop", "manual_stop"]
    assert safety.suppressed["manual_stop"] == 2
    assert len(safety.fired) == 2


def test_threshold_policy_hysteresis_and_refractory():
    from bci.realtime.events import Decision

    pol = ThresholdPolicy("b", on=0.8, off=0.5, refractory_s=1.0)
    pol.bind(classes=["a", "b"], ch_names=["x"], sfreq=100.0)
    ps = [0.9, 0.95, 0.6, 0.9, 0.4, 0.9, 0.3, 0.2, 0.85]
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.5, 1.6]
    fired = [pol.update(Decision(i, t - 1, t, 0, proba=np.array([1 - p, p]))) is not None
             for i, (p, t) in enumerate(zip(ps, times))]
    # 0.0 fires; stays disarmed until <= 0.5 (t=0.4); 0.5 is refractory; 1.6 fires again
    assert fired == [True, False, False, False, False, False, False, False, True]
    with pytest.raises(ValueError, match="Need 0 <= off <= on <= 1"):
        ThresholdPolicy("b", on=0.5, off=0.8)
    bad = ThresholdPolicy("c")
    bad.bind(classes=["a", "b"], ch_names=["x"], sfreq=100.0)
    with pytest.raises(ValueError, match="Target class 'c' is not among"):
        bad.update(Decision(0, 0, 1, 0, proba=np.array([0.5, 0.5])))


def test_faulty_stream_session_survives_and_reports(tmp_path):
    from bci.realtime.recording import Recorder, read_signal

    src = FaultySource(ArraySource(index_signal(3000), 100.0, chunk_size=10),
                       drop={30, 31}, nan={100}, lose_at=150)
    stream = Stream(src, threaded=False, reconnect_s=1.0)
    rec = Recorder(tmp_path / "s", stream.ch_names, 100.0)
    dec = ConstantDecoder(["Ch1", "Ch2", "Ch3"], 100.0, 50)
    loop = OnlineLoop(stream, dec, step_s=0.1, recorder=rec, policy=AlwaysFire(),
                      safety=SafetyGate(min_interval_s=1.0, max_per_minute=None), catch_up=True)
    summary = loop.run()
    assert summary["samples_lost"] == 20
    assert summary["gaps"] == 1
    assert summary["faults"]["lost"] == 1
    assert summary["faults"]["reconnected"] == 1
    assert summary["faults"]["nan"] == 1
    assert summary["faults"]["nan_window"] >= 1
    data, ts, _ = read_signal(tmp_path / "s")
    assert data.shape[1] == summary["samples_received"] == 2980
    np.testing.assert_array_equal(data[0][:300], np.arange(300))
    np.testing.assert_array_equal(data[0][300:400], np.arange(320, 420))
    assert np.diff(loop.safety.fired).min() >= 1.0 - 1e-9
    assert summary["stimuli_fired"] + summary["stimuli_suppressed"] == summary["decisions"]


def test_threaded_loop_with_real_time_pacing():
    data = index_signal(200, seed=1)
    src = ArraySource(data, 200.0, clock=time.perf_counter)
    loop = OnlineLoop(Stream(src, threaded=True), window_s=0.2, step_s=0.1)
    summary = loop.run(duration_s=0.9)
    assert summary["stopped_reason"] == "duration reached"
    assert 5 <= summary["decisions"] <= 8
    lat = summary["latency_ms"]
    assert 0 <= lat["end_to_end"]["p50"] < 100
    assert lat["acquire"]["max"] < 100


def test_clock_jump_inside_a_chunk_restarts_windows_without_a_flood():
    data = index_signal(1000)
    ts = np.arange(1000) / 100.0
    ts[505:] += 3600.0  # the clock jumps an hour forward mid-chunk

    class JumpSource(ArraySource):
        def pull(self, max_samples=None):
            start = self.n_pulled
            chunk, _ = super().pull(max_samples)
            return chunk, ts[start:start + chunk.shape[1]]

    stream = Stream(JumpSource(data, 100.0, chunk_size=10), threaded=False)
    loop = OnlineLoop(stream, window_s=0.5, step_s=0.1, catch_up=True)
    summary = loop.run()
    ends = np.array([d.stop_index - 1 for d in loop.decisions])
    # before: ends 49, 59, ..., 499; after: the first full window after the jump ends at 554
    assert ends[ends < 505].tolist() == list(range(49, 505, 10))
    assert ends[ends >= 505].tolist() == list(range(554, 1000, 10))
    assert summary["faults"]["clock_jump"] == 1
    assert summary["samples_lost"] == 0
    assert len(set(ends)) == len(ends)
