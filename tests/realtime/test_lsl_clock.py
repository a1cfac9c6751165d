"""Clock jumps next to real gaps over real loopback LSL: counts equal the truth.

A publisher thread (:class:`~._helpers.StepPublisher`) pushes an index channel at 256 Hz with
explicit timestamps: a forward clock jump (timestamps move, samples keep coming), a real gap of
the same size (samples produced but never sent: nothing arrives for that long) and a backward
jump. The consumer is the default :class:`~bci.realtime.lsl.LSLSource` (liblsl's clock
synchronisation, bci's dejitter) in a threaded :class:`~bci.realtime.stream.Stream` under an
:class:`~bci.realtime.loop.OnlineLoop`. Everything stays on 127.0.0.1.

Tolerances: counts (samples received, lost, gaps, events, their sample indices) are exact; a
jump's size is within 1 ms (LSL's clock-synchronisation offset on one machine changes by
microseconds; half a sample is 1.95 ms); latencies are those of the machine (a few ms, under
load tens), never the jump's size.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from bci.realtime.loop import OnlineLoop
from bci.realtime.stream import Stream

from ._helpers import StepPublisher

pytest.importorskip("pylsl")

SFREQ = 256.0
FIRST = 256  # 1 s before the first jump: the stream has measured latencies by then
SEGMENT = 128  # 0.5 s between steps


@pytest.mark.parametrize(("jump_s", "gap_s"), [(0.5, 0.5), (2.0, 2.0), (10.0, 0.0)])
def test_clock_jumps_next_to_a_real_gap_over_loopback_lsl(jump_s, gap_s):
    from bci.realtime.lsl import LSLSource

    n_gap = int(round(gap_s * SFREQ))
    i_jump = FIRST
    i_gap = i_jump + SEGMENT
    i_back = i_gap + n_gap + SEGMENT
    n_times = i_back + SEGMENT
    steps = [(i_jump, "jump", jump_s), (i_back, "jump", -jump_s)]
    if n_gap:
        steps.insert(1, (i_gap, "gap", gap_s))
    name = f"bci-test-clock-{jump_s:g}-{os.getpid()}"
    publisher = StepPublisher(name, SFREQ, n_times, steps).start()
    try:
        stream = Stream(LSLSource(name, timeout_s=5.0), threaded=True, buffer_s=30.0)
        loop = OnlineLoop(stream, window_s=0.25, step_s=0.1)

        def stop_when_all_arrived():
            publisher.join(30.0)
            deadline = time.monotonic() + 5.0
            while stream.n_written < publisher.n_pushed and time.monotonic() < deadline:
                stream.wait(stream.n_written, 0.1)
            loop.request_stop("all published samples arrived")

        watcher = threading.Thread(target=stop_when_all_arrived, daemon=True)
        watcher.start()
        summary = loop.run(duration_s=40.0)
        watcher.join(10.0)
        publisher.join(1.0)
        data, _ = stream.get_last(stream.n_written)
    finally:
        publisher.close()

    assert summary["stopped_reason"] == "all published samples arrived"
    np.testing.assert_array_equal(data[0], publisher.indices)  # none lost but the gap's
    assert summary["samples_received"] == publisher.n_pushed == n_times - n_gap
    assert summary["samples_lost"] == n_gap
    assert summary["gaps"] == (1 if n_gap else 0)
    events = [e for e in stream.events if e.kind != "stall"]  # a 2-s gap is also a stall
    assert [e.kind for e in events] == (["clock_jump", "gap", "clock_jump"] if n_gap
                                        else ["clock_jump", "clock_jump"])
    jump, back = events[0], events[-1]
    assert [jump.index, back.index] == [i_jump, i_back - n_gap]
    assert jump.detail["jump_s"] == pytest.approx(jump_s, abs=1e-3)
    assert back.detail["jump_s"] == pytest.approx(-jump_s, abs=1e-3)
    if n_gap:
        assert events[1].index == i_gap
        assert events[1].detail["n_lost"] == n_gap
    # latencies re-anchored after each jump: the machine's, not the jump's (+-jump_s)
    acquire = np.array(loop.latencies["acquire"])
    end_to_end = np.array(loop.latencies["end_to_end"])
    after = np.array([d.stop_index > jump.index for d in loop.decisions])
    assert after.sum() >= 5
    assert acquire.min() > -1.0  # ms: a sample never arrives before it is stamped
    assert np.median(acquire[after]) < 50.0
    assert np.median(end_to_end[after]) < 50.0
    assert summary["latency_ms"]["end_to_end"]["max"] < 1000 * jump_s / 2
