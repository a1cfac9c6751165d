"""Offline replays: the loop over a recorded signal, a trigger over recorded scores.

Also a recorded session's stimuli put back on the replayed signal's clock.
"""

from __future__ import annotations

import numpy as np
import pytest

from bci.realtime.loop import OnlineLoop
from bci.realtime.policies import OscillationTrigger
from bci.realtime.processing import CausalFilter, ProcessingChain
from bci.realtime.recording import Recorder, read_stimuli
from bci.realtime.safety import SafetyGate
from bci.realtime.session import replay_offline, run_session
from bci.realtime.sources import ArraySource
from bci.realtime.stream import Stream


def _spindly(n_times: int = 12000, sfreq: float = 200.0, seed: int = 0) -> np.ndarray:
    """Noise with 13-Hz bursts of several lengths, one channel (V)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) / sfreq
    x = rng.standard_normal(n_times) * 1e-6
    for k, onset in enumerate(np.arange(4.0, t[-1] - 3, 4.5)):
        width = 0.15 + 0.1 * (k % 4)
        x += 8e-6 * np.exp(-0.5 * ((t - onset) / width) ** 2) * np.sin(2 * np.pi * 13 * t)
    return x[np.newaxis]


def _trigger(threshold: float = np.inf, min_duration_s: float = 0.0) -> OscillationTrigger:
    return OscillationTrigger("EEG", freq=13.5, threshold=threshold, rms_s=0.25,
                              min_duration_s=min_duration_s, refractory_s=1.0, baseline_s=30.0)


def test_replay_offline_is_the_online_loop_over_an_array_source():
    x = _spindly()
    decisions, summary = replay_offline(
        x, 200.0, ["EEG"], window_s=0.5, step_s=0.05, buffer_s=5.0, chunk_size=40,
        processing=ProcessingChain([CausalFilter(200.0, 11.0, 16.0, order=3)]),
        policy=_trigger())
    loop = OnlineLoop(Stream(ArraySource(x, 200.0, ["EEG"], chunk_size=40), threaded=False,
                             buffer_s=5.0), window_s=0.5, step_s=0.05,
                      processing=ProcessingChain([CausalFilter(200.0, 11.0, 16.0, order=3)]),
                      policy=_trigger(), catch_up=True)
    loop.run()
    # every window decided (catch_up): 100 samples ending every 10 samples, stamped with
    # their last sample (sample 99 at 0.495 s, ..., sample 11999 at 59.995 s)
    assert len(decisions) == summary["decisions"] == 1191
    np.testing.assert_allclose([d.t_end for d in decisions], 0.495 + 0.05 * np.arange(1191),
                               atol=1e-9)
    assert [d.score for d in decisions] == [d.score for d in loop.decisions]
    assert summary["stimuli_fired"] == 0  # threshold inf: scores only
    with pytest.raises(ValueError, match="chunk_size"):
        replay_offline(x, 200.0, window_s=0.5, chunk_size=0)


@pytest.mark.parametrize(("threshold", "min_duration_s"), [(1.5, 0.0), (2.0, 0.1), (3.0, 0.3)])
def test_trigger_replay_equals_visiting_every_window(threshold, min_duration_s):
    decisions, _ = replay_offline(
        _spindly(), 200.0, ["EEG"], window_s=0.5, step_s=0.05, buffer_s=5.0,
        processing=ProcessingChain([CausalFilter(200.0, 11.0, 16.0, order=3)]),
        policy=_trigger())
    t = np.array([d.t_end for d in decisions])
    score = np.array([d.score for d in decisions])
    gate = SafetyGate(min_interval_s=2.0, max_per_minute=None, max_per_session=None)
    fast = _trigger(threshold, min_duration_s).replay(t, score, safety=gate)
    # reference: the state machine on every window, then the gate
    slow_trigger = _trigger(threshold, min_duration_s)
    slow_gate = SafetyGate(min_interval_s=2.0, max_per_minute=None, max_per_session=None)
    slow = [ti for ti, si in zip(t, score, strict=True)
            if slow_trigger.decide(float(si), float(ti)) is not None and slow_gate.allow(ti)]
    np.testing.assert_array_equal(fast, slow)
    assert len(fast) > 0
    assert gate.n_suppressed == slow_gate.n_suppressed
    # without a gate, only the trigger's 1-s refractory period separates stimuli
    free = _trigger(threshold, min_duration_s).replay(t, score)
    assert len(free) >= len(fast)
    assert np.all(np.diff(free) >= 1.0)


def test_trigger_replay_resets_and_checks_its_input():
    trigger = _trigger(2.0, 0.0)
    t, score = np.arange(5) * 1.5, np.array([3.0, 0.0, 3.0, 3.0, 0.0])
    assert trigger.replay(t, score).tolist() == [0.0, 3.0]
    assert trigger.replay(t, score).tolist() == [0.0, 3.0]  # a fresh state each time
    assert trigger.replay([], []).tolist() == []
    with pytest.raises(ValueError, match="one value per window"):
        trigger.replay(t, score[:3])
    with pytest.raises(TypeError, match="safety must be"):
        trigger.replay(t, score, safety="gate")


def test_run_session_catch_up_decides_on_every_window():
    x = _spindly(n_times=2000)  # 10 s; pulled 1 s at a time: 20 windows of 0.05 s due
    kwargs = dict(policy=_trigger(), window_s=0.5, step_s=0.05, threaded=False,
                  buffer_s=5.0)
    late = run_session(ArraySource(x, 200.0, ["EEG"], chunk_size=200), **kwargs)
    every = run_session(ArraySource(x, 200.0, ["EEG"], chunk_size=200), catch_up=True,
                        **kwargs)
    assert every["decisions"] == 191  # window ends 0.5 .. 10.0 s
    assert late["decisions"] < every["decisions"]


def test_read_stimuli_on_the_replayed_clock(tmp_path):
    sfreq, t0 = 100.0, 1234.5  # the session clock of the file's sample 0
    rng = np.random.default_rng(0)
    index = np.arange(250, 1250)  # the session saw samples 250 .. 1249 of the file
    stamps = t0 + index / sfreq + rng.normal(0, 1e-4, index.size)  # jittered timestamps
    with Recorder(tmp_path / "s", ["EEG", "idx"], sfreq) as rec:
        rec.write_chunk(np.vstack([np.zeros(index.size), index]), stamps)
        rec.write_event("stim", t0 + 5.012, t_trigger=t0 + 5.0, code=2)
        rec.write_event("decision", t0 + 6.0)
        rec.write_event("stim", t0 + 9.011, t_trigger=t0 + 9.0, code=2)
    stims = read_stimuli(tmp_path / "s", index_channel="idx")
    assert stims.clock_offset_s == pytest.approx(t0, abs=1e-4)
    np.testing.assert_allclose(stims.t_trigger, [5.0, 9.0], atol=1e-4)
    np.testing.assert_allclose(stims.t_fired, [5.012, 9.011], atol=1e-4)
    assert stims.span_s == (2.5, 12.49)
    raw_clock = read_stimuli(tmp_path / "s")
    assert raw_clock.clock_offset_s == 0.0
    np.testing.assert_array_equal(raw_clock.t_trigger, [t0 + 5.0, t0 + 9.0])
    assert raw_clock.span_s == (stamps[0], stamps[-1])
    with pytest.raises(ValueError, match=r"index_channel='index' is not a channel"):
        read_stimuli(tmp_path / "s", index_channel="index")
