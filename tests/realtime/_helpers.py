"""Test helpers: faulty sources, index signals, a fake clock, an LSL publisher with steps."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import numpy as np

from bci.realtime.sources import ArraySource, Source, SourceLostError


def index_signal(n_times: int, n_chans: int = 3, seed: int = 0) -> np.ndarray:
    """Row 0 carries the sample index; the other rows are seeded noise."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n_chans, n_times))
    data[0] = np.arange(n_times)
    return data


class FaultySource(Source):
    """Wrap an :class:`ArraySource` and break it on purpose, pull by pull.

    Parameters
    ----------
    inner : ArraySource
        The clean replay.
    drop : set of int
        Pull numbers whose chunk is thrown away (the samples are lost in transit).
    nan : set of int
        Pull numbers whose chunk is replaced by NaN.
    jump : dict of int -> float
        Pull numbers from which every timestamp is shifted by this many seconds (the device's
        clock jumps; the arrival clock, :meth:`now`, does not).
    lose_at : int | None
        Pull number at which the source is lost (raises SourceLostError).
    come_back : bool
        Whether reconnect() succeeds after the loss.
    raise_at : int | None
        Pull number that raises an unexpected error (a driver bug).
    """

    def __init__(self, inner: ArraySource, *, drop=(), nan=(), jump=None, lose_at=None,
                 come_back=True, raise_at=None) -> None:
        self.inner = inner
        self.drop, self.nan = set(drop), set(nan)
        self.jump = dict(jump or {})
        self.lose_at, self.come_back, self.raise_at = lose_at, come_back, raise_at
        self.n_pulls = 0
        self._shift = 0.0
        self.lost = False
        self.n_reconnects = 0

    @property
    def info(self):
        return self.inner.info

    @property
    def exhausted(self) -> bool:
        return self.inner.exhausted

    def now(self) -> float:
        return self.inner.now()

    def pull(self, max_samples=None):
        if self.lost:
            raise SourceLostError("still lost")
        k = self.n_pulls
        self.n_pulls += 1
        if k == self.lose_at:
            self.lost = True
            raise SourceLostError("unplugged")
        if k == self.raise_at:
            raise OSError("driver crashed")
        data, ts = self.inner.pull(max_samples)
        if k in self.jump:
            self._shift += self.jump[k]
        ts = ts + self._shift
        if k in self.drop:
            return np.empty((data.shape[0], 0)), np.empty(0)
        if k in self.nan:
            data = np.full_like(data, np.nan)
        return data, ts

    def reconnect(self):
        if not self.come_back:
            raise SourceLostError("gone for good")
        self.lost = False
        self.n_reconnects += 1
        return self.info


