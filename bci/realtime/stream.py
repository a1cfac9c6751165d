"""The stream: one acquisition thread filling a ring buffer from a source, watching its health.

:class:`Stream` pulls chunks from a :class:`~bci.realtime.sources.Source` into a
:class:`~bci.realtime.buffer.RingBuffer` and reports what goes wrong as
:class:`~bci.realtime.events.StreamEvent` s: timestamp gaps (samples lost), clock jumps, NaN
samples, flat channels, a stalled or lost source (reconnected, or the stream stops with a clear
message). With ``threaded=False`` nothing runs in the background: call :meth:`Stream.pump`
(tests, offline replays of the online code).

A step in the timestamps is either samples lost or the source's clock jumping (a device clock
corrected by NTP): the stream tells them apart by the arrival clock (:meth:`Source.now
<bci.realtime.sources.Source.now>`), since samples that keep arriving at the nominal rate
were not lost.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from .._checks import check_bool, check_positive, check_real, ensure_int
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
        A step between consecutive timestamps longer than ``gap_tolerance / sfreq`` (or not
        forward) is a discontinuity: lost samples, or a clock jump.
    clock_jump_s : float
        Forward steps longer than this (s) make the :class:`~bci.realtime.loop.OnlineLoop`
        start its windows afresh after them (a window across so long a step is not worth
        deciding on), whether they are lost samples or a clock jump. It does not decide which
        they are (see Notes).
    min_clock_jump_s : float
        A forward step must exceed this (s) to be taken for a clock jump; shorter ones are
        always lost samples (the arrival clock cannot resolve them, and clocks are corrected
        by slewing, not steps, below ~0.1 s).
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
    **Lost samples or a clock jump.** A forward step of ``step`` s between two samples leaves
    ``round(step * sfreq) - 1`` samples missing if the samples were lost: then nothing arrived
    for that long, and the newest sample's latency (arrival time on :meth:`now` minus its
    timestamp) is what it was before. If instead the source's clock jumped, the samples kept
    arriving at the nominal rate and the latency dropped by the jump. Each discontinuity is
    classified so, with the newest sample of the :meth:`pump` that brought it, against the
    median latency of the previous pumps (0 before the first: by the
    :class:`~bci.realtime.sources.Source` contract timestamps are on the clock of
    :meth:`now`, where a sample arrives just after it is stamped). A ``gap`` event counts its
    lost samples (:attr:`n_lost`); a ``clock_jump`` event gives its size
    (``detail["jump_s"]``, the step minus one sample period) and loses nothing. A backward
    step is always a clock jump.
    After a clock jump, :meth:`clock_offset` says by how much the timestamps moved: latencies
    are measured on ``timestamp - clock_offset(index)`` (the latency reference re-anchored),
    so that they stay true for the rest of the session. A step smaller than
    ``min_clock_jump_s`` is always lost samples. Timestamps must keep their steps sharp:
    :class:`~bci.realtime.lsl.LSLSource` dejitters with a
    :class:`~bci.realtime.sources.Dejitterer`, which does (liblsl's dejitter does not).
    Without a paced clock (an :class:`~bci.realtime.sources.ArraySource` without ``clock``),
    arrival follows the timestamps and every forward step counts as lost samples.

    Errors of the worker thread (including a source that cannot reconnect) are stored and
    re-raised in the caller's thread by :meth:`check`, :meth:`get`, :meth:`wait` and
    :meth:`stop`. Use the stream as a context manager, or call :meth:`stop`.
    """

    def __init__(self, source: Source, *, buffer_s: float = 30.0, threaded: bool = True,
                 poll_s: float = 0.0005, gap_tolerance: float = 1.5, clock_jump_s: float = 5.0,
                 min_clock_jump_s: float = 0.1, flat_s: float = 1.0, stall_s: float = 2.0,
                 reconnect_s: float = 5.0, max_pull: int = 4096) -> None:
        if not isinstance(source, Source):
            raise TypeError(f"source must be a bci.realtime.sources.Source (LSLSource, "
                            f"ArraySource...), got {type(source).__name__}.")
        self.source = source
        self.info = source.info
        self.sfreq = float(source.info.sfreq)
        self.ch_names = list(source.info.ch_names)
        # None: unknown (LSL streams whose description lists no MNE type a channel)
        self.ch_types = getattr(source.info, "ch_types", None)
        self.buffer_s = check_positive(buffer_s, "buffer_s", unit="s")
        self.threaded = check_bool(threaded, "threaded")
        self.poll_s = check_positive(poll_s, "poll_s", unit="s")
        self.gap_tolerance = check_real(gap_tolerance, "gap_tolerance", unit="sample periods",
                                        low=1.0, low_inclusive=False)
        self.clock_jump_s = check_positive(clock_jump_s, "clock_jump_s", unit="s")
        self.min_clock_jump_s = check_positive(min_clock_jump_s, "min_clock_jump_s", unit="s",
                                               allow_zero=True)
        self.flat_s = check_positive(flat_s, "flat_s", unit="s", allow_zero=True)
        self.stall_s = check_positive(stall_s, "stall_s", unit="s", allow_zero=True)
        self.reconnect_s = check_positive(reconnect_s, "reconnect_s", unit="s",
                                          allow_zero=True)
        self.max_pull = ensure_int(max_pull, "max_pull", minimum=1, what="samples")
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
        # clock jumps: where the timestamps moved (absolute index of the first sample after
        # each jump) and the total offset from there on (s)
        self._jump_index: list[int] = []
        self._jump_offset: list[float] = []
        self._latencies: deque[float] = deque(maxlen=32)  # newest-sample latency, per pump
        self._pending: list[tuple[int, float, float]] = []  # (index, time, step) to classify
        self._n_checked = 0  # samples whose discontinuities are classified (n_written)

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
        """Start acquiring (unless running already); returns self."""
        if not self.running:
            self.start()
        return self

    def __exit__(self, exc_type, *_) -> None:
        """Stop (see :meth:`stop`); a worker error does not mask an exception in flight."""
        if exc_type is not None and self._error is not None:
            logger.error("Stream %r: worker error during another error: %s", self.info.name,
                         self._error)
            self._error = None  # do not mask the exception in flight
        self.stop()

    def add_chunk_listener(self, fn: ChunkListener) -> None:
        """Call ``fn(data, timestamps, first_index)`` with every chunk, in the acquiring thread.

        E.g. a recorder. An exception in ``fn`` stops the stream and is re-raised.
        """
        self._chunk_listeners.append(fn)

    def add_event_listener(self, fn: EventListener) -> None:
        """Call ``fn(event)`` with every :class:`StreamEvent`, in the acquiring thread."""
        self._event_listeners.append(fn)

    def check_channel_types(self, decoder: Any) -> None:
        """Refuse a decoder trained on other channel types than this stream's.

        A decoder file records the MNE type of each of its channels (``info["ch_types"]``); a
        gradiometer decoder given magnetometers (T instead of T/m, another pattern) would
        decode nonsense without any amplitude alarm. Checked when both the decoder and the
        source know the types: sources built from MNE recordings, and LSL streams whose XML
        description gives every channel an MNE type (``desc/channels/channel/type``, as
        ``bci play`` writes them). Decoder files from before bci recorded the types, and LSL
        streams without them (or with types MNE does not know, e.g. ``"EXG"``), are not
        checked.

        Parameters
        ----------
        decoder : Decoder
            Its ``ch_names`` must be in the stream (``check_decoder`` checks that first).

        Raises
        ------
        ValueError
            A decoder channel whose type in the stream differs; the message names it.
        """
        trained = (getattr(decoder, "info", None) or {}).get("ch_types")
        if trained is None or self.ch_types is None:
            return
        from ..data.channel_types import check_stream_types

        names = [c for c in decoder.ch_names if c in self.ch_names]
        streamed = [self.ch_types[self.ch_names.index(c)] for c in names]
        check_stream_types([trained[decoder.ch_names.index(c)] for c in names], streamed, names)

    def check(self) -> None:
        """Re-raise, in the caller's thread, an error the worker thread stored."""
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"The stream {self.info.name!r} stopped: {error}") from error

    # --------------------------------------------------------------------- acquisition
    def now(self) -> float:
        """Return the current time (s) on the source's arrival clock (:meth:`Source.now`).

        It does not jump with the timestamps: compare it with
        ``timestamp - clock_offset(index)``.
        """
        return self.source.now()

    def clock_offset(self, index: int | None = None) -> float:
        """How far (s) the source's clock had jumped, in all, when sample ``index`` was stamped.

        0 until a ``clock_jump``; the sum of the jumps before ``index`` (absolute sample
        index; the newest sample when None). ``timestamp - clock_offset(index)`` is the sample's
        time on the clock it was stamped with before any jump, the reference of latencies
        (:meth:`now` minus it is the sample's age).
        """
        if not self._jump_index:
            return 0.0
        if index is None:
            return self._jump_offset[-1]
        k = bisect.bisect_right(self._jump_index, int(index))
        return self._jump_offset[k - 1] if k else 0.0

    def clock_offsets(self, start: int, stop: int) -> np.ndarray:
        """:meth:`clock_offset` of every sample ``start .. stop - 1`` (s), as one array.

        ``timestamps - clock_offsets(start, stop)`` are the samples' times on the source's
        clock before any jump: steps in them are gaps (lost samples), never clock jumps.
        """
        index = list(self._jump_index)  # the worker appends offsets before indices
        if not index:
            return np.zeros(max(stop - start, 0))
        offsets = np.concatenate([[0.0], self._jump_offset[: len(index)]])
        return offsets[np.searchsorted(index, np.arange(start, stop), side="right")]

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
        fresh: tuple[float, float] | None = None  # (arrival, timestamp) of the newest sample
        try:
            while True:
                try:
                    data, ts = self.source.pull(self.max_pull)
                except SourceLostError as err:
                    self._handle_lost(err)
                    break
                n = len(ts)
                if n == 0:
                    break
                fresh = (self._ingest(data, ts), float(ts[-1]))
                total += n
                if n < self.max_pull:
                    break
        finally:
            if fresh is not None:
                self._classify(*fresh)
            if total:
                with self._cond:
                    self._n_checked = self._buffer.n_written
                    self._cond.notify_all()
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

    def _ingest(self, data: np.ndarray, ts: np.ndarray) -> float:
        """Check and store one pulled chunk; returns its arrival time (:meth:`now`)."""
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
        self._last_ts = float(ts[-1])
        self._last_data_time = arrival
        self._stalled = False
        for fn in self._chunk_listeners:
            fn(data, ts, first)
        if self.flat_s > 0 and self._buffer.n_written >= self._next_flat_check:
            self._check_flat()
        return arrival

    def _check_timestamps(self, ts: np.ndarray, first: int) -> None:
        """Note the discontinuities of a chunk; :meth:`_classify` decides what they are."""
        steps = np.diff(ts) if self._last_ts is None else np.diff(ts, prepend=self._last_ts)
        offset = 1 if self._last_ts is None else 0
        odd = np.flatnonzero((steps > self.gap_tolerance / self.sfreq) | (steps <= 0))
        for k in odd:
            self._pending.append((first + int(k) + offset, float(ts[k + offset]),
                                  float(steps[k])))

    def _classify(self, arrival: float, t_newest: float) -> None:
        """Report the pending discontinuities as lost samples or clock jumps.

        ``arrival`` and ``t_newest`` are the arrival time and timestamp of the newest sample
        received; its latency, against the median of earlier pumps', says how far the
        timestamps ran ahead of the arrival clock in between: by the sum of the clock jumps.
        """
        pending, self._pending = self._pending, []
        period = 1.0 / self.sfreq
        excess = [step - period for _, _, step in pending]
        base = self.clock_offset()  # before the pending jumps
        jumps = {i for i, (_, _, step) in enumerate(pending) if step <= 0}
        candidates = [i for i, e in enumerate(excess)
                      if i not in jumps and e > self.min_clock_jump_s]
        change = None
        if pending:
            # before any pump measured it, the latency is taken as 0: by the Source contract
            # timestamps are on the clock of now(), where a sample arrives after it is stamped
            reference = float(np.median(self._latencies)) if self._latencies else 0.0
            change = (arrival - (t_newest - base)) - reference
            if candidates and len(candidates) <= 12:
                # which forward steps, with the backward ones, add up to the latency's change?
                known = sum(excess[i] for i in jumps)
                best = min((subset for r in range(len(candidates) + 1)
                            for subset in itertools.combinations(candidates, r)),
                           key=lambda sub: (abs(change + known + sum(excess[i] for i in sub)),
                                            len(sub)))
                jumps |= set(best)
        total = base
        for i, (index, t, step) in enumerate(pending):
            if i in jumps:
                total += excess[i]
                self._jump_offset.append(total)  # before the index: readers bisect indices
                self._jump_index.append(index)
                detail = {"jump_s": excess[i], "step_s": step, "latency_change_s": change}
                self._emit(StreamEvent(
                    "clock_jump", t, index, detail,
                    f"the source's clock jumped by {excess[i]:+.3f} s (samples kept arriving; "
                    "none lost)"))
            else:
                n_lost = max(int(round(step * self.sfreq)) - 1, 1)
                self.n_lost += n_lost
                self.n_gaps += 1
                self._emit(StreamEvent("gap", t, index, {"n_lost": n_lost, "step_s": step},
                                       f"{n_lost} samples lost ({step * 1e3:.1f} ms gap)"))
        self._latencies.append(arrival - (t_newest - total))

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
        """Samples received so far (absolute index of the next sample).

        Counted once a :meth:`pump` has checked them (gaps and clock jumps classified), so
        that a reader never sees a sample whose discontinuity is not reported yet.
        """
        return self._n_checked

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
            return self._buffer.get(self._n_checked - n, self._n_checked)

    def arrival_time(self, index: int) -> float:
        """Source-clock time (s) at which sample ``index`` was pulled."""
        return float(self._arrival[index % self._buffer.n_samples])

    def wait(self, n_written: int, timeout_s: float) -> bool:
        """Block until more than ``n_written`` samples were received or ``timeout_s`` passed.

        Returns whether new samples are there; re-raises a worker error.
        """
        with self._cond:
            if self._n_checked <= n_written and self.running:
                self._cond.wait(timeout_s)
            fresh = self._n_checked > n_written
        self.check()
        return fresh

    @property
    def flat_channels(self) -> list[str]:
        """Channels flat now."""
        return sorted(self._flat)
