"""Continuous decoding in the live loop: one output per input sample (bin), streamed and recorded.

:class:`ContinuousLoop` runs a *step decoder* (an object with ``step(sample) -> outputs``,
``n_chans``, ``n_outputs``, ``sfreq``, ``reset()`` and the counters ``synops`` and ``n_steps``:
:class:`~bci.models.spiking.stepping.TorchStepDecoder` (torch) or
:class:`~bci.models.nir_runtime.NIRStepDecoder` (the NIR graph in our NumPy simulator)) on every
sample of a :class:`~bci.realtime.stream.Stream`, in order, each exactly once: the decoder
keeps its state between samples and never re-reads the history. A regression decoder (the iBMI
velocity decoders, at one sample per 50-ms bin) so streams its prediction continuously:

- to an LSL outlet (``outlet``: a :class:`~bci.realtime.lsl.SignalOutlet` or any object with
  ``push_rows(rows, timestamp)``), one row per input sample, stamped with the input sample's
  timestamp, channels named by ``output_names`` (e.g. ``["vx", "vy"]``);
- to the session recording (``recorder``): the input samples as the signal, and one
  ``"output"`` event per decoded sample (its index, timestamp and values), read back by
  :func:`~bci.realtime.recording.read_outputs`.

What the stream notices (lost samples, clock jumps, NaN or flat channels) is recorded as events
and counted in the summary (``stream_events``): a lost bin is not decoded, so the decoder's
state then differs from an offline decode of the full recording. The summary
(:meth:`ContinuousLoop.run`) holds the bins decoded, the per-step latency (ms:
``decode`` = the decoder's step, ``end_to_end`` = from the sample's timestamp to its output
being pushed) and the synaptic operations the decoder performed, per bin and per second of
signal (``synops_per_s``, the rate a chip would sustain in real time).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import check_positive, check_type, ensure_int
from .._logging import logger as _root_logger
from .events import StreamEvent
from .recording import Recorder, RecordingError
from .stream import Stream

logger = _root_logger.getChild("realtime.continuous")

__all__ = ["ContinuousLoop", "check_step_decoder"]


def check_step_decoder(decoder: Any, n_chans: int, sfreq: float, rtol: float = 1e-3) -> None:
    """Check a step decoder against a stream's channel count and rate.

    Raises
    ------
    TypeError
        The decoder lacks the step-decoder interface.
    ValueError
        Another number of channels, or another rate.
    """
    for attr in ("step", "reset", "n_chans", "n_outputs", "sfreq", "synops", "n_steps"):
        if not hasattr(decoder, attr):
            raise TypeError(f"The step decoder ({type(decoder).__name__}) lacks {attr!r}; use "
                            "bci.models.spiking.stepping.TorchStepDecoder or "
                            "bci.models.nir_runtime.NIRStepDecoder.")
    if decoder.n_chans != n_chans:
        raise ValueError(f"The decoder reads {decoder.n_chans} channels but the stream has "
                         f"{n_chans}; stream the units the decoder was trained on.")
    if abs(decoder.sfreq - sfreq) > rtol * decoder.sfreq:
        raise ValueError(f"The decoder steps at {decoder.sfreq:g} Hz (bins per second) but the "
                         f"stream runs at {sfreq:g} Hz; play the bins at {decoder.sfreq:g} Hz.")


class ContinuousLoop:
    """Decode every sample of a stream with a stateful step decoder; stream and record outputs.

    Parameters
    ----------
    stream : Stream
        The (not yet started) stream; the loop starts and stops it.
    decoder : step decoder
        See the module docstring; reset to rest when the run starts.
    output_names : sequence of str | None
        Names of the outputs (``n_outputs`` of them); ``out0``, ``out1``... when None.
    outlet : object | None
        Where each output row goes (``push_rows(rows (n, n_outputs), timestamp)``), e.g.
        :class:`~bci.realtime.lsl.SignalOutlet`; None: not streamed.
    recorder : Recorder | None
        Records the input samples and one ``"output"`` event per decoded sample.

    Attributes
    ----------
    outputs : list of ndarray
        The outputs, one ``(n_outputs,)`` array per decoded sample.
    indices : list of int
        The stream index of each decoded sample.
    timestamps : list of float
        The timestamp (s) of each decoded sample.
    """

    def __init__(self, stream: Stream, decoder: Any, *,
                 output_names: Sequence[str] | None = None, outlet: Any = None,
                 recorder: Recorder | None = None) -> None:
        check_type(stream, Stream, "stream")
        check_type(recorder, (Recorder, type(None)), "recorder")
        check_step_decoder(decoder, len(stream.ch_names), stream.sfreq)
        if output_names is None:
            output_names = [f"out{k}" for k in range(decoder.n_outputs)]
        output_names = [check_type(n, str, "each output name") for n in output_names]
        if len(output_names) != decoder.n_outputs:
            raise ValueError(f"output_names must name the decoder's {decoder.n_outputs} "
                             f"outputs, got {len(output_names)}: {output_names}.")
        if outlet is not None and not callable(getattr(outlet, "push_rows", None)):
            raise TypeError(f"outlet must have push_rows(rows, timestamp) (e.g. "
                            f"bci.realtime.lsl.SignalOutlet), got {type(outlet).__name__}.")
        self.stream = stream
        self.decoder = decoder
        self.output_names = output_names
        self.outlet = outlet
        self.recorder = recorder
        self.outputs: list[np.ndarray] = []
        self.indices: list[int] = []
        self.timestamps: list[float] = []
        self.latencies: dict[str, list[float]] = {"decode": [], "end_to_end": []}
        self.stopped_reason = ""
        self.recording_error: RecordingError | None = None
        self.wall_s = 0.0
        self.stream_events: Counter[str] = Counter()
        self._next = 0
        stream.add_event_listener(self._record_stream_event)

    def _record_stream_event(self, event: StreamEvent) -> None:
        """Count and record what the stream noticed (gaps, clock jumps, NaN, flat channels)."""
        self.stream_events[event.kind] += 1
        if self.recorder is not None and not self.recorder.closed:
            try:
                self.recorder.write_event(event.kind, event.time, index=event.index,
                                          description=event.message, **event.detail)
            except RecordingError as err:
                self._recording_failed(err)

    def step(self) -> int:
        """Decode every sample received since the last call; returns how many."""
        stop = self.stream.n_written
        if stop <= self._next:
            return 0
        if stop - self._next > self.stream.n_buffer:
            raise RuntimeError(f"{stop - self._next} samples arrived since the last step, more "
                               f"than the stream's buffer ({self.stream.n_buffer}); raise "
                               "buffer_s or call step() more often.")
        first = self._next
        data, ts = self.stream.get(first, stop)
        if self.recorder is not None and self.recording_error is None:
            try:
                self.recorder.write_chunk(data, ts, first)
            except RecordingError as err:
                self._recording_failed(err)
        rows = np.empty((data.shape[1], self.decoder.n_outputs))
        for k in range(data.shape[1]):
            t0 = time.perf_counter()
            rows[k] = self.decoder.step(data[:, k])
            self.latencies["decode"].append((time.perf_counter() - t0) * 1e3)
        if self.outlet is not None:
            self.outlet.push_rows(rows.astype(np.float32), timestamp=float(ts[-1]))
        now = self.stream.now()
        for k in range(data.shape[1]):
            index, t = first + k, float(ts[k])
            self.outputs.append(rows[k].copy())
            self.indices.append(index)
            self.timestamps.append(t)
            self.latencies["end_to_end"].append((now - t) * 1e3)
            if self.recorder is not None and self.recording_error is None:
                try:
                    self.recorder.write_event(
                        "output", t, index=index,
                        values=dict(zip(self.output_names, map(float, rows[k]), strict=True)))
                except RecordingError as err:
                    self._recording_failed(err)
        self._next = stop
        return data.shape[1]

    def _recording_failed(self, err: RecordingError) -> None:
        self.recording_error = err
        self.stopped_reason = "recording_failed"
        logger.error("Recording failed, stopping: %s", err)

    def run(self, duration_s: float | None = None, *, max_bins: int | None = None,
            idle_timeout_s: float = 2.0) -> dict:
        """Start the stream and decode until a limit; return (and record) the summary.

        Parameters
        ----------
        duration_s : float | None
            Stop after this long (s, wall clock).
        max_bins : int | None
            Stop after this many decoded samples.
        idle_timeout_s : float
            Stop when no sample came for this long (s): the player ended.

        Returns
        -------
        summary : dict
            See :meth:`summary`.
        """
        if duration_s is not None:
            duration_s = check_positive(duration_s, "duration_s", unit="s")
        if max_bins is not None:
            max_bins = ensure_int(max_bins, "max_bins", minimum=1, what="bins")
        idle_timeout_s = check_positive(idle_timeout_s, "idle_timeout_s", unit="s")
        self.decoder.reset()
        start = time.perf_counter()
        last_data = start
        with self.stream:
            while True:
                fresh = self.stream.wait(self._next, min(0.05, idle_timeout_s))
                now = time.perf_counter()
                if fresh:
                    self.step()
                    last_data = now
                if self.stopped_reason:
                    break
                if max_bins is not None and len(self.outputs) >= max_bins:
                    self.stopped_reason = "max_bins"
                    break
                if duration_s is not None and now - start >= duration_s:
                    self.stopped_reason = "duration"
                    break
                if now - last_data >= idle_timeout_s:
                    self.stopped_reason = "idle"
                    break
        self.wall_s = time.perf_counter() - start
        summary = self.summary()
        if self.recorder is not None:
            try:
                self.recorder.write_summary(summary)
            except RecordingError as err:
                logger.error("%s", err)
        return summary

    def output_array(self) -> np.ndarray:
        """Return the outputs so far, ``(n_outputs, n_bins)``."""
        if not self.outputs:
            return np.zeros((self.decoder.n_outputs, 0))
        return np.stack(self.outputs, axis=1)

    def summary(self) -> dict:
        """Bins decoded, latency percentiles (ms), synaptic operations per bin and per second.

        ``synops_per_s`` is the decoder's synaptic operations over the decoded signal's
        duration (``n_bins / sfreq`` seconds): the rate a device sustains in real time.
        """
        n = len(self.outputs)
        lat = {}
        for stage, values in self.latencies.items():
            if values:
                v = np.asarray(values)
                lat[stage] = {"p50": float(np.percentile(v, 50)),
                              "p99": float(np.percentile(v, 99)), "max": float(v.max())}
        synops = float(self.decoder.synops)
        signal_s = n / self.stream.sfreq
        return {
            "mode": "continuous",
            "backend": getattr(self.decoder, "backend", type(self.decoder).__name__),
            "n_bins": n,
            "output_names": list(self.output_names),
            "sfreq": float(self.stream.sfreq),
            "latency_ms": lat,
            "synops": synops,
            "synops_per_bin": synops / n if n else 0.0,
            "synops_per_s": synops / signal_s if n else 0.0,
            "stream_events": dict(self.stream_events),
            "stopped_reason": self.stopped_reason,
            "wall_s": self.wall_s,
            "recording_error": str(self.recording_error) if self.recording_error else None,
        }
