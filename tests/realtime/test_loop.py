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
    for d, w in zip(loop.decisions, seen, strict=True):
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
    assert safety.allow(0.0)
    assert safety.allow(0.1)
    (tmp_path / "STOP").touch()
    verdicts = [safety.allow(t) for t in (0.2, 10.0)]
    assert [(bool(v), v.reason) for v in verdicts] == [(False, "manual_stop")] * 2
    assert safety.suppressed["manual_stop"] == 2
    assert len(safety.fired) == 2


def test_threshold_policy_hysteresis_and_refractory():
    from bci.realtime.events import Decision

    pol = ThresholdPolicy("b", on=0.8, off=0.5, refractory_s=1.0)
    pol.bind(classes=["a", "b"], ch_names=["x"], sfreq=100.0)
    ps = [0.9, 0.95, 0.6, 0.9, 0.4, 0.9, 0.3, 0.2, 0.85]
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.5, 1.6]
    fired = [pol.update(Decision(i, t - 1, t, 0, proba=np.array([1 - p, p]))) is not None
             for i, (p, t) in enumerate(zip(ps, times, strict=True))]
    # 0.0 fires; stays disarmed until <= 0.5 (t=0.4); 0.5 is refractory; 1.6 fires again
    assert fired == [True, False, False, False, False, False, False, False, True]
    with pytest.raises(ValueError, match="Need 0 <= off <= on <= 1"):
        ThresholdPolicy("b", on=0.5, off=0.8)
    with pytest.raises(ValueError, match=r"target class 'c' is not one of the decoder classes "
                                         r"\['a', 'b'\]"):
        ThresholdPolicy("c").bind(classes=["a", "b"], ch_names=["x"], sfreq=100.0)


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


def test_clock_jump_inside_a_chunk_keeps_the_window_cadence():
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
    # no sample was lost: windows go on every 10 samples across the jump (no restart, no
    # flood of catch-up windows), and none is taken for a window with a gap
    assert ends.tolist() == list(range(49, 1000, 10))
    assert not any(d.has_gap for d in loop.decisions)
    assert summary["faults"]["clock_jump"] == 1
    assert summary["samples_lost"] == 0
    assert len(set(ends)) == len(ends)


# ---------------------------------------------------------------------- safety limits
BAD = [float("nan"), float("inf"), float("-inf"), -1.0, -0.5]


def test_safety_verdict_reads_as_it_runs():
    gate = SafetyGate(min_interval_s=1.0, max_per_minute=None, max_per_session=2)
    first = gate.allow(0.0)
    assert first
    assert first.allowed
    assert first.reason is None
    too_soon = gate.allow(0.1)  # markers 0.1 s apart with a 1-s limit: refused
    assert not too_soon
    assert too_soon.reason == "min_interval"
    assert gate.allow(1.0)
    assert gate.allow(5.0).reason == "max_per_session"
    assert gate.check(6.0).reason == "max_per_session"  # check records nothing
    assert gate.fired == [0.0, 1.0]
    assert dict(gate.suppressed) == {"min_interval": 1, "max_per_session": 1}


@pytest.mark.parametrize("value", BAD)
def test_safety_gate_refuses_nan_inf_and_negative_interval(value):
    # before: min_interval_s=nan was accepted and never tripped
    with pytest.raises(ValueError, match=rf"min_interval_s must be a finite number >= 0 \(s\), "
                                         rf"got {value}"):
        SafetyGate(min_interval_s=value)


@pytest.mark.parametrize("param", ["max_per_minute", "max_per_session"])
def test_safety_gate_counts_are_ints_or_none(param):
    with pytest.raises(ValueError, match=rf"{param} must be an int >= 0 \(stimuli; None for no "
                                         r"limit\), got -1"):
        SafetyGate(**{param: -1})
    for bad in (float("nan"), float("inf"), 2.5):
        with pytest.raises(TypeError, match=rf"{param} must be an int"):
            SafetyGate(**{param: bad})
    assert getattr(SafetyGate(**{param: None}), param) is None
    assert getattr(SafetyGate(**{param: 0}), param) == 0