class FakeClock:
    """A clock tests advance by hand (no sleeping)."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class StepPublisher:
    """Publish an index signal on loopback LSL in real time, with clock jumps and real gaps.

    Sample ``i`` is produced at ``t0 + i / sfreq`` (LSL clock) and stamped with that time plus
    the clock jumps before it; the samples of a gap are produced (time passes) but never
    pushed. Pushes every ``chunk_s``, one push per run of regular timestamps (as a device
    that stamps each chunk), after a first consumer connected.

    Parameters
    ----------
    name : str
        LSL stream name.
    sfreq : float
        Rate (Hz).
    n_times : int
        Samples produced, the lost ones included.
    steps : list of (int, str, float)
        ``(index, "jump", size_s)``: every timestamp from sample ``index`` on moves by
        ``size_s``; ``(index, "gap", size_s)``: samples ``index`` to
        ``index + round(size_s * sfreq) - 1`` are lost.
    chunk_s : float
        Push period (s).
    """

    def __init__(self, name: str, sfreq: float, n_times: int, steps=(), *,
                 chunk_s: float = 0.01) -> None:
        from bci.realtime.lsl import SignalOutlet

        self.sfreq, self.n_times, self.chunk_s = float(sfreq), int(n_times), float(chunk_s)
        idx = np.arange(self.n_times)
        self.offset = np.zeros(self.n_times)
        lost = np.zeros(self.n_times, dtype=bool)
        for index, kind, size_s in steps:
            if kind == "jump":
                self.offset[index:] += size_s
            else:
                lost[index:index + int(round(size_s * self.sfreq))] = True
        self.indices = idx[~lost]  # what a consumer must receive, in order
        self._data = np.ascontiguousarray(
            np.c_[idx, np.random.default_rng(0).standard_normal(self.n_times)], np.float32)
        self._lost = lost
        self._outlet = SignalOutlet(name, ["idx", "x"], self.sfreq)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"publisher-{name}",
                                        daemon=True)
        self.error: BaseException | None = None
        self.n_pushed = 0
        self.t0: float | None = None

    def start(self) -> StepPublisher:
        self._thread.start()
        return self

    def _work(self) -> None:
        from bci.realtime.lsl import local_clock

        try:
            if not self._outlet.wait_for_consumers(10.0):
                raise RuntimeError("no consumer connected within 10 s")
            self.t0 = local_clock() + 0.02
            sent = 0
            while sent < self.n_times and not self._stop.is_set():
                due = min(int((local_clock() - self.t0) * self.sfreq) + 1, self.n_times)
                idx = np.arange(sent, max(due, sent))
                idx = idx[~self._lost[idx]]
                ts = self.t0 + idx / self.sfreq + self.offset[idx]
                runs = np.flatnonzero(np.abs(np.diff(ts) - 1 / self.sfreq) > 1e-9) + 1
                for run in np.split(np.arange(idx.size), runs):
                    if run.size:
                        self._outlet.push_rows(self._data[idx[run]],
                                               timestamp=float(ts[run[-1]]))
                        self.n_pushed += run.size
                sent = max(due, sent)
                self._stop.wait(self.chunk_s)
        except BaseException as err:  # thread boundary: re-raised by join()
            self.error = err

    @property
    def done(self) -> bool:
        """Whether every sample was produced (pushed or lost)."""
        return not self._thread.is_alive()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        if self.error is not None:
            raise RuntimeError(f"publisher failed: {self.error}") from self.error

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._outlet.close()


def paced_loop(sfreq: float, chunk: int, n_pulls: int, policy, *, recorder=None, **faults):
    """Run an :class:`OnlineLoop` on a :class:`FaultySource` paced by a :class:`FakeClock`.

    The source replays :func:`index_signal` of ``1 + (n_pulls - 1) * chunk`` samples (the first
    pull holds sample 0 alone) with ``faults`` (``jump=``, ``drop=``...); the clock advances one
    chunk per step. Windows of 0.25 s every 0.125 s; the safety gate lets every stimulus pass.
    Returns the closed loop (its ``stream`` too).
    """
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.safety import SafetyGate
    from bci.realtime.sources import ArraySource
    from bci.realtime.stream import Stream

    clock = FakeClock(50.0)
    inner = ArraySource(index_signal(1 + (n_pulls - 1) * chunk), sfreq, clock=clock)
    stream = Stream(FaultySource(inner, **faults), threaded=False, stall_s=60.0)
    loop = OnlineLoop(stream, window_s=0.25, step_s=0.125, policy=policy, recorder=recorder,
                      safety=SafetyGate(min_interval_s=0.0, max_per_minute=None,
                                        max_per_session=None))
    stream.start()
    for _ in range(n_pulls):
        loop.step()
        clock.advance(chunk / sfreq)
    loop.close()
    return loop


def play_process(fif, name: str, *extra: str) -> subprocess.Popen:
    """Start ``bci play FIF --name NAME [EXTRA...]`` in a subprocess (pipes captured).

    Stop it with ``terminate()`` and ``communicate(timeout=10)`` so its pipes are closed.
    """
    return subprocess.Popen([sys.executable, "-m", "bci.cli", "play", str(fif), "--name", name,
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=os.environ.copy())


@contextlib.contextmanager
def playing(fif, name: str, *extra: str) -> Iterator[subprocess.Popen]:
    """Run :func:`play_process` for the ``with`` block, then stop it and close its pipes."""
    player = play_process(fif, name, *extra)
    try:
        yield player
    finally:
        player.terminate()
        player.communicate(timeout=10)
