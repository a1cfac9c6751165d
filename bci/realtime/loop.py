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
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal

import numpy as np

from .._logging import logger as _root_logger
from .buffer import RingBuffer
from .events import Decision, StimEvent, StimRequest, StreamEvent
from .policies import Policy
from .processing import ProcessingChain
from .recording import Recorder
from .safety import SafetyGate
from .stimulation import Stimulator
from .stream import Stream

logger = _root_logger.getChild("realtime.loop")

STAGES = ("acquire", "wait", "process", "decode", "act", "end_to_end")


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
    """

    def __init__(self, stream: Stream, decoder: Any = None, *, window_s: float | None = None,
                 step_s: float = 0.1, processing: ProcessingChain | None = None,
                 decoder_input: Literal["raw", "processed"] = "raw",
                 policy: Policy | None = None, safety: SafetyGate | None = None,
                 stimulator: Stimulator | None = None, recorder: Recorder | None = None,
                 markers: Any = None, decode_timeout_s: float | None = None,
                 max_faults: int = 5, catch_up: bool = False,
                 blas_threads: int | None = 1) -> None:
        self.stream = stream
        self.sfreq = stream.sfreq
        self.ch_names = stream.ch_names
        self.decoder = decoder
        if step_s <= 0:
            raise ValueError(f"step_s must be positive (seconds), got {step_s}.")
        if decoder_input not in ("raw", "processed"):
            raise ValueError(f"decoder_input must be 'raw' or 'processed', got "
                             f"{decoder_input!r}.")
        if decoder is not None:
            self._picks = check_decoder(decoder, self.ch_names, self.sfreq)
            n_window = int(decoder.n_times)
            if window_s is not None and int(round(window_s * self.sfreq)) != n_window:
                raise ValueError(
                    f"window_s={window_s} s is {int(round(window_s * self.sfreq))} samples but "
                    f"the decoder takes {n_window} ({decoder.tmin:g}-{decoder.tmax:g} s at "
                    f"{decoder.sfreq:g} Hz); leave window_s=None to use the decoder's."
                )
        else:
            if window_s is None or window_s <= 0:
                raise ValueError(f"window_s must be positive (seconds) without a decoder, got "
                                 f"{window_s}.")
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
        if policy is not None:
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
        self.stopped_reason = ""
        self.started_at: float | None = None
        self.wall_s = 0.0
        if recorder is not None:
            stream.add_chunk_listener(recorder.write_chunk)
            stream.add_event_listener(self._record_stream_event)

    # ------------------------------------------------------------------ plumbing
    def _record_stream_event(self, event: StreamEvent) -> None:
        self.recorder.write_event(event.kind, event.time, index=event.index,
                                  description=event.message, **event.detail)

    def _fault(self, kind: str, t: float, message: str, *, consecutive: bool = True) -> None:
        self.faults[kind] += 1
        if consecutive:
            self._consecutive_faults += 1
        logger.warning("Loop fault %s at t=%.3f s: %s", kind, t, message)
        if self.recorder is not None:
            self.recorder.write_event("fault", t, description=f"{kind}: {message}"[:300],
                                      fault=kind)
        if consecutive and self._consecutive_faults >= self.max_faults:
            self.request_stop(f"{self._consecutive_faults} consecutive decoder faults (last: "
                              f"{kind}: {message}); check the decoder file against the stream")

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
        span = t_end - t_start
        decision.has_gap = bool(span > (self.n_window - 1 + 1.5) / self.sfreq)
        arrival = self.stream.arrival_time(end)
        t_ref = t_end - self.stream.clock_offset(end)  # latency reference, re-anchored after
        acquire_ms = (arrival - t_ref) * 1e3          # the source's clock jumps
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
        self._consecutive_faults = 0
        t0 = time.perf_counter()
        request = self.policy.update(decision) if self.policy is not None else None
        if request is not None:
            if request.at is None or request.at <= self.stream.now():
                self._fire(request)
            else:
                self._pending = request
        if self.markers is not None:
            score = "" if decision.score is None else f"{decision.score:.4g}"
            self.markers.push(f"decision/{decision.label or ''}/{score}")
        act_ms = (time.perf_counter() - t0) * 1e3
        e2e_ms = (self.stream.now() - t_ref) * 1e3
        decision.latency_ms = {"acquire": acquire_ms, "wait": wait_ms,
                               "process": self._process_ms,
                               "decode": decode_ms, "act": act_ms, "end_to_end": e2e_ms}
        for stage, value in decision.latency_ms.items():
            self.latencies[stage].append(value)
        if self.recorder is not None:
            self.recorder.write_event(
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
        if self._pending is not None and self._pending.at <= self.stream.now():
            request, self._pending = self._pending, None
            self._fire(request)

    def _fire(self, request: StimRequest) -> None:
        now = self.stream.now()
        reason = self.safety.allow(now)
        if reason is not None:
            logger.info("Stimulus suppressed (%s) at t=%.3f s", reason, now)
            if self.recorder is not None:
                self.recorder.write_event("suppressed", now, description=reason,
                                          request=request.reason, code=request.code)
            return
        event = StimEvent(index=len(self.stim_events), code=request.code,
                          t_trigger=request.t_trigger, reason=request.reason)
        if self.stimulator is not None:
            try:
                self.stimulator.trigger(event)
            except Exception as err:  # a failing device is reported, never ignored
                self._fault("stimulator_error", now, f"{type(err).__name__}: {err}",
                            consecutive=False)
                return
        event.t_fired = self.stream.now()
        latency = (event.t_fired - event.t_trigger + self.stream.clock_offset()) * 1e3
        self.stim_events.append(event)
        self.stim_latency_ms.append(latency)
        if self.recorder is not None:
            self.recorder.write_event("stim", event.t_fired, description=f"code {event.code}",
                                      code=event.code, t_trigger=event.t_trigger,
                                      latency_ms=round(latency, 4), reason=request.reason)

    # ------------------------------------------------------------------ running
    def run(self, duration_s: float | None = None, *, max_decisions: int | None = None
            ) -> dict:
        """Run until ``duration_s`` (s), ``max_decisions``, the end of a replayed source, a
        stop request (:meth:`request_stop`, Ctrl+C) or a fault that ends the session.

        Returns the session summary (:func:`bci.realtime.report.summarize`); the recorder, if
        any, gets it as ``summary.json``. A stream that is lost for good or a decoder that
        keeps failing ends the run cleanly with ``summary["stopped_reason"]`` saying why.
        """
        from .report import summarize

        stream = self.stream
        if not stream.running:
            stream.start()
        if self.blas_threads is not None:
            from threadpoolctl import threadpool_limits

            self._limiter = threadpool_limits(limits=self.blas_threads)
        self.started_at = time.perf_counter()
        n_limit = None if duration_s is None else int(round(duration_s * self.sfreq))
        try:
            while not self._stop_requested:
                if stream.threaded:
                    n_before = stream.n_written
                    timeout = self.step_s / 4
                    if self._pending is not None:
                        timeout = min(timeout, max(self._pending.at - stream.now(), 0.0))
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
        finally:
            self.wall_s = time.perf_counter() - self.started_at
            self.close()
        summary = summarize(self)
        if self.recorder is not None:
            self.recorder.write_event("session_end", self._last_ts or float("nan"),
                                      description=self.stopped_reason)
            self.recorder.write_summary(summary)
            self.recorder.close()
        return summary

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
            self.stimulator.close()

    def __enter__(self) -> OnlineLoop:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
