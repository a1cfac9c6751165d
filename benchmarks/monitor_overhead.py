"""What the live monitor costs the online loop: per-window overhead with and without a browser.

A replayed session (synthetic motor imagery, 8 channels at 250 Hz, a TS+LR decoder on 2-s
windows every ``--step-s``, a policy asking for a stimulus after every window, the safety gate
suppressing most) runs in real time (threaded stream, the source paced by the clock) under three
conditions, in turn, ``--repeats`` times:

- ``off``: no monitor;
- ``server``: the monitor's feed and server, no page connected;
- ``client``: the same with a page connected (a Server-Sent-Events client reading every
  message, 20 a second, as a browser does).

Per window (loop step that decided) it records the loop's work: the wall time of
``OnlineLoop.step`` and the loop thread's CPU time in it, and, with the monitor, the wall and CPU
time spent in the monitor's hooks (``MonitorFeed.publish`` and ``on_event``: the direct cost;
their wall time also counts the waits for the GIL while the server's thread builds a message).
Printed: p50/p99 of each, the hooks' CPU as a share of the step period (the CPU the loop gives
the monitor; the goal is < 2 %), the process's CPU and the server thread's (``update``)::

    python benchmarks/monitor_overhead.py --duration-s 10 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request

import numpy as np

import bci
from bci.data import make_motor_imagery
from bci.models.decoder import Decoder
from bci.realtime.events import StimRequest
from bci.realtime.loop import OnlineLoop
from bci.realtime.monitor import MonitorFeed, MonitorServer
from bci.realtime.policies import Policy
from bci.realtime.safety import SafetyGate
from bci.realtime.sources import ArraySource
from bci.realtime.stream import Stream

SFREQ = 250.0


class EveryWindow(Policy):
    """Ask for a stimulus after every decision."""

    def update(self, decision):
        """Score the decision with p(first class) and ask for a stimulus."""
        decision.score = float(decision.proba[0])
        return StimRequest(reason=f"p={decision.score:.2f}", t_trigger=decision.t_end)


class TimedFeed(MonitorFeed):
    """A feed that measures the time the loop spends in it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spent = 0.0
        self.spent_cpu = 0.0

    def on_event(self, kind, t, fields):
        """Queue the event, timed."""
        c0, t0 = time.thread_time(), time.perf_counter()
        super().on_event(kind, t, fields)
        self.spent += time.perf_counter() - t0
        self.spent_cpu += time.thread_time() - c0

    def publish(self, loop, processed):
        """Publish a snapshot if due, timed."""
        c0, t0 = time.thread_time(), time.perf_counter()
        super().publish(loop, processed)
        self.spent += time.perf_counter() - t0
        self.spent_cpu += time.thread_time() - c0


class TimedLoop(OnlineLoop):
    """A loop that records, per step that decided, its wall and CPU time and the monitor's."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.step_ms: list[float] = []
        self.cpu_ms: list[float] = []
        self.monitor_ms: list[float] = []
        self.monitor_cpu_ms: list[float] = []

    def step(self):
        """Run one step, timed."""
        m = self.monitor
        spent, spent_cpu = (m.spent, m.spent_cpu) if m is not None else (0.0, 0.0)
        c0, t0 = time.thread_time(), time.perf_counter()
        made = super().step()
        t1, c1 = time.perf_counter(), time.thread_time()
        if made:
            self.step_ms.append((t1 - t0) * 1e3)
            self.cpu_ms.append((c1 - c0) * 1e3)
            if m is not None:
                self.monitor_ms.append((m.spent - spent) * 1e3)
                self.monitor_cpu_ms.append((m.spent_cpu - spent_cpu) * 1e3)
        return made


def make_decoder() -> Decoder:
    """TS+LR on 8 channels at 250 Hz, 2-s windows (the tests' motor-imagery decoder)."""
    train = make_motor_imagery(25, n_chans=8, sfreq=SFREQ, random_state=0)
    decoder = Decoder(estimator=bci.get_pipeline("TS+LR"), ch_names=train.ch_names,
                      sfreq=SFREQ, tmin=0.5, tmax=2.5, classes=["left_hand", "right_hand"],
                      filters=[(8.0, 30.0)], unit_factor=1e6)
    import mne

    events, event_id = mne.events_from_annotations(train, verbose=False)
    names = {v: k for k, v in event_id.items()}
    data, start = train.get_data(), int(round(decoder.tmin * SFREQ))
    X = np.stack([data[:, o + start:o + start + decoder.n_times] for o, _, _ in events])
    y = np.array([names[c] for _, _, c in events]) == "right_hand"
    decoder.estimator.fit(decoder.preprocess(X), y.astype(int))
    return decoder


def _read_events(url: str, stop: threading.Event, counter: list[int]) -> None:
    """Read the SSE stream like a page does, counting the messages."""
    with urllib.request.urlopen(url, timeout=10) as response:
        while not stop.is_set():
            line = response.readline()
            if not line:
                return
            if line.startswith(b"data: "):
                json.loads(line[6:])
                counter[0] += 1


def run(condition: str, decoder: Decoder, data: np.ndarray, duration_s: float,
        step_s: float) -> dict:
    """One session under ``condition`` (off, server, client); its per-window figures."""
    source = ArraySource(data, SFREQ, decoder.ch_names, clock=time.perf_counter, loop=True)
    loop = TimedLoop(Stream(source), decoder, step_s=step_s, policy=EveryWindow(),
                     safety=SafetyGate(min_interval_s=1.0, max_per_minute=None,
                                       max_per_session=None))
    server, stop, reader, counter = None, threading.Event(), None, [0]
    if condition != "off":
        feed = TimedFeed()
        feed.bind(loop)
        server = MonitorServer(feed, update_hz=20.0).start()
        if condition == "client":
            url = server.url.replace("/?", "/events?")
            reader = threading.Thread(target=_read_events, args=(url, stop, counter),
                                      daemon=True)
            reader.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        loop.run(duration_s)
    finally:
        wall = time.perf_counter() - wall0
        process_cpu = (time.process_time() - cpu0) / wall
        server_cpu = server.update_cpu_s / wall if server is not None else 0.0
        stop.set()
        if server is not None:
            server.close()
        if reader is not None:
            reader.join(5.0)
    p = {name: np.percentile(values, [50, 99]).round(3).tolist() for name, values in
         (("step_ms", loop.step_ms), ("cpu_ms", loop.cpu_ms),
          ("monitor_ms", loop.monitor_ms or [0.0]),
          ("monitor_cpu_ms", loop.monitor_cpu_ms or [0.0]))}
    return {"condition": condition, "windows": len(loop.step_ms), **p,
            "monitor_cpu_share_mean_%": round(
                100 * np.mean(loop.monitor_cpu_ms or [0.0]) / 1e3 / step_s, 3),
            "monitor_cpu_share_p99_%": round(
                100 * np.percentile(loop.monitor_cpu_ms or [0.0], 99) / 1e3 / step_s, 3),
            "process_cpu_%": round(100 * process_cpu, 1),
            "server_update_cpu_%": round(100 * server_cpu, 2), "sse_messages": counter[0],
            "messages_per_s": round(counter[0] / duration_s, 1)}


def main() -> None:
    """Run every condition ``--repeats`` times; print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--step-s", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    decoder = make_decoder()
    data = make_motor_imagery(10, n_chans=8, sfreq=SFREQ, random_state=1).get_data()
    for _ in range(args.repeats):
        for condition in ("off", "server", "client"):
            print(json.dumps(run(condition, decoder, data, args.duration_s, args.step_s)),
                  flush=True)


if __name__ == "__main__":
    main()