def test_safety_gate_refuses_a_nan_time():
    gate = SafetyGate()
    with pytest.raises(ValueError, match=r"t must be a finite number \(s\), got nan"):
        gate.allow(float("nan"))
    assert gate.fired == []


# ---------------------------------------------------------------------- loop parameters
@pytest.mark.parametrize("value", [*BAD, 0.0])
@pytest.mark.parametrize("param", ["step_s", "window_s", "decode_timeout_s"])
def test_loop_refuses_nan_inf_zero_and_negative_durations(param, value):
    kwargs = {"window_s": 0.5, param: value}
    with pytest.raises(ValueError, match=rf"{param} must be a finite number > 0 \(s\), "
                                         rf"got {value}"):
        OnlineLoop(_stream(np.zeros((2, 100))), **kwargs)


@pytest.mark.parametrize("value", [*BAD, 0.0])
def test_run_refuses_nan_inf_zero_and_negative_duration(value):
    # before: duration 0 or negative ran one decision and reported success
    loop = OnlineLoop(_stream(np.zeros((2, 1000))), window_s=0.5)
    with pytest.raises(ValueError, match=rf"duration_s must be a finite number > 0 \(s\), "
                                         rf"got {value}"):
        loop.run(value)
    assert loop.decisions == []
    assert not loop.stream.running


def test_loop_refuses_bad_counts_and_options():
    stream = _stream(np.zeros((2, 100)))
    with pytest.raises(ValueError, match=r"max_faults must be an int >= 1"):
        OnlineLoop(stream, window_s=0.5, max_faults=0)
    with pytest.raises(ValueError, match=r"Unknown on_fault 'ignore'.*Available: continue, stop"):
        OnlineLoop(stream, window_s=0.5, on_fault="ignore")
    with pytest.raises(TypeError, match=r"policy must be Policy or None, got str"):
        OnlineLoop(stream, window_s=0.5, policy="threshold:target=a")
    with pytest.raises(ValueError, match=r"max_decisions must be an int >= 1"):
        OnlineLoop(stream, window_s=0.5).run(max_decisions=0)


# ---------------------------------------------------------------------- plug-in faults
class BrokenPolicy(Policy):
    """Raise at the ``fail_at``-th decision (0-based), like a policy bug mid-session."""

    def __init__(self, fail_at=3, every=False):
        self.fail_at, self.every, self.n = fail_at, every, 0

    def update(self, decision):
        self.n += 1
        if self.n - 1 == self.fail_at or (self.every and self.n - 1 > self.fail_at):
            raise IndexError("index 13 is out of bounds for axis 0 with size 4")
        return StimRequest(reason="ok", t_trigger=decision.t_end)


class BrokenStimulator(RecordingStimulator):
    name = "broken"

    def __init__(self, fail_at=1):
        super().__init__()
        self.fail_at, self.n = fail_at, 0

    def trigger(self, event):
        self.n += 1
        if self.n - 1 >= self.fail_at:
            raise OSError("trigger box unplugged")
        super().trigger(event)


def _faulty_session(tmp_path, **kw):
    from bci.realtime.recording import Recorder, read_events

    stream = _stream(index_signal(3000), chunk=10)
    rec = Recorder(tmp_path / "s", stream.ch_names, 100.0)
    dec = ConstantDecoder(["Ch1", "Ch2", "Ch3"], 100.0, 50)
    loop = OnlineLoop(stream, dec, step_s=0.1, recorder=rec, catch_up=True,
                      safety=SafetyGate(min_interval_s=0.0, max_per_minute=None,
                                        max_per_session=None), **kw)
    summary = loop.run()
    return loop, summary, read_events(tmp_path / "s")


