"""Stream: exact sample indices, fault detection (gaps, NaN, flat, clock jumps, loss), threads."""

from __future__ import annotations

import numpy as np
import pytest

from bci.realtime.events import StimRequest
from bci.realtime.policies import Policy
from bci.realtime.report import summarize
from bci.realtime.sources import ArraySource, Source, SourceInfo
from bci.realtime.stream import Stream

from ._helpers import FakeClock, FaultySource, index_signal, paced_loop

SFREQ = 100.0


def _drain(stream: Stream, n_pumps: int = 10_000) -> None:
    for _ in range(n_pumps):
        stream.pump()
        if stream.source.exhausted:
            break


def test_exact_index_no_gap_no_duplicate():
    data = index_signal(2345)
    received = []
    stream = Stream(ArraySource(data, SFREQ, chunk_size=17), threaded=False, buffer_s=5)
    stream.add_chunk_listener(lambda d, ts, first: received.append((first, d[0].copy())))
    with stream:
        _drain(stream)
        last, _ = stream.get_last(500)
    firsts = [f for f, _ in received]
    assert firsts == list(np.cumsum([0] + [len(c) for _, c in received[:-1]]))
    np.testing.assert_array_equal(np.concatenate([c for _, c in received]), np.arange(2345))
    np.testing.assert_array_equal(last[0], np.arange(1845, 2345))
    assert stream.n_written == 2345
    assert stream.n_lost == 0
    assert stream.n_gaps == 0
    assert stream.events == []


def test_dropped_chunks_are_counted_exactly():
    src = FaultySource(ArraySource(index_signal(1000), SFREQ, chunk_size=10), drop={5, 6, 20})
    stream = Stream(src, threaded=False)
    with stream:
        _drain(stream)
    assert stream.n_lost == 30
    assert stream.n_gaps == 2
    gaps = [e for e in stream.events if e.kind == "gap"]
    assert [e.detail["n_lost"] for e in gaps] == [20, 10]
    assert [e.index for e in gaps] == [50, 180]  # absolute index of the first sample after
    assert stream.get(50, 51)[0][0, 0] == 70  # the index channel proves what was lost


def test_nan_burst_and_flat_channel_reported():
    data = index_signal(600, n_chans=3)
    data[2, 200:400] = 1.5  # flat for 2 s
    src = FaultySource(ArraySource(data, SFREQ, chunk_size=20), nan={3})
    stream = Stream(src, threaded=False, flat_s=1.0)
    with stream:
        _drain(stream)
    kinds = [e.kind for e in stream.events]
    nan = [e for e in stream.events if e.kind == "nan"]
    assert len(nan) == 1
    assert nan[0].index == 60
    assert nan[0].detail["n_samples"] == 20
    assert nan[0].detail["channels"] == ["Ch1", "Ch2", "Ch3"]
    assert "flat" in kinds
    assert "flat_end" in kinds
    flat = next(e for e in stream.events if e.kind == "flat")
    assert flat.detail["channels"] == ["Ch3"]
    assert 300 <= flat.index <= 360
    assert stream.n_lost == 0


def test_clock_jump_is_not_counted_as_lost_samples():
    src = FaultySource(ArraySource(index_signal(400), SFREQ, chunk_size=10),
                       jump={10: 3600.0, 20: -7200.0})
    stream = Stream(src, threaded=False)
    with stream:
        _drain(stream)
    jumps = [e for e in stream.events if e.kind == "clock_jump"]
    assert [round(e.detail["step_s"]) for e in jumps] == [3600, -7200]
    assert stream.n_lost == 0
    assert stream.n_written == 400


class _FireAlways(Policy):
    """Ask for a stimulus at every decision (to measure the trigger -> stimulus latency)."""

    def update(self, decision):
        return StimRequest(reason="always", t_trigger=decision.t_end)


