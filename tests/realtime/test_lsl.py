"""Real loopback LSL (short): player -> LSLSource -> Stream, loss and reconnection, markers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from bci.realtime.loop import OnlineLoop
from bci.realtime.recording import Recorder, read_signal
from bci.realtime.stream import Stream

from ._helpers import index_signal

pytest.importorskip("pylsl")


def _name(tag: str) -> str:
    return f"bci-test-{tag}-{os.getpid()}"


def test_lsl_discovery_stays_on_this_machine():
    """The tests' configuration and the one bci writes keep discovery on loopback."""
    from bci.realtime.lsl import LOOPBACK_CONFIG

    for text in (Path(os.environ["LSLAPICFG"]).read_text(), LOOPBACK_CONFIG):
        assert "ResolveScope = machine" in text
        assert "AddressesOverride = {127.0.0.1}" in text
        assert "ListenAddress = 127.0.0.1" in text
        assert "KnownPeers = {127.0.0.1}" in text
        assert "IPv6 = disable" in text
    # and says what it cannot do (see test_lsl_exposure.py, which checks it with ss)
    assert "does NOT make\n; streams private" in LOOPBACK_CONFIG


def test_exact_index_over_loopback_lsl():
    from bci.realtime.lsl import LSLSource
    from bci.realtime.player import Player

    sfreq, n = 500.0, 1000  # 2 s
    name = _name("index")
    with Player((index_signal(n, 4), sfreq, ["idx", "a", "b", "c"]), name,
                wait_for_consumers_s=5.0, chunk_s=0.005) as player:
        source = LSLSource(name, timeout_s=5.0)
        assert source.info.ch_names == ["idx", "a", "b", "c"]
        assert source.info.sfreq == sfreq
        with Stream(source, threaded=True, buffer_s=10.0) as stream:
            deadline = time.monotonic() + 10.0
            while stream.n_written < n and time.monotonic() < deadline:
                stream.wait(stream.n_written, 0.1)
            data, ts = stream.get_last(stream.n_written)
        player.join(1.0)
    np.testing.assert_array_equal(data[0], np.arange(n))  # no gap, no duplicate
    assert stream.n_lost == 0
    assert stream.n_gaps == 0
    np.testing.assert_allclose(np.diff(ts), 1 / sfreq, atol=2e-4)  # dejittered
    # timestamps are the player's: sample i at t_start + i / sfreq (same clock, same machine)
    np.testing.assert_allclose(ts - player.t_start, np.arange(n) / sfreq, atol=0.005)


def test_stream_killed_and_restarted_session_continues(tmp_path):
    from bci.realtime.lsl import LSLSource
    from bci.realtime.player import Player

    sfreq = 250.0
    name = _name("restart")
    data = index_signal(int(60 * sfreq), 2)
    first = Player((data, sfreq, ["idx", "x"]), name, wait_for_consumers_s=5.0,
                   source_id="bci-test-restart").start()
    stream = Stream(LSLSource(name, timeout_s=5.0), threaded=True, reconnect_s=10.0)
    rec = Recorder(tmp_path / "s", stream.ch_names, sfreq)
    loop = OnlineLoop(stream, window_s=0.2, step_s=0.1, recorder=rec)
    import threading

    def chaos():
        time.sleep(1.0)
        first.stop()  # the device disappears
        time.sleep(0.5)
        Player((data, sfreq, ["idx", "x"]), name, source_id="bci-test-restart").start()

    thread = threading.Thread(target=chaos)
    thread.start()
    summary = loop.run(duration_s=4.0)
    thread.join()
    kinds = summary["faults"]
    assert kinds.get("lost") == 1, kinds
    assert kinds.get("reconnected") == 1, kinds
    assert summary["stopped_reason"] == "duration reached"
    sig, ts, _ = read_signal(tmp_path / "s")
    idx = sig[0]
    k = int(np.argmax(np.diff(idx) != 1)) + 1  # where the restarted player's data begin
    np.testing.assert_array_equal(idx[:k], np.arange(k))  # complete up to the fault
    assert k >= 0.8 * sfreq
    assert len(idx) - k > 0.5 * sfreq


def test_missing_stream_error_names_the_fix():
    from bci.realtime.lsl import LSLSource

    with pytest.raises(RuntimeError, match="No LSL stream with name='nope-.*bci play FILE"):
        LSLSource(f"nope-{os.getpid()}", timeout_s=0.3)


def test_marker_stimulator_markers_arrive_with_their_timestamps():
    from bci.hw.lsl_marker import LSLMarkerStimulator
    from bci.realtime.events import StimEvent
    from bci.realtime.lsl import MarkerInlet

    name = _name("stim")
    stim = LSLMarkerStimulator(name)
    stim.open()  # the outlet is created by open() (the loop calls it at session start)
    inlet = MarkerInlet(name, timeout_s=5.0)
    time.sleep(0.2)  # let the inlet connect before sending
    for code in (1, 2, 3):
        stim.trigger(StimEvent(index=code, code=code, t_trigger=0.0))
    markers, ts = [], []
    deadline = time.monotonic() + 5.0
    while len(markers) < 3 and time.monotonic() < deadline:
        m, t = inlet.pull()
        markers += m
        ts += list(t)
        time.sleep(0.01)
    stim.close()
    inlet.close()
    assert markers == ["stim/1", "stim/2", "stim/3"]
    np.testing.assert_allclose(ts, stim.timestamps, atol=1e-3)