def test_policy_error_stops_the_session_cleanly_with_its_summary(tmp_path):
    import json

    loop, summary, events = _faulty_session(tmp_path, policy=BrokenPolicy(fail_at=3))
    on_disk = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert on_disk["decisions"] == summary["decisions"] == 4  # the 4th decision's policy raised
    assert on_disk["faults"] == {"policy_error": 1}
    assert on_disk["stopped_reason"].startswith("policy_error: IndexError: index 13 is out")
    assert "on_fault='stop'" in on_disk["stopped_reason"]
    assert summary["summary_written"] is True
    kinds = [e["kind"] for e in events]
    assert kinds.count("decision") == 4
    assert kinds.count("stim") == 3
    assert kinds[-1] == "session_end"
    (fault,) = [e for e in events if e["kind"] == "fault"]
    assert fault["fault"] == "policy_error"
    assert "IndexError" in fault["description"]


def test_policy_error_with_on_fault_continue_goes_on_until_max_faults(tmp_path):
    loop, summary, events = _faulty_session(tmp_path, policy=BrokenPolicy(fail_at=10),
                                            on_fault="continue")
    assert summary["faults"]["policy_error"] == 1  # one error: recorded, the session goes on
    assert summary["stopped_reason"] == "end of the replayed source"
    assert summary["decisions"] == 296
    assert summary["stimuli_fired"] == 295
    # an error at every decision: stopped after max_faults (5) consecutive ones
    loop, summary, events = _faulty_session(tmp_path / "b", policy=BrokenPolicy(
        fail_at=10, every=True), on_fault="continue")
    assert summary["faults"]["policy_error"] == 5
    assert summary["decisions"] == 15
    assert summary["stopped_reason"].startswith("5 consecutive faults (last: policy_error")


def test_stimulator_error_is_a_recorded_fault(tmp_path):
    stim = BrokenStimulator(fail_at=2)
    loop, summary, events = _faulty_session(tmp_path, policy=AlwaysFire(), stimulator=stim)
    assert len(stim.events) == summary["stimuli_fired"] == 2
    assert summary["faults"] == {"stimulator_error": 1}
    assert summary["stopped_reason"].startswith("stimulator_error: OSError: trigger box "
                                                "unplugged")
    assert summary["stimulator"]["delivery_unknown"] == 2
    assert summary["markers_sent_with_consumer"] is None  # a serial-like device cannot know
    stim = BrokenStimulator(fail_at=2)
    loop, summary, events = _faulty_session(tmp_path / "b", policy=AlwaysFire(),
                                            stimulator=stim, on_fault="continue")
    assert summary["faults"] == {"stimulator_error": 5}
    assert summary["stimuli_fired"] == 2


def test_stimulator_that_cannot_open_ends_the_session_with_a_summary(tmp_path):
    class Unopenable(RecordingStimulator):
        def open(self):
            raise RuntimeError("no such device")

    loop, summary, events = _faulty_session(tmp_path, policy=AlwaysFire(),
                                            stimulator=Unopenable())
    assert summary["decisions"] == 0
    assert summary["stopped_reason"] == ("the stimulator 'dry-run' could not be opened: "
                                         "RuntimeError: no such device")
    assert (tmp_path / "s" / "summary.json").is_file()


def test_unexpected_error_still_writes_the_summary_then_raises(tmp_path):
    import json

    from bci.realtime.processing import FunctionProcessor, ProcessingChain

    calls = []

    def explode(x):
        calls.append(x.shape[1])
        if len(calls) == 20:
            raise ZeroDivisionError("a bug")
        return x

    from bci.realtime.recording import Recorder

    stream = _stream(index_signal(1000), chunk=10)
    rec = Recorder(tmp_path / "s", stream.ch_names, 100.0)
    loop = OnlineLoop(stream, window_s=0.5, step_s=0.1, recorder=rec, catch_up=True,
                      processing=ProcessingChain([FunctionProcessor(explode)]))
    with pytest.raises(ZeroDivisionError, match="a bug"):
        loop.run()
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["stopped_reason"] == "error: ZeroDivisionError: a bug"
    assert summary["samples_received"] == 200
    assert summary["recording"]["samples_recorded"] == 200
