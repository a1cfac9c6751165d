"""The online loop: causal processing, sliding windows, decoding, policy, safety, stimulation.

:class:`OnlineLoop` takes a :class:`~bci.realtime.stream.Stream` and, for each window of
``window_s`` ending every ``step_s`` (on the source's timestamps), runs the decoder (a
:class:`~bci.models.decoder.Decoder` from ``bci.load_decoder``, or none), asks the policy
whether to stimulate, lets the :class:`~bci.realtime.safety.SafetyGate` veto, triggers the
stimulator and records everything. Each :class:`~bci.realtime.events.Decision` carries its
window's timestamps and its latency breakdown (ms): ``acquire`` (the window's last sample, from
its timestamp to its arrival in the buffer: transport and device chunking), ``wait`` (from its
arrival to the loop starting on it: wake-up, or queueing behind a slow decoder), ``process``,
``decode``, ``act`` (policy, safety, stimulator, markers) and ``end_to_end`` (from the sample's
timestamp to the end of ``act``).

What goes wrong is recorded, never a crash without a summary: a decoder that raises or hangs, a
policy or stimulator that raises (the session stops, or goes on with ``on_fault="continue"``),
a stream that is lost, a disk that fills up (the recording stops with its files whole and the
session ends); :meth:`OnlineLoop.run` always returns, and records, its summary.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal

import numpy as np

from .._checks import check_bool, check_option, check_positive, check_type, ensure_int
from .._logging import logger as _root_logger
from .buffer import RingBuffer
from .events import Decision, StimEvent, StimRequest, StreamEvent
from .policies import Policy
from .processing import ProcessingChain
from .recording import Recorder, RecordingError
from .safety import SafetyGate
from .stimulation import Stimulator
from .stream import Stream

logger = _root_logger.getChild("realtime.loop")

STAGES = ("acquire", "wait", "process", "decode", "act", "end_to_end")

#: What the loop does when a policy, stimulator or marker outlet raises (see :class:`OnlineLoop`).
ON_FAULT = ("stop", "continue")


def check_decoder(decoder: Any, ch_names: list[str], sfreq: float,
                  rtol: float = 1e-3) -> np.ndarray:
    """Check a decoder against a stream; return the rows of its channels in the stream.

    Parameters
    ----------
    decoder : Decoder
        Needs ``ch_names``, ``sfreq``, ``n_times``, ``classes`` and ``predict_proba``.
    ch_names : list of str
        The stream's channels.
    sfreq : float
        The stream's rate (Hz).
    rtol : float
        Tolerated relative rate difference.

    Raises
    ------
    ValueError
        Channels missing from the stream, or another sampling rate.
    """
    for attr in ("ch_names", "sfreq", "n_times", "classes", "predict_proba"):
        if not hasattr(decoder, attr):
            raise TypeError(f"The decoder ({type(decoder).__name__}) lacks {attr!r}; load one "
                            "with bci.load_decoder(path).")
    missing = [c for c in decoder.ch_names if c not in ch_names]
    if missing:
        raise ValueError(
            f"The stream lacks {len(missing)} of the decoder's {len(decoder.ch_names)} "
            f"channels: {missing[:10]}{' ...' if len(missing) > 10 else ''}. The stream has "
            f"{ch_names[:10]}{' ...' if len(ch_names) > 10 else ''}. Stream a device with "
            "these channels (same names), or train a decoder on the stream's channels."
        )
    if abs(decoder.sfreq - sfreq) > rtol * decoder.sfreq:
        raise ValueError(
            f"The decoder was trained at {decoder.sfreq:g} Hz but the stream runs at "
            f"{sfreq:g} Hz; set the device to {decoder.sfreq:g} Hz or train a decoder at "
            f"{sfreq:g} Hz."
        )
    return np.array([ch_names.index(c) for c in decoder.ch_names])


class OnlineLoop:
    """Run decoder + policy + safety + stimulator on sliding windows of a stream.

    Parameters
    ----------
    stream : Stream
        The (not yet started) stream; the loop starts and stops it.
    decoder : Decoder | None
        A decoder from :func:`bci.load_decoder` (checked against the stream: channels, rate,
        window length); None for signal-only policies (e.g. an oscillation trigger).
    window_s : float | None
        Window length (s); the decoder's window when None.
    step_s : float
        Time (s, source timestamps) between window ends.
    processing : ProcessingChain | None
        Causal processing of every channel, applied to each new chunk.
    decoder_input : {"raw", "processed"}
        Whether the decoder gets raw windows (decoder files do their own filtering) or the
        processed ones.
    policy : Policy | None
        Turns decisions into stimulation requests (none: decode and record only).
    safety : SafetyGate | None
        Limits every stimulus must pass (default limits when None).
    stimulator : Stimulator | None
        Back-end that delivers stimuli (e.g. :class:`bci.hw.LSLMarkerStimulator`); None: a
        dry run (stimuli are decided and recorded, nothing is sent).
    recorder : Recorder | None
        Records every sample and event.
    markers : object | None
        Publisher with ``push(str)`` (e.g. :class:`~bci.realtime.lsl.MarkerOutlet`) to which
        every decision is sent as ``"decision/<label>/<score>"``.
    decode_timeout_s : float | None
        Run the decoder in a helper thread and give up on a window after this long (s); a
        hung decoder then costs decisions, not the session. None: decode inline.
    max_faults : int
        Stop the session cleanly after this many consecutive decoder failures (raised,
        timed out, busy).
    catch_up : bool
        Decide on every window even when late (offline replays); False: when several windows
        are due, only the newest is decoded and the others are counted as skipped.
    blas_threads : int | None
        BLAS/OpenMP threads while :meth:`run` runs (restored after). 1 (default) avoids the
        oversubscription that makes linear algebra 10x slower on a few busy cores; None
        leaves the process's setting.
    on_fault : {"stop", "continue"}
        What an exception raised by the policy, the stimulator or the marker outlet does. It
        is always recorded as a fault (``policy_error``, ``stimulator_error``,
        ``markers_error``); ``"stop"`` (default) then ends the session cleanly (stimulating on
        after a broken policy or device is not safe by default); ``"continue"`` goes on, and
        only ``max_faults`` consecutive faults end the session.

    Notes
    -----
    Every duration must be a finite number > 0 (``window_s``, ``step_s``,
    ``decode_timeout_s``; NaN or inf is refused: a NaN step would silently stop deciding).
    ``recorder`` may also be set after construction, before :meth:`run`. A recording that
    fails (disk full) stops the session, with the files whole (see
    :class:`~bci.realtime.recording.Recorder`) and the summary written in the space held back
    for it.
    """

    def __init__(self, stream: Stream, decoder: Any = None, *, window_s: float | None = None,
                 step_s: float = 0.1, processing: ProcessingChain | None = None,
                 decoder_input: Literal["raw", "processed"] = "raw",
                 policy: Policy | None = None, safety: SafetyGate | None = None,
                 stimulator: Stimulator | None = None, recorder: Recorder | None = None,
                 markers: Any = None, decode_timeout_s: float | None = None,
                 max_faults: int = 5, catch_up: bool = False,
                 blas_threads: int | None = 1,
                 on_fault: Literal["stop", "continue"] = "stop") -> None:
        check_type(stream, Stream, "stream")
        self.stream = stream
        self.sfreq = stream.sfreq
        self.ch_names = stream.ch_names
        self.decoder = decoder
        step_s = check_positive(step_s, "step_s", unit="s")
        if window_s is not None:
            window_s = check_positive(window_s, "window_s", unit="s")
        check_option("decoder_input", decoder_input, ("raw", "processed"))
        check_type(policy, (Policy, type(None)), "policy")
        check_type(safety, (SafetyGate, type(None)), "safety")
        check_type(stimulator, (Stimulator, type(None)), "stimulator")
        check_type(recorder, (Recorder, type(None)), "recorder")
        if decode_timeout_s is not None:
            decode_timeout_s = check_positive(decode_timeout_s, "decode_timeout_s", unit="s")
        max_faults = ensure_int(max_faults, "max_faults", minimum=1, what="consecutive faults")
        catch_up = check_bool(catch_up, "catch_up")
        if blas_threads is not None:
            blas_threads = ensure_int(blas_threads, "blas_threads", minimum=1, what="threads")
        self.on_fault = check_option("on_fault", on_fault, ON_FAULT)
        if decoder is not None:
            self._picks = check_decoder(decoder, self.ch_names, self.sfreq)
            if hasattr(stream, "check_channel_types"):  # a Stream (not a test double)
                stream.check_channel_types(decoder)
            n_window = int(decoder.n_times)
            if window_s is not None and int(round(window_s * self.sfreq)) != n_window:
                raise ValueError(
                    f"window_s={window_s} s is {int(round(window_s * self.sfreq))} samples but "
                    f"the decoder takes {n_window} ({decoder.tmin:g}-{decoder.tmax:g} s at "
                    f"{decoder.sfreq:g} Hz); leave window_s=None to use the decoder's."
                )
        else:
            if window_s is None:
                raise ValueError("window_s must be positive (seconds) without a decoder, got "
                                 "None; give the window length, e.g. window_s=0.5.")
            self._picks = None
            n_window = max(int(round(window_s * self.sfreq)), 1)
        if n_window > stream.n_buffer:
            raise ValueError(f"The window ({n_window} samples) is longer than the stream's "
                             f"buffer ({stream.n_buffer}); raise buffer_s.")
        self.n_window = n_window
        self.window_s = n_window / self.sfreq
        self.step_s = float(step_s)
        self.processing = processing if processing is not None else ProcessingChain()
        self.decoder_input = decoder_input
        self.policy = policy
        self.safety = safety if safety is not None else SafetyGate()
        self.stimulator = stimulator
        self.recorder = recorder
        self.markers = markers
        self.decode_timeout_s = decode_timeout_s
        self.max_faults = int(max_faults)
        self.catch_up = catch_up
        self.blas_threads = blas_threads
        self._limiter = None
        if policy is not None:  # refuses, before the session, a target the decoder lacks
            policy.bind(classes=getattr(decoder, "classes", None), ch_names=self.ch_names,
                        sfreq=self.sfreq)
        self._processed = RingBuffer(len(self.ch_names), stream.n_buffer)
        self._executor: ThreadPoolExecutor | None = None
        self._future = None
        self._next_end: float | None = None
        self._last_ts: float | None = None
        self._process_ms = 0.0
        self._pending: StimRequest | None = None
        self._step_start = 0.0
        self._window_origin = 0
        self._last_end = -1
        self._stop_requested = False
        self.decisions: list[Decision] = []
        self.stim_events: list[StimEvent] = []
        self.latencies: dict[str, list[float]] = {s: [] for s in STAGES}
        self.stim_latency_ms: list[float] = []
        self.faults: Counter[str] = Counter()
        self.n_skipped = 0
        self._consecutive_faults = 0
        self._step_faulted = False
        self.stopped_reason = ""
        self.started_at: float | None = None
        self.wall_s = 0.0
        self.recording_error: RecordingError | None = None
        self.summary_written: bool | None = None
        # delivery as far as the stimulator can know it (LSL: a consumer was connected)
        self.consumers_at_start: bool | None = None
        self.consumers_at_end: bool | None = None
        self.stim_delivery: Counter[str] = Counter()
        #: Live monitor feed (:class:`~bci.realtime.monitor.MonitorFeed`, set by its ``bind``):
        #: gets every recorded event and, a few times a second, a snapshot; None: no monitor.
        self.monitor: Any = None
        stream.add_chunk_listener(self._record_chunk)
        stream.add_event_listener(self._record_stream_event)

    # ------------------------------------------------------------------ plumbing
    def _record_chunk(self, data: np.ndarray, timestamps: np.ndarray, first: int) -> None:
        """Chunk listener (acquisition thread): record; a failed recording stops the session."""
        if self.recorder is None or self.recording_error is not None:
            return
        try:
            self.recorder.write_chunk(data, timestamps, first)
        except RecordingError as err:
            self._recording_failed(err)

    def _record_event(self, kind: str, t: float, **fields: Any) -> None:
        """Write an event if recording; a failed write stops the session (never raises)."""
        if self.monitor is not None:
            self.monitor.on_event(kind, t, fields)
        if self.recorder is None or self.recorder.closed:
            return
        try:
            self.recorder.write_event(kind, t, **fields)
        except RecordingError as err:
            self._recording_failed(err)

    def _recording_failed(self, err: RecordingError) -> None:
        if self.recording_error is None:
            self.recording_error = err
            self.faults["recording_error"] += 1
            self.request_stop(f"recording failed: {err}")

    def _record_stream_event(self, event: StreamEvent) -> None:
        self._record_event(event.kind, event.time, index=event.index,
                           description=event.message, **event.detail)

    def _fault(self, kind: str, t: float, message: str, *, consecutive: bool = True) -> None:
        self.faults[kind] += 1
        if consecutive:
            self._consecutive_faults += 1
            self._step_faulted = True
        logger.warning("Loop fault %s at t=%.3f s: %s", kind, t, message)
        self._record_event("fault", t, description=f"{kind}: {message}"[:300], fault=kind)
        if consecutive and self._consecutive_faults >= self.max_faults:
            if kind.startswith("decoder"):
                hint = "decoder faults", "check the decoder file against the stream"
            else:
                hint = "faults", "check the policy, stimulator and marker outlet"
            self.request_stop(f"{self._consecutive_faults} consecutive {hint[0]} (last: "
                              f"{kind}: {message}); {hint[1]}")

    def _plugin_fault(self, kind: str, t: float, err: BaseException) -> None:
        """Record the error of a policy, stimulator or marker outlet, then apply ``on_fault``."""
        message = f"{type(err).__name__}: {err}"
        self._fault(kind, t, message, consecutive=self.on_fault == "continue")
        if self.on_fault == "stop":
            self.request_stop(f"{kind}: {message} (on_fault='stop'; use on_fault='continue' "
                              "to go on after such errors)")

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step (thread-safe); ``reason`` is reported."""
        if not self.stopped_reason:
            self.stopped_reason = reason
        self._stop_requested = True

    # ------------------------------------------------------------------ one step
    def step(self) -> list[Decision]:
        """Process what arrived, decide on the windows that are due, fire due stimuli.

        With a ``threaded=False`` stream this pumps the source first. Returns the decisions
        made in this step.
        """
        if not self.stream.threaded:
            self.stream.pump()
        else:
            self.stream.check()
        made: list[Decision] = []
        self._step_start = self.stream.now()
        ends = self._process_new()
        if ends and not self.catch_up and len(ends) > 1:
            self.n_skipped += len(ends) - 1
            ends = ends[-1:]
        for end in ends:
            decision = self._decide(end)
            if decision is not None:
                made.append(decision)
            if self._stop_requested:
                break
        self._fire_due()
        if self.monitor is not None:
            self.monitor.publish(self, self._processed)
        return made

    def _process_new(self) -> list[int]:
        """Run the processing chain on the new samples; return the window ends now due."""
        start, stop = self._processed.n_written, self.stream.n_written
        if stop <= start:
            return []
        if start < stop - self.stream.n_buffer:  # fell behind the ring buffer
            lost = stop - self.stream.n_buffer - start
            self._fault("overrun", float("nan"), f"the loop fell {lost} samples behind the "
                        "stream buffer; raise buffer_s or lower the load", consecutive=False)
            pad = np.full((len(self.ch_names), lost), np.nan)
            self._processed.write(pad, np.full(lost, np.nan))
            start = self._processed.n_written
        data, ts = self.stream.get(start, stop)
        t0 = time.perf_counter()
        out = self.processing.process(data)
        self._process_ms = (time.perf_counter() - t0) * 1e3
        self._processed.write(out, ts)
        return self._window_ends(ts, start)

    def _window_ends(self, ts: np.ndarray, first: int) -> list[int]:
        # windows are scheduled on the source's clock before any jump (Stream.clock_offsets):
        # a clock jump moves every later timestamp but loses no sample, so it must neither
        # restart the windows nor make them look gapped; a long real gap still restarts them
        ts = ts - self.stream.clock_offsets(first, first + len(ts))
        half = 0.5 / self.sfreq
        prev = ts[0] if self._last_ts is None else self._last_ts
        steps = np.diff(ts, prepend=prev)
        jumps = np.flatnonzero((steps > self.stream.clock_jump_s)
                               | ((steps <= 0) & (np.arange(len(ts)) + first > 0)))
        if jumps.size:  # clock jump: windows restart after the (last) jump
            self._next_end = None
            self._window_origin = first + int(jumps[-1])
        if self._next_end is None:
            k = self._window_origin + self.n_window - 1 - first  # first full window's last sample
            if k >= len(ts):
                self._last_ts = float(ts[-1])
                return []
            self._next_end = float(ts[max(k, 0)])
        self._last_ts = float(ts[-1])
        ends = []
        while self._next_end <= ts[-1] + half:
            k = int(np.searchsorted(ts, self._next_end + half, side="right")) - 1
            if k >= 0 and (not ends or first + k > ends[-1]) and first + k > self._last_end:
                ends.append(first + k)  # after a gap several ends can fall on one sample
            self._next_end += self.step_s
        if ends:
            self._last_end = ends[-1]
        return ends

    def _decide(self, end: int) -> Decision | None:
        start = end + 1 - self.n_window
        if start < max(self._processed.oldest_index, self._window_origin):
            return None
        window, ts = self._processed.get(start, end + 1)
        t_start, t_end = float(ts[0]), float(ts[-1])
        decision = Decision(index=len(self.decisions), t_start=t_start, t_end=t_end,
                            stop_index=end + 1, window=window)
        t_ref = t_end - self.stream.clock_offset(end)  # latency reference, re-anchored after
        span = t_ref - (t_start - self.stream.clock_offset(start))  # the source's clock jumps
        decision.has_gap = bool(span > (self.n_window - 1 + 1.5) / self.sfreq)
        arrival = self.stream.arrival_time(end)
        acquire_ms = (arrival - t_ref) * 1e3
        wait_ms = max(self._step_start - arrival, 0.0) * 1e3
        proba, decode_ms = None, 0.0
        if self.decoder is not None:
            if self.decoder_input == "raw":
                raw, _ = self.stream.get(start, end + 1)
                x = raw[self._picks]
            else:
                x = window[self._picks]
            if not np.isfinite(x).all():
                self._fault("nan_window", t_end, "the window holds NaN/inf samples; decision "
                            "skipped", consecutive=False)
                return None
            t0 = time.perf_counter()
            proba = self._run_decoder(x, t_end)
            decode_ms = (time.perf_counter() - t0) * 1e3
            if proba is None:
                return None
            decision.proba = proba
            decision.label = str(self.decoder.classes[int(np.argmax(proba))])
        self._step_faulted = False
        t0 = time.perf_counter()
        request = None
        if self.policy is not None:
            try:
                request = self.policy.update(decision)
            except Exception as err:  # a policy's own error is a recorded fault, not a crash
                self._plugin_fault("policy_error", t_end, err)
        if request is not None:
            if request.at is None or self._due_in(request) <= 0:
                self._fire(request)
            else:
                self._pending = request
        if self.markers is not None:
            score = "" if decision.score is None else f"{decision.score:.4g}"
            try:
                self.markers.push(f"decision/{decision.label or ''}/{score}")
            except Exception as err:  # a broken marker outlet is a recorded fault
                self._plugin_fault("markers_error", t_end, err)
        if not self._step_faulted:
            self._consecutive_faults = 0
        act_ms = (time.perf_counter() - t0) * 1e3
        e2e_ms = (self.stream.now() - t_ref) * 1e3
        decision.latency_ms = {"acquire": acquire_ms, "wait": wait_ms,
                               "process": self._process_ms,
                               "decode": decode_ms, "act": act_ms, "end_to_end": e2e_ms}
        for stage, value in decision.latency_ms.items():
            self.latencies[stage].append(value)
        self._record_event(
            "decision", t_end, index=end, description=decision.label or "window",
            proba=None if proba is None else [round(float(p), 5) for p in proba],
            score=decision.score, latency_ms={k: round(v, 4) for k, v in
                                              decision.latency_ms.items()})
        decision.window = None  # do not keep every window in memory
        self.decisions.append(decision)
        return decision

    def _run_decoder(self, x: np.ndarray, t: float) -> np.ndarray | None:
        def call():
            return np.asarray(self.decoder.predict_proba(x[np.newaxis]), dtype=float)[0]

        try:
            if self.decode_timeout_s is None:
                return call()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="bci-decoder")
            if self._future is not None and not self._future.done():
                self._fault("decoder_busy", t, "the decoder is still busy with an earlier "
                            "window; decision skipped")
                return None
            self._future = self._executor.submit(call)
            return self._future.result(timeout=self.decode_timeout_s)
        except FutureTimeout:
            self._fault("decoder_timeout", t, f"no answer within {self.decode_timeout_s:g} s")
        except Exception as err:  # a decoder's own error is a fault, not a crash
            self._fault("decoder_error", t, f"{type(err).__name__}: {err}")
        return None

    def _fire_due(self) -> None:
        if self._pending is not None and self._due_in(self._pending) <= 0:
            request, self._pending = self._pending, None
            self._fire(request)

    def _due_in(self, request: StimRequest) -> float:
        """Return the seconds until a timed request is due.

        Its ``at`` is a source timestamp, re-anchored to the arrival clock after the source's
        clock jumps.
        """
        return request.at - self.stream.clock_offset() - self.stream.now()

    def _fire(self, request: StimRequest) -> None:
        now = self.stream.now()
        verdict = self.safety.allow(now)
        if not verdict:
            logger.info("Stimulus suppressed (%s) at t=%.3f s", verdict.reason, now)
            self._record_event("suppressed", now, index=self.stream.n_written - 1,
                               description=verdict.reason, request=request.reason,
                               code=request.code)
            return
        event = StimEvent(index=len(self.stim_events), code=request.code,
                          t_trigger=request.t_trigger, reason=request.reason)
        consumer = None
        if self.stimulator is not None:
            try:
                consumer = self.stimulator.has_consumers  # before sending: was it received?
                self.stimulator.trigger(event)
            except Exception as err:  # a failing device is a recorded fault, never ignored
                self._plugin_fault("stimulator_error", now, err)
                return
        self.stim_delivery[{True: "with_consumer", False: "without_consumer",
                            None: "unknown"}[consumer]] += 1
        if consumer is False and self.stim_delivery["without_consumer"] == 1:
            logger.warning("Stimulus sent by %s with no consumer connected: it is lost (and "
                           "counted as sent without consumer in the summary).",
                           self.stimulator.name)
        event.t_fired = self.stream.now()
        latency = (event.t_fired - event.t_trigger + self.stream.clock_offset()) * 1e3
        self.stim_events.append(event)
        self.stim_latency_ms.append(latency)
        self._record_event("stim", event.t_fired, index=self.stream.n_written - 1,
                           description=f"code {event.code}",
                           code=event.code, t_trigger=event.t_trigger,
                           latency_ms=round(latency, 4), reason=request.reason,
                           consumer=consumer)

    # ------------------------------------------------------------------ running
    def run(self, duration_s: float | None = None, *, max_decisions: int | None = None
            ) -> dict:
        """Run the session until it ends; return (and record) its summary.

        The session ends at ``duration_s``, after ``max_decisions``, at the end of a replayed
        source, on a stop request (:meth:`request_stop`, Ctrl+C) or on a fault that ends it
        (a stream lost for good, a decoder that keeps failing, a policy or stimulator error
        with ``on_fault="stop"``, a recording that fails); ``summary["stopped_reason"]`` says
        which. The stimulator is opened first (:meth:`Stimulator.open`, e.g. its LSL outlet
        is created), before the stream starts and the first decision is made.

        Parameters
        ----------
        duration_s : float | None
            Session length (s, finite, > 0); None: until another reason ends it.
        max_decisions : int | None
            Stop after this many decisions (>= 1); None: no limit.

        Returns
        -------
        summary : dict
            :func:`bci.realtime.report.summarize`; the recorder, if any, gets it as
            ``summary.json``, always (``summary["summary_written"]`` says whether it could
            be written; if not, the reason is logged and in ``summary["summary_error"]``).
            An unexpected error is re-raised after the summary was written.
        """
        from .report import summarize

        if duration_s is not None:
            duration_s = check_positive(duration_s, "duration_s", unit="s")
        if max_decisions is not None:
            max_decisions = ensure_int(max_decisions, "max_decisions", minimum=1,
                                       what="decisions")
        stream = self.stream
        crash: BaseException | None = None
        self.started_at = time.perf_counter()
        n_limit = None if duration_s is None else int(round(duration_s * self.sfreq))
        try:
            self._open_stimulator()
            if not self._stop_requested and not stream.running:
                stream.start()
            if self.blas_threads is not None:
                from threadpoolctl import threadpool_limits

                self._limiter = threadpool_limits(limits=self.blas_threads)
            while not self._stop_requested:
                if stream.threaded:
                    n_before = stream.n_written
                    timeout = self.step_s / 4
                    if self._pending is not None:
                        timeout = min(timeout, max(self._due_in(self._pending), 0.0))
                    stream.wait(n_before, timeout)
                self.step()
                if n_limit is not None and (stream.n_written >= n_limit if not stream.threaded
                                            else time.perf_counter() - self.started_at
                                            >= duration_s):
                    self.request_stop("duration reached")
                if max_decisions is not None and len(self.decisions) >= max_decisions:
                    self.request_stop("max_decisions reached")
                if not stream.threaded and getattr(stream.source, "exhausted", False) \
                        and self._processed.n_written >= stream.n_written:
                    self.request_stop("end of the replayed source")
        except KeyboardInterrupt:
            self.safety.stop("Ctrl+C")
            self.request_stop("interrupted (Ctrl+C)")
        except RuntimeError as err:  # the stream died: stop cleanly, say why
            self.request_stop(str(err))
            logger.error("Session stopped: %s", err)
        except Exception as err:  # a bug: still stop cleanly and record, then re-raise
            self.request_stop(f"error: {type(err).__name__}: {err}")
            logger.error("Session stopped by an unexpected error: %r", err)
            crash = err
        finally:
            self.wall_s = time.perf_counter() - self.started_at
            self.close()
        summary = summarize(self)
        self._finish_recording(summary)
        if crash is not None:
            raise crash
        return summary

    def _open_stimulator(self) -> None:
        """Open the stimulator before the first decision; report whether anyone listens."""
        if self.stimulator is None:
            return
        try:
            self.stimulator.open()
            self.consumers_at_start = self.stimulator.has_consumers
        except Exception as err:  # a device that cannot open ends the session, recorded
            self._fault("stimulator_error", float("nan"), f"{type(err).__name__}: {err}",
                        consecutive=False)
            self.request_stop(f"the stimulator {self.stimulator.name!r} could not be opened: "
                              f"{type(err).__name__}: {err}")
            return
        logger.info("Stimulator %s ready; consumer connected: %s", self.stimulator.name,
                    {None: "unknown", True: "yes", False: "not yet"}[self.consumers_at_start])

    def _finish_recording(self, summary: dict) -> None:
        """Write the last events and ``summary.json`` (in the space held back for them)."""
        rec = self.recorder
        if rec is None or rec.closed:
            return
        rec.release_reserve()
        t_end = self._last_ts if self._last_ts is not None else float("nan")
        if self.recording_error is not None:
            self._record_event("fault", t_end, fault="recording_error",
                               description=f"recording_error: {self.recording_error}"[:300])
        self._record_event("session_end", t_end, description=self.stopped_reason)
        try:
            rec.write_summary(summary)
            self.summary_written = True
        except RecordingError as err:
            self.summary_written = False
            summary["summary_error"] = str(err)
            logger.error("%s", err)
        finally:
            rec.close()
        summary["summary_written"] = self.summary_written

    def close(self) -> None:
        """Stop the stream and release the decoder thread and stimulator (idempotent)."""
        try:
            if self.stream.running:
                self.stream.stop()
        except RuntimeError as err:
            self.request_stop(str(err))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None
        if self.stimulator is not None:
            try:
                if self.started_at is not None and self.consumers_at_end is None:
                    self.consumers_at_end = self.stimulator.has_consumers
                self.stimulator.close()
            except Exception as err:  # a device that fails to close is recorded, not raised
                self._fault("stimulator_error", float("nan"),
                            f"closing: {type(err).__name__}: {err}", consecutive=False)

    def __enter__(self) -> OnlineLoop:
        """Return the loop."""
        return self

    def __exit__(self, *exc) -> None:
        """Close the loop."""
        self.close()
