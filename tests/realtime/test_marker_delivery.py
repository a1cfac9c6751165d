"""LSL marker stimulation over loopback: every marker fired reaches a consumer connected before.

Before: the stimulator's outlet was destroyed as soon as the session ended, so the markers still
in transit were lost (measured: 20 markers pushed 10 ms before the outlet went: 0 received),
and the summary counted them as fired, with no word of whether anyone listened.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from bci.realtime.events import StimEvent, StimRequest
from bci.realtime.loop import OnlineLoop
from bci.realtime.policies import Policy
from bci.realtime.safety import SafetyGate
from bci.realtime.sources import ArraySource
from bci.realtime.stream import Stream

from ._helpers import index_signal

pytest.importorskip("pylsl")


def _name(tag: str) -> str:
    return f"bci-test-{tag}-{os.getpid()}-{time.monotonic_ns() % 10**6}"


class AlwaysFire(Policy):
    def update(self, decision):
        return StimRequest(reason="always", t_trigger=decision.t_end)


class Consumer:
    """A marker consumer in a thread: resolves the stream, connects, keeps every marker."""

    def __init__(self, name: str, timeout_s: float = 20.0) -> None:
        self.name, self.timeout_s = name, timeout_s
        self.markers: list[str] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from bci.realtime.lsl import MarkerInlet

        try:
            inlet = MarkerInlet(self.name, timeout_s=self.timeout_s)
            self.connected.set()
            while not self._stop.is_set():
                markers, _ = inlet.pull()
                self.markers += markers
                self._stop.wait(0.01)
            inlet.close()
        except BaseException as err:  # thread boundary: re-raised by stop()
            self.error = err
            self.connected.set()

    def wait_for(self, n: int, timeout_s: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while len(self.markers) < n and time.monotonic() < deadline:
            self._stop.wait(0.01)
        return self.markers

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        if self.error is not None:
            raise self.error


def test_consumer_connected_before_the_session_gets_every_marker_fired():
    from bci.hw.lsl_marker import LSLMarkerStimulator

    name = _name("stim")
    stim = LSLMarkerStimulator(name, wait_for_consumers_s=10.0)
    consumer = Consumer(name)
    stream = Stream(ArraySource(index_signal(2000), 100.0, chunk_size=10), threaded=False)
    loop = OnlineLoop(stream, window_s=0.5, step_s=0.5, policy=AlwaysFire(), stimulator=stim,
                      safety=SafetyGate(min_interval_s=0.0, max_per_minute=None,
                                        max_per_session=None), catch_up=True)
    summary = loop.run()  # opens the outlet, waits for the consumer, replays 20 s at once
    received = consumer.wait_for(summary["stimuli_fired"])
    consumer.stop()
    assert summary["stimuli_fired"] == 40  # windows ending at 0.49, 0.99, ... 19.99 s
    assert received == ["stim/1"] * 40  # the last one too: close() lingers for it
    assert summary["markers_sent_with_consumer"] == 40
    assert summary["stimulator"] == {"name": "lsl-marker", "has_consumers_at_start": True,
                                     "has_consumers_at_end": True, "sent_with_consumer": 40,
                                     "sent_without_consumer": 0, "delivery_unknown": 0}


def test_markers_sent_with_no_consumer_are_counted_as_such(caplog):
    from bci.hw.lsl_marker import LSLMarkerStimulator

    stim = LSLMarkerStimulator(_name("alone"))
    stream = Stream(ArraySource(index_signal(500), 100.0, chunk_size=10), threaded=False)
    loop = OnlineLoop(stream, window_s=0.5, step_s=1.0, policy=AlwaysFire(), stimulator=stim,
                      safety=SafetyGate(min_interval_s=0.0), catch_up=True)
    summary = loop.run()
    assert summary["stimuli_fired"] == 5
    assert summary["markers_sent_with_consumer"] == 0
    assert summary["stimulator"]["has_consumers_at_start"] is False
    assert summary["stimulator"]["sent_without_consumer"] == 5
    assert "with no consumer connected: it is lost" in caplog.text


def test_marker_stimulator_contract():
    from bci.hw.lsl_marker import LSLMarkerStimulator

    name = _name("contract")
    stim = LSLMarkerStimulator(name, linger_s=0.0)
    assert stim.has_consumers is False
    with pytest.raises(RuntimeError, match=r"is not open; call open\(\) first"):
        stim.trigger(StimEvent(index=0, code=1, t_trigger=0.0))
    with stim:  # opens (idempotently) and closes
        stim.open()
        stim.trigger(StimEvent(index=0, code=7, t_trigger=0.0))
        assert len(stim.timestamps) == 1
        assert stim.n_sent_with_consumer == 0
    with pytest.raises(RuntimeError, match="is closed; create a new one"):
        stim.open()
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match=r"wait_for_consumers_s must be a finite number "
                                             r">= 0 \(s\)"):
            LSLMarkerStimulator(name, wait_for_consumers_s=bad)
        with pytest.raises(ValueError, match=r"linger_s must be a finite number >= 0 \(s\)"):
            LSLMarkerStimulator(name, linger_s=bad)


def test_marker_outlet_counts_pushes_with_a_consumer():
    from bci.realtime.lsl import MarkerOutlet

    name = _name("outlet")
    outlet = MarkerOutlet(name)
    outlet.push("before")
    consumer = Consumer(name)
    assert outlet.wait_for_consumers(10.0)
    assert consumer.connected.wait(10.0)
    for i in range(5):
        outlet.push(f"m{i}")
    outlet.close(linger_s=1.0)
    received = consumer.wait_for(5)
    consumer.stop()
    assert received == [f"m{i}" for i in range(5)]  # "before" had no consumer: lost
    assert (outlet.n_pushed, outlet.n_pushed_with_consumer) == (6, 5)
    assert outlet.has_consumers is False  # closed
    with pytest.raises(RuntimeError, match="is closed"):
        outlet.push("after")
    np.testing.assert_equal(outlet.n_pushed, 6)
