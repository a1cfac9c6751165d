"""The live monitor: feed (loop side), server (token, loopback bind, stop), CLI."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from bci.realtime.events import StimRequest
from bci.realtime.loop import OnlineLoop
from bci.realtime.monitor import BANDS, MonitorFeed, MonitorServer, band_power
from bci.realtime.policies import Policy
from bci.realtime.safety import SafetyGate
from bci.realtime.sources import ArraySource
from bci.realtime.stream import Stream

from ._helpers import FakeClock, index_signal

pytest.importorskip("aiohttp", reason="the live monitor needs bci[monitor] (aiohttp)")

SFREQ = 250.0


class EveryWindow(Policy):
    """Ask for a stimulus after every window, scored by the window's last value of row 0."""

    def update(self, decision):
        decision.score = float(decision.window[0, -1])
        return StimRequest(code=7, reason="every window", t_trigger=decision.t_end)


def _get(url: str, *, method: str = "GET", headers: dict | None = None):
    """Return (status, body) of a request (HTTP errors included, not raised)."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _base(server: MonitorServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def _paced_loop(n_times: int, *, feed: MonitorFeed | None, clock: FakeClock,
                safety: SafetyGate | None = None) -> OnlineLoop:
    """Build an unthreaded loop over an index signal (3 channels) paced by ``clock``."""
    source = ArraySource(index_signal(n_times), SFREQ, ["A", "B", "C"], clock=clock)
    stream = Stream(source, threaded=False, stall_s=60.0)
    loop = OnlineLoop(stream, window_s=0.4, step_s=0.1,
                      policy=EveryWindow(),
                      safety=safety or SafetyGate(min_interval_s=0.25, max_per_minute=None,
                                                  max_per_session=None))
    if feed is not None:
        feed.bind(loop)
    return loop


def test_band_power_finds_a_planted_sine():
    t = np.arange(int(2 * SFREQ)) / SFREQ
    x = np.vstack([np.sin(2 * np.pi * f * t) for f in (2.0, 6.0, 10.0, 20.0, 40.0)])
    power = band_power(x, SFREQ)
    assert power.shape == (5, len(BANDS))
    np.testing.assert_array_equal(np.argmax(power, axis=1), np.arange(5))
    # Parseval: the band holding a unit sine holds its power 1/2 (mean PSD x band width)
    width = BANDS["alpha"][1] - BANDS["alpha"][0]
    assert power[2, 2] * width == pytest.approx(0.5, rel=0.02)


def test_feed_publishes_exact_samples_and_counts():
    clock = FakeClock(0.0)
    feed = MonitorFeed(publish_hz=8.0, display_hz=50.0, history_s=2.0, clock=clock)
    loop = _paced_loop(int(3 * SFREQ), feed=feed, clock=clock)
    assert loop.monitor is feed
    assert feed.info["ch_names"] == ["A", "B", "C"]
    stream = loop.stream
    stream.start()
    seen = []
    for _ in range(48):  # 3 s in steps of 1/16 s (exact in binary)
        clock.advance(0.0625)
        loop.step()
        if feed.snapshot is not None and (not seen or seen[-1]["n"] != feed.snapshot["n"]):
            seen.append(feed.snapshot)
    loop.close()
    assert feed.info["display_hz"] == 50.0  # every 5th sample of 250 Hz
    # the first at the first step (t=1/16 s), then one every 125 ms of the (fake) clock
    # (t=0.125, 0.25, ... 3 s): 1 + 24
    assert len(seen) == 25
    last = seen[-1]
    assert last["samples"] == stream.n_written
    assert last["decisions"] == len(loop.decisions) > 0
    assert last["stimuli"] == len(loop.stim_events) > 0
    assert last["suppressed"] == loop.safety.n_suppressed > 0
    # the index channel proves which samples are shown: every 5th, the last 2 s, in order
    shown = last["signal"][0]
    assert len(shown) == 100
    np.testing.assert_array_equal(shown % 5, 0)
    np.testing.assert_array_equal(np.diff(shown), 5)
    np.testing.assert_allclose(last["signal_t"], shown / SFREQ)
    assert shown[-1] > stream.n_written - 1 - 5
    # the values change as the session runs
    assert [s["samples"] for s in seen] == sorted({s["samples"] for s in seen})
    # every event reached the feed, in order: decisions, stimuli, suppressed
    kinds = [e[1] for e in feed.events]
    assert [e[0] for e in feed.events] == list(range(len(kinds)))
    assert kinds.count("decision") == len(loop.decisions)
    assert kinds.count("stim") == len(loop.stim_events)
    assert kinds.count("suppressed") == loop.safety.n_suppressed


def test_feed_leaves_the_loop_unchanged():
    """Same decisions, stimuli and processed samples with and without a monitor."""
    runs = []
    for feed in (None, MonitorFeed(clock=FakeClock(0.0))):
        clock = FakeClock(0.0)
        loop = _paced_loop(int(2 * SFREQ), feed=feed, clock=clock)
        loop.stream.start()
        for _ in range(40):
            clock.advance(0.05)
            loop.step()
        loop.close()
        runs.append(([(d.t_end, d.score) for d in loop.decisions],
                     [e.t_trigger for e in loop.stim_events],
                     loop._processed.get_last(loop._processed.n_available)[0]))
    assert runs[0][:2] == runs[1][:2]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_server_state_counts_events_and_latency():
    clock = FakeClock(0.0)
    feed = MonitorFeed(publish_hz=16.0, clock=clock)
    loop = _paced_loop(int(3 * SFREQ), feed=feed, clock=clock)
    server = MonitorServer(feed)  # not started: update() is what its thread runs
    loop.stream.start()
    for _ in range(32):
        clock.advance(0.0625)
        loop.step()
    server.update()
    state = server.state()
    assert state["state"] == "running"
    assert state["counts"]["decisions"] == len(loop.decisions)
    assert len(state["recent_stim"]) == len(loop.stim_events)
    assert len(state["recent_suppressed"]) == loop.safety.n_suppressed
    assert {s["why"] for s in state["recent_suppressed"]} <= set(loop.safety.suppressed)
    assert state["latency_ms"]["decode"]["n"] == len(loop.decisions)
    e2e = np.array(loop.latencies["end_to_end"])
    assert state["latency_ms"]["end_to_end"]["p99"] == pytest.approx(
        np.percentile(e2e, 99), abs=1e-3)
    assert state["band_power"]["bands"] == list(BANDS)
    assert len(state["band_power"]["db"]) == 3
    json.dumps(state, allow_nan=False)  # what the page gets is valid JSON
    # the whole displayed history: every 3rd sample (250 Hz shown at <= 100 Hz)
    assert state["signal"]["reset"]
    shown = np.array(state["signal"]["y"][0])
    np.testing.assert_array_equal(np.diff(shown), 3)
    # a page connected at that update gets next only the newer samples, none twice
    for _ in range(8):
        clock.advance(0.0625)
        loop.step()
    loop.close()
    since = state["signal"]["t"][-1]
    server.update()
    newer = server.state(since=since)["signal"]
    assert not newer["reset"]
    np.testing.assert_array_equal(newer["y"][0], np.arange(shown[-1] + 3, loop.stream.n_written,
                                                           3))
    assert server.state()["recent_stim"] == state["recent_stim"] + server.state()[
        "recent_stim"][len(state["recent_stim"]):]  # drained once, kept
    assert len(server.state()["recent_stim"]) == len(loop.stim_events)
    feed.finish({"stopped_reason": "duration reached"})
    server.update()
    assert server.state()["state"] == "ended"


def test_server_needs_its_token_and_binds_loopback():
    with MonitorServer(MonitorFeed()) as server:
        assert server.addresses
        assert all(a[0] == "127.0.0.1" for a in server.addresses)
        assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=")
        assert len(server.token) >= 32
        base = _base(server)
        for path in ("/", "/snapshot", "/events", "/static/monitor.js"):
            assert _get(base + path)[0] == 403
            assert _get(base + path + "?token=wrong")[0] == 403
            assert _get(base + path + "?token=" + server.token[:-1])[0] == 403
        status, body = _get(base + "/?token=" + server.token)
        assert status == 200
        assert f'content="{server.token}"' in body
        status, body = _get(base + "/snapshot", headers={"X-BCI-Token": server.token})
        assert status == 200
        assert json.loads(body)["state"] == "waiting"
        status, _ = _get(base + "/static/uPlot.iife.min.js?token=" + server.token)
        assert status == 200
        assert _get(base + "/static/..%2Fmonitor.py?token=" + server.token)[0] == 404
    assert MonitorServer(MonitorFeed()).token != MonitorServer(MonitorFeed()).token


def test_server_is_read_only_but_for_the_manual_stop():
    clock = FakeClock(0.0)
    feed = MonitorFeed(clock=clock)
    loop = _paced_loop(int(2 * SFREQ), feed=feed, clock=clock)
    with MonitorServer(feed) as server:
        base = _base(server)
        assert _get(base + "/stop", method="POST")[0] == 403
        assert not loop.safety.stopped
        assert _get(base + "/stop?token=" + server.token)[0] == 405  # GET cannot stop
        assert _get(base + "/snapshot?token=" + server.token, method="POST")[0] == 405
        assert not loop.safety.stopped
        status, body = _get(base + "/stop?token=" + server.token, method="POST")
        assert status == 200
        assert json.loads(body) == {"stopped": True}
        assert loop.safety.stopped
        assert "live monitor" in loop.safety.stop_reason
        assert server.n_stop_requests == 1
    loop.stream.start()
    for _ in range(20):
        clock.advance(0.05)
        loop.step()
    loop.close()
    assert loop.stim_events == []
    assert loop.safety.n_suppressed > 0


def test_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MonitorServer(MonitorFeed(), port=port)
        with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is already in use.*"
                                          "--monitor-port 0"):
            server.start()


def test_other_address_warns(caplog):
    # 127.0.0.2 is loopback too (tests never listen beyond it) but not the default
    with caplog.at_level("WARNING", logger="bci"), \
            MonitorServer(MonitorFeed(), host="127.0.0.2") as server:
        assert server.addresses[0][0] == "127.0.0.2"
    assert any("exposed on 127.0.0.2" in r.getMessage() for r in caplog.records)


def test_bad_arguments():
    with pytest.raises(TypeError, match="feed"):
        MonitorServer(object())
    with pytest.raises(ValueError, match="port"):
        MonitorServer(MonitorFeed(), port=70000)
    with pytest.raises(ValueError, match="token must have >= 16"):
        MonitorServer(MonitorFeed(), token="short")
    with pytest.raises(ValueError, match="publish_hz"):
        MonitorFeed(publish_hz=float("nan"))


def test_missing_aiohttp_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(ImportError, match=r"pip install 'bci\[monitor\]'"):
        MonitorServer(MonitorFeed())


def test_snapshots_change_as_a_live_session_runs():
    """A threaded, real-time session with the server: the served values move, then end."""
    from bci.realtime.session import run_session

    feed = MonitorFeed()
    source = ArraySource(index_signal(int(10 * SFREQ)), SFREQ, ["A", "B", "C"],
                         clock=time.perf_counter)
    result = {}
    with MonitorServer(feed, update_hz=20.0) as server:
        url = _base(server) + "/snapshot?token=" + server.token
        session = threading.Thread(target=lambda: result.update(summary=run_session(
            source, window_s=0.2, step_s=0.1, duration_s=1.5, monitor=feed)))
        session.start()
        seen = []
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            state = json.loads(_get(url)[1])
            if state.get("counts") and (not seen or state["counts"]["decisions"]
                                        != seen[-1]["counts"]["decisions"]):
                seen.append(state)
            if state["state"] == "ended":
                break
            threading.Event().wait(0.05)  # a poll period, not a synchronisation
        session.join(10.0)
    assert len(seen) >= 3  # several different decision counts were served while it ran
    assert [s["counts"]["decisions"] for s in seen] == sorted(
        s["counts"]["decisions"] for s in seen)
    assert state["state"] == "ended"
    assert state["stopped_reason"] == "duration reached"
    assert state["counts"]["decisions"] == result["summary"]["decisions"]
    assert state["counts"]["samples"] == result["summary"]["samples_received"]


def test_cli_stream_monitor(tmp_path):
    """README's `bci stream --board synthetic ... --monitor` (4 s here).

    The command: `bci stream --board synthetic --window-s 0.5 --duration-s 600 --stimulator
    none --monitor`; the URL is printed, the token enforced, the session ends cleanly.
    """
    pytest.importorskip("brainflow", reason="the board needs bci[brainflow]")
    import os
    import subprocess

    cmd = [sys.executable, "-m", "bci.cli", "stream", "--board", "synthetic", "--window-s",
           "0.5", "--duration-s", "4", "--stimulator", "none", "--monitor"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ.copy())
    try:
        line = ""
        for line in proc.stdout:
            if line.startswith("Live monitor: "):
                break
        url = line.removeprefix("Live monitor: ").strip()
        assert url.startswith("http://127.0.0.1:")
        assert "?token=" in url
        base, token = url.split("/?token=")
        assert _get(base + "/snapshot")[0] == 403
        status, body = _get(f"{base}/snapshot?token={token}")
        assert status == 200
        assert json.loads(body)["info"] is not None
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "Stopped: duration reached" in out


class _TimedFeed(MonitorFeed):
    """A feed that adds up the loop thread's CPU time in its hooks."""

    spent_s = 0.0

    def on_event(self, kind, t, fields):
        c0 = time.thread_time()
        super().on_event(kind, t, fields)
        self.spent_s += time.thread_time() - c0

    def publish(self, loop, processed):
        c0 = time.thread_time()
        super().publish(loop, processed)
        self.spent_s += time.thread_time() - c0


