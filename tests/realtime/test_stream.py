"""Stream: exact sample indices, fault detection (gaps, NaN, flat, clock jumps, loss), threads."""

from __future__ import annotations

import numpy as np
import pytest

from bci.realtime.sources import ArraySource
from bci.realtime.stream import Stream

from ._helpers import FakeClock, FaultySource, index_signal

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
    with pytest.raises(RuntimeError, match="did not come back within reconnect_s"):
        for _ in range(10):
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
    with pytest.raises(ValueError, match="buffer_s must be positive"):
        Stream(src, buffer_s=0)
    with pytest.raises(RuntimeError, match="Start the stream first"):
        Stream(src, threaded=False).pump()
    with pytest.raises(ValueError, match="data must be 2-D"):
        ArraySource(np.zeros(10), SFREQ)
