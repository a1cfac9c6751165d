"""The stream: one acquisition thread filling a ring buffer from a source, watching its health.

:class:`Stream` pulls chunks from a :class:`~bci.realtime.sources.Source` into a
:class:`~bci.realtime.buffer.RingBuffer` and reports what goes wrong as
:class:`~bci.realtime.events.StreamEvent` s: timestamp gaps (samples lost), clock jumps, NaN
samples, flat channels, a stalled or lost source (reconnected, or the stream stops with a clear
message). With ``threaded=False`` nothing runs in the background: call :meth:`Stream.pump`
(tests, offline replays of the online code).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from .._logging import logger as _root_logger
from .buffer import RingBuffer
from .events import StreamEvent
from .sources import Source, SourceLostError

logger = _root_logger.getChild("realtime.stream")

ChunkListener = Callable[[np.ndarray, np.ndarray, int], None]
EventListener = Callable[[StreamEvent], None]


class Stream:
    """Acquire a source into a ring buffer, in a worker thread or on demand.

    Parameters
    ----------
    source : Source
        Where samples come from (:class:`~bci.realtime.lsl.LSLSource`,
        :class:`~bci.realtime.sources.ArraySource`...).
    buffer_s : float
        Ring-buffer length (s).
    threaded : bool
        Acquire in a background thread (live sessions); False: call :meth:`pump`.
    poll_s : float
        Worker's sleep (s) when a pull returned nothing.
    gap_tolerance : float
        A step between consecutive timestamps longer than ``gap_tolerance / sfreq`` is a gap;
        its lost samples are counted as ``round(step * sfreq) - 1``.
    clock_jump_s : float
        A step backwards, or forwards longer than this (s), is a clock jump (no samples are
        counted lost).
    flat_s : float
        A channel whose last ``flat_s`` seconds are constant is reported flat (0 disables).
    stall_s : float
        No sample for this long (s, source clock) is reported as a stall (once).
    reconnect_s : float
        After the source is lost, keep trying to reconnect for this long (s); then stop with
        an error (0: stop at once).
    max_pull : int
        Largest chunk (samples) pulled at once.

    Notes
    -----
    Errors of the worker thread (including a source that cannot reconnect) are stored and
    re-raised in the caller's thread by :meth:`check`, :meth:`get`, :meth:`wait` and
    :meth:`stop`. Use the stream as a context manager, or call :meth:`stop`.
    """

    def __init__(self, source: Source, *, buffer_s: float = 30.0, threaded: bool = True,
                 poll_s: float = 0.0005, gap_tolerance: float = 1.5, clock_jump_s: float = 5.0,
                 flat_s: float = 1.0, stall_s: float = 2.0, reconnect_s: float = 5.0,
                 max_pull: int = 4096) -> None:
        if buffer_s <= 0:
            raise ValueError(f"buffer_s must be positive (seconds), got {buffer_s}.")
        self.source = source
        self.info = source.info
        self.sfreq = float(source.info.sfreq)
        self.ch_names = list(source.info.ch_names)
        self.buffer_s = float(buffer_s)
        self.threaded = threaded
        self.poll_s = float(poll_s)
        self.gap_tolerance = float(gap_tolerance)
        self.clock_jump_s = float(clock_jump_s)
        self.flat_s = float(flat_s)
        self.stall_s = float(stall_s)
        self.reconnect_s = float(reconnect_s)
        self.max_pull = int(max_pull)
        n = max(int(np.ceil(self.buffer_s * self.sfreq)), 1)
        self._buffer = RingBuffer(len(self.ch_names), n)
        self._arrival = np.full(n, np.nan)  # source-clock time each sample was pulled
        self._cond = threading.Condition()
        self._chunk_listeners: list[ChunkListener] = []
        self._event_listeners: list[EventListener] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.running = False
        self.events: list[StreamEvent] = []
        self.n_lost = 0
        self.n_gaps = 0
        self.n_nan = 0
        self._last_ts: float | None = None
        self._last_data_time: float | None = None
        self._stalled = False
        self._flat: set[str] = set()
        self._next_flat_check = 0

    # --------------------------------------------------------------------- lifecycle
    def start(self) -> Stream:
        """Start acquiring (the worker thread when ``threaded``); returns self."""
        if self.running:
            raise RuntimeError("The stream is already running.")
        self._stop.clear()
        self._error = None
        self.running = True
        if self.threaded:
            self._thread = threading.Thread(target=self._work, name="bci-stream", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop acquiring, join the worker, close the source; re-raises a worker error."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.running = False
        self.source.close()
        with self._cond:
            self._cond.notify_all()
        self.check()

    def __enter__(self) -> Stream:
        if not self.running:
            self.start()
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None and self._error is not None:
            logger.error("Stream %r: worker error during another error: %s", self.info.name,
                         self._error)
            self._error = None  # do not mask the exception in flight
        self.stop()

    def add_chunk_listener(self, fn: ChunkListener) -> None:
        """Call ``fn(data, timestamps, first_index)`` with every chunk, in the acquiring thread
        (e.g. a recorder). An exception in ``fn`` stops the stream and is re-raised.
        """
        self._chunk_listeners.append(fn)

    def add_event_listener(self, fn: EventListener) -> None:
        """Call ``fn(event)`` with every :class:`StreamEvent`, in the acquiring thread."""
        self._event_listeners.append(fn)

    def check(self) -> None:
        """Re-raise, in the caller's thread, an error the worker thread stored."""
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"The stream {self.info.name!r} stopped: {error}") from error

    # --------------------------------------------------------------------- acquisition
    def now(self) -> float:
        """Current time (s) on the source's clock."""
        return self.source.now()

    def pump(self) -> int:
        """Pull everything available now into the buffer; returns the number of new samples.

        With ``threaded=True`` the worker calls this; calling it yourself raises.
        """
        if self.threaded and threading.current_thread() is not self._thread:
            raise RuntimeError("pump() is for threaded=False streams; this one acquires in "
                               "its own thread.")
        if not self.running:
            raise RuntimeError("Start the stream first (stream.start() or `with stream:`).")
        total = 0
        while True:
            try:
                data, ts = self.source.pull(self.max_pull)
            except SourceLostError as err:
                self._handle_lost(err)
                break
            n = len(ts)
            if n == 0:
                break
            self._ingest(data, ts)
            total += n
            if n < self.max_pull:
                break
        if total == 0:
            self._check_stall()
        return total

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                if self.pump() == 0:
                    self._stop.wait(self.poll_s)
        except BaseException as err:  # thread boundary: stored, re-raised by check()
            logger.error("Stream %r worker failed: %s", self.info.name, err)
            self._error = err
            self.running = False
            self._emit(StreamEvent("stopped", self._last_ts or float("nan"),
                                   self._buffer.n_written, {"error": str(err)}, str(err)))
            with self._cond:
                self._cond.notify_all()

    def _ingest(self, data: np.ndarray, ts: np.ndarray) -> None:
        arrival = self.source.now()
        first = self._buffer.n_written
        self._check_timestamps(ts, first)
        bad = ~np.isfinite(data)
        if bad.any():
            chans = [self.ch_names[i] for i in np.flatnonzero(bad.any(axis=1))]
            self.n_nan += int(bad.any(axis=0).sum())
            self._emit(StreamEvent("nan", float(ts[0]), first,
                                   {"n_samples": int(bad.any(axis=0).sum()), "channels": chans},
                                   f"{int(bad.sum())} NaN/inf values on {chans[:5]}"))
        with self._cond:
            self._buffer.write(data, ts)
            n = len(ts)
            start = first % self._buffer.n_samples
            stop = start + min(n, self._buffer.n_samples)
            if stop <= self._buffer.n_samples:
                self._arrival[start:stop] = arrival
            else:
                self._arrival[start:] = arrival
                self._arrival[:stop - self._buffer.n_samples] = arrival
            self._cond.notify_all()
        self._last_ts = float(ts[-1])
        self._last_data_time = arrival
        self._stalled = False
        for fn in self._chunk_listeners:
            fn(data, ts, first)
        if self.flat_s > 0 and self._buffer.n_written >= self._next_flat_check:
            self._check_flat()

    def _check_timestamps(self, ts: np.ndarray, first: int) -> None:
        steps = np.diff(ts) if self._last_ts is None else np.diff(ts, prepend=self._last_ts)
        offset = 1 if self._last_ts is None else 0
        period = 1.0 / self.sfreq
        odd = np.flatnonzero((steps > self.gap_tolerance * period) | (steps <= 0))
        for k in odd:
            step = float(steps[k])
            index = first + int(k) + offset
            t = float(ts[k + offset])
            if step <= 0 or step > self.clock_jump_s:
                self._emit(StreamEvent("clock_jump", t, index, {"step_s": step},
                                       f"timestamps jumped by {step:+.3f} s"))
            else:
                n_lost = max(int(round(step * self.sfreq)) - 1, 1)
                self.n_lost += n_lost
                self.n_gaps += 1
                self._emit(StreamEvent("gap", t, index, {"n_lost": n_lost, "step_s": step},
                                       f"{n_lost} samples lost ({step * 1e3:.1f} ms gap)"))

    def _check_flat(self) -> None:
        n = int(round(self.flat_s * self.sfreq))
        self._next_flat_check = self._buffer.n_written + max(n // 2, 1)
        if self._buffer.n_available < n:
            return
        data, ts = self._buffer.get_last(n)
        flat = {self.ch_names[i] for i in np.flatnonzero(np.ptp(data, axis=1) == 0)}
        if flat - self._flat:
            new = sorted(flat - self._flat)
            self._emit(StreamEvent("flat", float(ts[-1]), self._buffer.n_written,
                                   {"channels": new}, f"flat for {self.flat_s:g} s: {new[:5]}"))
        if self._flat - flat:
            back = sorted(self._flat - flat)
            self._emit(StreamEvent("flat_end", float(ts[-1]), self._buffer.n_written,
                                   {"channels": back}, f"no longer flat: {back[:5]}"))
        self._flat = flat

    def _check_stall(self) -> None:
        if self._last_data_time is None or self._stalled or self.stall_s <= 0:
            return
        quiet = self.source.now() - self._last_data_time
        if quiet > self.stall_s:
            self._stalled = True
            self._emit(StreamEvent("stall", self._last_ts or float("nan"),
                                   self._buffer.n_written, {"quiet_s": quiet},
                                   f"no samples for {quiet:.1f} s"))

    def _handle_lost(self, err: SourceLostError) -> None:
        index = self._buffer.n_written
        self._emit(StreamEvent("lost", self._last_ts or float("nan"), index, {"error": str(err)},
                               f"source lost: {err}"))
        deadline = time.monotonic() + self.reconnect_s
        last: BaseException = err
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                self.source.reconnect()
            except (SourceLostError, RuntimeError) as again:
                last = again
                self._stop.wait(min(0.2, self.reconnect_s))
                continue
            self._emit(StreamEvent("reconnected", self._last_ts or float("nan"), index, {},
                                   "source reconnected"))
            return
        raise SourceLostError(
            f"the source {self.info.name!r} was lost after {index} samples and did not come "
            f"back within reconnect_s={self.reconnect_s:g} s ({last}); everything received "
            "so far is kept. Restart the device or player, then start a new session."
        ) from err

    def _emit(self, event: StreamEvent) -> None:
        self.events.append(event)
        level = 30 if event.kind in ("gap", "clock_jump", "lost", "stall", "stopped") else 20
        if event.kind == "nan" and self.n_nan > 1000:
            level = 10  # rate-limit: a NaN burst is reported once loudly
        logger.log(level, "Stream %r: %s", self.info.name, event.message or event.kind)
        for fn in self._event_listeners:
            fn(event)

    # --------------------------------------------------------------------- reading
    @property
    def n_written(self) -> int:
        """Samples received so far (absolute index of the next sample)."""
        return self._buffer.n_written

    @property
    def n_buffer(self) -> int:
        """Ring-buffer capacity (samples)."""
        return self._buffer.n_samples

    def get(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy of samples ``start <= i < stop`` (absolute indices) and their timestamps."""
        self.check()
        with self._cond:
            return self._buffer.get(start, stop)

    def get_last(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy of the newest ``n`` samples and their timestamps."""
        self.check()
        with self._cond:
            return self._buffer.get_last(n)

    def arrival_time(self, index: int) -> float:
        """Source-clock time (s) at which sample ``index`` was pulled."""
        return float(self._arrival[index % self._buffer.n_samples])

    def wait(self, n_written: int, timeout_s: float) -> bool:
        """Block until more than ``n_written`` samples were received or ``timeout_s`` passed.

        Returns whether new samples are there; re-raises a worker error.
        """
        with self._cond:
            if self._buffer.n_written <= n_written and self.running:
                self._cond.wait(timeout_s)
            fresh = self._buffer.n_written > n_written
        self.check()
        return fresh

    @property
    def flat_channels(self) -> list[str]:
        """Channels flat now."""
        return sorted(self._flat)