@pytest.mark.parametrize("size_s", [0.5, 2.0, 10.0])
def test_clock_jumps_and_real_gap_of_the_same_size_paced_replay(size_s):
    """Plain path, deterministic: +jump, real gap, -jump of the same size; exact counts.

    128 Hz, a fake clock advanced by 0.125 s per step (16 samples a pull, exact in binary;
    the first pull holds sample 0 alone). The jumps shift the timestamps while samples keep
    arriving; the gap drops the pulls of ``size_s`` seconds (nothing arrives for that long).
    Latencies (acquire, end to end, stimulus) are the fake clock minus the re-anchored
    timestamp of the window's last sample: 0 or one period, for every window.
    """
    sfreq, chunk = 128.0, 16
    n_gap_pulls = int(size_s * sfreq) // chunk
    jump_at, gap_at = 16, 32
    back_at = gap_at + n_gap_pulls + 16
    n_pulls = back_at + 24
    n_total = 1 + (n_pulls - 1) * chunk

    def first_of(pull: int) -> int:  # index of the first sample of a pull
        return 1 + (pull - 1) * chunk

    loop = paced_loop(sfreq, chunk, n_pulls, _FireAlways(),
                      jump={jump_at: size_s, back_at: -size_s},
                      drop=set(range(gap_at, gap_at + n_gap_pulls)))
    stream = loop.stream
    summary = summarize(loop)

    n_lost = n_gap_pulls * chunk
    assert [e.kind for e in stream.events] == ["clock_jump", "gap", "clock_jump"]
    jump, gap, back = stream.events
    assert [jump.index, gap.index, back.index] == [first_of(jump_at), first_of(gap_at),
                                                   first_of(back_at) - n_lost]
    assert jump.detail["jump_s"] == pytest.approx(size_s, abs=1e-9)
    assert back.detail["jump_s"] == pytest.approx(-size_s, abs=1e-9)
    assert jump.detail["latency_change_s"] == pytest.approx(-size_s, abs=1 / sfreq)
    assert gap.detail["n_lost"] == n_lost
    assert summary["samples_lost"] == stream.n_lost == n_lost
    assert summary["samples_received"] == n_total - n_lost
    assert summary["gaps"] == 1
    assert summary["faults"] == {"clock_jump": 2, "gap": 1}
    # the index channel proves what was lost: exactly the dropped pulls' samples
    data, _ = stream.get_last(stream.n_written)
    kept = np.r_[0:first_of(gap_at), first_of(gap_at + n_gap_pulls):n_total]
    np.testing.assert_array_equal(data[0], kept)
    # the latency reference is re-anchored after each jump
    assert stream.clock_offset(jump.index - 1) == 0.0
    assert stream.clock_offset(jump.index) == pytest.approx(size_s, abs=1e-9)
    assert stream.clock_offset() == pytest.approx(0.0, abs=1e-9)
    # a window ends on the newest sample or the one before: age 0 or 1 period, never less
    # than 0 (-size_s without re-anchoring) nor more than a period (+size_s)
    period_ms = 1e3 / sfreq
    assert len([d for d in loop.decisions if d.stop_index > jump.index]) > 30
    for values in (loop.latencies["acquire"], loop.latencies["end_to_end"],
                   loop.stim_latency_ms):
        assert len(values) == len(loop.decisions)
        assert 0.0 <= min(values) <= max(values) <= period_ms + 1e-6
    # windows follow the source's own clock across the jumps: one every 16 samples, none
    # gapped; only windows that hold the real gap are marked has_gap
    stops = np.array([d.stop_index for d in loop.decisions])
    around_jump = stops[(stops > jump.index - 64) & (stops < jump.index + 64)]
    assert np.all(np.diff(around_jump) == chunk)
    around_back = stops[(stops > back.index - 64) & (stops < back.index + 64)]
    assert np.all(np.diff(around_back) == chunk)
    n_window = int(0.25 * sfreq)
    gapped = [d for d in loop.decisions if d.has_gap]
    assert all(d.stop_index - n_window < gap.index < d.stop_index for d in gapped)