def test_monitor_costs_the_loop_under_2_percent_of_a_step():
    """CPU of the loop's thread in the monitor's hooks, per window: p99 < 2 % of the step.

    Every step publishes (the worst case); CPU time, so other processes do not count.
    benchmarks/monitor_overhead.py measures the same on a real-time session, with a page.
    """
    clock = FakeClock(0.0)
    feed = _TimedFeed(publish_hz=25.0, clock=clock)
    loop = _paced_loop(int(30 * SFREQ), feed=feed, clock=clock)
    loop.stream.start()
    per_window = []
    for _ in range(750):  # 30 s in steps of 40 ms: a snapshot every step
        clock.advance(0.04)
        before = feed.spent_s
        if loop.step():
            per_window.append(feed.spent_s - before)
    loop.close()
    assert feed.snapshot["n"] == 750
    assert len(per_window) == len(loop.decisions) > 250
    assert np.percentile(per_window, 99) < 0.02 * loop.step_s


def test_cli_monitor_errors(capsys):
    from bci.cli import main

    assert main(["stream", "--board", "synthetic", "--monitor-port", "0"]) == 2
    assert "give --monitor too" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["stream", "--board", "synthetic", "--stimulator", "none", "--monitor",
                     "--monitor-port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert "--monitor-port 0" in err


def test_stream_faults_reach_the_page_as_they_happen():
    """A gap and a NaN burst in the stream: on the next update, with their messages."""
    from ._helpers import FaultySource

    clock = FakeClock(0.0)
    inner = ArraySource(index_signal(int(3 * SFREQ)), SFREQ, ["A", "B", "C"], clock=clock)
    stream = Stream(FaultySource(inner, drop={20}, nan={30}), threaded=False, stall_s=60.0)
    loop = OnlineLoop(stream, window_s=0.4, step_s=0.1, on_fault="continue")
    feed = MonitorFeed(clock=clock)
    feed.bind(loop)
    server = MonitorServer(feed)
    stream.start()
    kinds = []
    for _ in range(40):
        clock.advance(0.05)
        loop.step()
        server.update()
        kinds.append([f["kind"] for f in server.state()["recent_fault"]])
    loop.close()
    # pull 20 lost its chunk: the gap is seen at pull 21 (step 21); pull 30 is NaN
    assert "gap" not in kinds[20]
    assert "gap" in kinds[21]
    assert "nan" not in kinds[29]
    assert "nan" in kinds[30]
    assert server.state()["n_faults"] == sum(1 for e in stream.events) + sum(
        loop.faults.values())
    gap = next(f for f in server.state()["recent_fault"] if f["kind"] == "gap")
    assert gap["message"] == next(e.message for e in stream.events if e.kind == "gap")


def test_pages_get_the_end_before_the_server_closes():
    """The CLI closes the server right after the session: a page still learns that it ended."""
    from bci.realtime.session import run_session

    feed = MonitorFeed()
    source = ArraySource(index_signal(int(5 * SFREQ)), SFREQ, ["A", "B", "C"],
                         clock=time.perf_counter)
    server = MonitorServer(feed).start()
    messages = []

    def read():
        url = _base(server) + "/events?token=" + server.token
        with urllib.request.urlopen(url, timeout=30) as response:
            for line in response:
                if line.startswith(b"data: "):
                    messages.append(json.loads(line[6:]))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        summary = run_session(source, window_s=0.2, step_s=0.1, duration_s=1.0, monitor=feed)
    finally:
        server.close()
        reader.join(30.0)
    assert not reader.is_alive()  # the stream ended with the server
    assert len(messages) >= 10  # 20 a second for about 1 s
    assert messages[-1]["state"] == "ended"
    assert messages[-1]["stopped_reason"] == summary["stopped_reason"] == "duration reached"
    assert messages[-1]["counts"]["decisions"] == summary["decisions"]
    # the samples shown, summed over the messages, are each shown once, in order
    shown = [y for m in messages if "signal" in m for y in m["signal"]["y"][0]]
    assert shown == sorted(set(shown))