class _FireLater(Policy):
    """Ask for a stimulus 62.5 ms (8 samples at 128 Hz) after every window, in source time."""

    def update(self, decision):
        return StimRequest(reason="later", t_trigger=decision.t_end, at=decision.t_end + 0.0625)


@pytest.mark.parametrize("size_s", [2.0, -2.0])
def test_timed_stimuli_keep_their_delay_across_a_clock_jump(size_s):
    """A request timed in source time fires after its delay, before and after a clock jump."""
    loop = paced_loop(128.0, 8, 120, _FireLater(), jump={40: size_s})
    stream = loop.stream
    assert [e.kind for e in stream.events] == ["clock_jump"]
    # each stimulus leaves 62.5 ms after its window's last sample: on the first pull due,
    # i.e. 62.5 ms or one pull (62.5 ms) later at most, never early, never the jump late
    assert len(loop.stim_latency_ms) >= len(loop.decisions) - 2
    assert 62.5 - 1e-6 <= min(loop.stim_latency_ms)
    assert max(loop.stim_latency_ms) <= 125.0 + 1e-6


def test_many_steps_in_one_pull_are_matched_to_the_latency_change():
    """A backlog that holds a gap and a clock jump: the arrival clock says which is which."""
    sfreq = 100.0
    ts = np.arange(1000) / sfreq  # sample i produced at i / 100 s
    ts[600:] += 1.5  # the device clock jumps 1.5 s forward at sample 600
    data = index_signal(1000)
    clock = FakeClock(0.0)

    class Backlog(Source):
        """Samples 0-99 on time, then (after a stall) 100-999 but 300-369, lost in transit."""

        info = SourceInfo("backlog", ["idx", "a", "b"], sfreq)
        chunks = [np.r_[0:100], np.r_[100:300, 370:1000]]

        def now(self):
            return clock()

        def pull(self, max_samples=None):
            idx = self.chunks.pop(0) if self.chunks else np.r_[0:0]
            return data[:, idx], ts[idx]

    stream = Stream(Backlog(), threaded=False)
    with stream:
        clock.advance(0.99)  # sample 99 was just produced
        stream.pump()
        clock.advance(9.0)  # sample 999 was just produced
        stream.pump()
    assert [e.kind for e in stream.events] == ["gap", "clock_jump"]
    assert stream.n_lost == 70
    assert stream.events[0].index == 300
    assert stream.events[1].detail["jump_s"] == pytest.approx(1.5, abs=1e-9)
    assert stream.events[1].index == 530


@pytest.mark.parametrize("kind", ["clock_jump", "gap"])
def test_step_in_the_first_pull_is_judged_against_a_zero_latency(kind):
    """No latency measured yet: a sample arrives just after it is stamped (Source contract)."""
    produced = np.arange(300)  # samples 0-299, produced at i / 100 s; pulled at 2.99 s
    idx = produced if kind == "clock_jump" else np.r_[0:100, 250:300]
    ts = idx / 100.0 + (1.5 * (idx >= 100) if kind == "clock_jump" else 0.0)

    class FirstPull(Source):
        info = SourceInfo("first", ["idx"], 100.0)
        chunks = [idx]

        def now(self):
            return 2.99

        def pull(self, max_samples=None):
            i = self.chunks.pop(0) if self.chunks else np.r_[0:0]
            return i[np.newaxis].astype(float), ts[:i.size]

    stream = Stream(FirstPull(), threaded=False)
    with stream:
        stream.pump()
    assert [e.kind for e in stream.events] == [kind]
    assert stream.events[0].index == 100
    assert stream.n_lost == (150 if kind == "gap" else 0)


def test_unpaced_replay_of_steps_in_the_timestamps_counts_them_as_lost():
    """Without a clock, arrival follows the timestamps: a forward step is lost samples."""

    class StepReplay(ArraySource):
        def pull(self, max_samples=None):
            data, ts = super().pull(max_samples)
            return data, ts + 2.0 * (ts >= 1.0)

        def now(self):  # arrival on the replayed timestamps, as ArraySource without a clock
            return super().now() + 2.0 * (self.n_pulled > 100)

    stream = Stream(StepReplay(index_signal(400), SFREQ, chunk_size=10), threaded=False)
    with stream:
        _drain(stream)
    assert [e.kind for e in stream.events] == ["gap"]
    assert stream.n_lost == 200


def test_small_forward_step_is_always_lost_samples():
    clock = FakeClock()
    src = FaultySource(ArraySource(index_signal(400), SFREQ, clock=clock), jump={5: 0.05})
    stream = Stream(src, threaded=False, min_clock_jump_s=0.1)
    with stream:
        for _ in range(20):
            clock.advance(0.1)
            stream.pump()
    assert [e.kind for e in stream.events] == ["gap"]
    assert stream.n_lost == 5


def test_lost_source_reconnects_and_keeps_indices():
    src = FaultySource(ArraySource(index_signal(300), SFREQ, chunk_size=10), lose_at=7)
    stream = Stream(src, threaded=False, reconnect_s=1.0)
    with stream:
        _drain(stream)
        data, _ = stream.get_last(300)
    assert [e.kind for e in stream.events] == ["lost", "reconnected"]
    assert src.n_reconnects == 1
    np.testing.assert_array_equal(data[0], np.arange(300))  # nothing lost in this replay


def test_lost_for_good_stops_with_clear_message():
    src = FaultySource(ArraySource(index_signal(300), SFREQ, chunk_size=10), lose_at=3,
                       come_back=False)
    stream = Stream(src, threaded=False, reconnect_s=0.05)
    stream.start()
    for _ in range(3):
        stream.pump()
    with pytest.raises(RuntimeError, match="did not come back within reconnect_s"):
        stream.pump()
    assert stream.n_written == 30  # what arrived before the loss is kept
    stream.stop()


def test_worker_error_reraised_in_caller_thread():
    src = FaultySource(ArraySource(index_signal(300), SFREQ, chunk_size=10,
                                   clock=FakeClock()), raise_at=0)
    stream = Stream(src, threaded=True)
    stream.start()
    stream._thread.join(2.0)
    with pytest.raises(RuntimeError, match="driver crashed"):
        stream.check()
    assert [e.kind for e in stream.events] == ["stopped"]
    stream.stop()


def test_threaded_acquisition_with_fake_clock():
    clock = FakeClock()
    stream = Stream(ArraySource(index_signal(1000), SFREQ, clock=clock), threaded=True)
    with stream:
        with pytest.raises(RuntimeError, match="pump\\(\\) is for threaded=False"):
            stream.pump()
        assert stream.wait(0, 2.0)  # the first sample is due at once
        clock.advance(2.0)
        n = 0
        for _ in range(200):
            stream.wait(n, 0.05)
            n = stream.n_written
            if n >= 201:
                break
        data, _ = stream.get_last(stream.n_written)
    assert stream.n_written == 201  # samples 0..200 are due at t = 2.0 s
    np.testing.assert_array_equal(data[0], np.arange(201))


def test_bad_arguments():
    src = ArraySource(np.zeros((2, 10)), SFREQ)
    with pytest.raises(TypeError, match="source must be a bci.realtime.sources.Source"):
        Stream(np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"min_clock_jump_s must be a finite number >= 0 "
                                         r"\(s\), got nan"):
        Stream(src, min_clock_jump_s=float("nan"))
    with pytest.raises(ValueError, match=r"gap_tolerance must be a finite number > 1"):
        Stream(src, gap_tolerance=1.0)
    with pytest.raises(ValueError, match=r"buffer_s must be a finite number > 0 \(s\), got 0.0"):
        Stream(src, buffer_s=0)
    with pytest.raises(RuntimeError, match="Start the stream first"):
        Stream(src, threaded=False).pump()
    with pytest.raises(ValueError, match="data must be 2-D"):
        ArraySource(np.zeros(10), SFREQ)
