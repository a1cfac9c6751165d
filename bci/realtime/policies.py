"""Stimulation policies: when a decision should become a stimulus.

A policy sees each :class:`~bci.realtime.events.Decision` (decoder output and the processed
window) and returns a :class:`~bci.realtime.events.StimRequest` or None. Policies decide; the
:class:`~bci.realtime.safety.SafetyGate` then has the last word.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .events import Decision, StimRequest


class Policy:
    """Base class: :meth:`bind` once to the stream, then :meth:`update` every decision."""

    classes: list[str] | None = None
    ch_names: list[str] | None = None
    sfreq: float | None = None

    def bind(self, *, classes: Sequence[str] | None, ch_names: Sequence[str],
             sfreq: float) -> None:
        """Learn the decoder's classes and the window's channels and rate (called by the loop)."""
        self.classes = list(classes) if classes is not None else None
        self.ch_names = list(ch_names)
        self.sfreq = float(sfreq)

    def update(self, decision: Decision) -> StimRequest | None:
        """Return a request to stimulate, or None."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the history (hysteresis state, refractory clock)."""


class ThresholdPolicy(Policy):
    """Fire when a class probability crosses a threshold, with hysteresis and refractoriness.

    Parameters
    ----------
    target : str | int
        Class name (or column index) whose probability is watched.
    on : float
        Fire when the probability reaches ``on`` ...
    off : float
        ... and re-arm only once it fell to ``off`` or below (hysteresis, ``off <= on``).
    refractory_s : float
        No new request within this time (s) after the last one.
    n_consecutive : int
        Number of consecutive decisions at or above ``on`` needed.
    code : int
        Trigger code of the requests.
    """

    def __init__(self, target: str | int, *, on: float = 0.8, off: float = 0.6,
                 refractory_s: float = 2.0, n_consecutive: int = 1, code: int = 1) -> None:
        if not 0 <= off <= on <= 1:
            raise ValueError(f"Need 0 <= off <= on <= 1 (probabilities), got on={on}, off={off}.")
        if n_consecutive < 1:
            raise ValueError(f"n_consecutive must be >= 1, got {n_consecutive}.")
        self.target, self.on, self.off = target, on, off
        self.refractory_s, self.n_consecutive, self.code = refractory_s, n_consecutive, code
        self.reset()

    def reset(self) -> None:
        self._armed = True
        self._run = 0
        self._last = -np.inf

    def _column(self) -> int:
        if isinstance(self.target, (int, np.integer)):
            return int(self.target)
        if self.classes is None or self.target not in self.classes:
            raise ValueError(f"Target class {self.target!r} is not among the decoder's classes "
                             f"{self.classes}; pass one of them (or a column index).")
        return self.classes.index(self.target)

    def update(self, decision: Decision) -> StimRequest | None:
        if decision.proba is None:
            raise ValueError("ThresholdPolicy needs a decoder's probabilities; give the loop "
                             "a decoder, or use OscillationTrigger on the signal.")
        p = float(decision.proba[self._column()])
        decision.score = p
        if not self._armed:
            if p <= self.off:
                self._armed = True
            return None
        self._run = self._run + 1 if p >= self.on else 0
        if self._run < self.n_consecutive or decision.t_end - self._last < self.refractory_s:
            return None
        self._armed, self._run, self._last = False, 0, decision.t_end
        return StimRequest(code=self.code, reason=f"p({self.target})={p:.2f}>={self.on:g}",
                           t_trigger=decision.t_end)


def estimate_phase(x: np.ndarray, sfreq: float, freq: float) -> tuple[float, float]:
    """Causal phase and amplitude at the last sample of a narrow-band signal.

    Fits ``a cos(2 pi f t) + b sin(2 pi f t)`` (least squares) to ``x`` with ``t = 0`` at its
    last sample; uses no later sample.

    Parameters
    ----------
    x : array, shape (n_times,)
        The band-passed signal's last samples (about two cycles of ``freq``).
    sfreq : float
        Sampling rate (Hz).
    freq : float
        Oscillation frequency (Hz).

    Returns
    -------
    phase : float
        Phase (rad, in ``[0, 2 pi)``) at the last sample: 0 at a peak, pi at a trough.
    amplitude : float
        Fitted amplitude, in the units of ``x``.
    """
    t = (np.arange(len(x)) - (len(x) - 1)) / sfreq
    w = 2 * np.pi * freq * t
    design = np.column_stack([np.cos(w), np.sin(w)])
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(x, float), rcond=None)
    # a cos(w) + b sin(w) = A cos(w - phi) with phi = atan2(b, a); phase at t=0 is -phi
    return float(np.mod(-np.arctan2(b, a), 2 * np.pi)), float(np.hypot(a, b))


class OscillationTrigger(Policy):
    """Portiloop-style trigger on an oscillation of the (band-passed) signal.

    Looks at the newest samples of one channel of the processed window (band-pass it to the
    oscillation's band in the loop's processing chain): the RMS over the last ``rms_s``,
    divided by a slow causal baseline of that RMS when ``relative``, is the score. An event
    starts when the score stays at or above ``threshold`` for ``min_duration_s``; it ends
    when the score falls below ``threshold * off_ratio``. Each event fires once (after the
    refractory period). With ``target_phase``, the phase at the window's end is estimated
    causally (:func:`estimate_phase`) and the stimulus is scheduled for the next time the
    oscillation reaches that phase, if that is within ``max_delay_s`` (the latency budget).

    Parameters
    ----------
    channel : str | int
        Channel name (or row) to watch.
    freq : float
        Centre frequency (Hz) of the oscillation (e.g. 13.5 for spindles, 0.8 for slow
        oscillations).
    threshold : float
        Score needed (a ratio to the baseline when ``relative``, else signal units).
    rms_s : float
        RMS window (s).
    min_duration_s : float
        How long (s) the score must stay above threshold.
    off_ratio : float
        The event ends below ``threshold * off_ratio`` (hysteresis).
    refractory_s : float
        Minimum time (s) between two requests.
    relative : bool
        Divide the RMS by its baseline (an exponential mean of the RMS with time constant
        ``baseline_s``, much longer than an event), so one threshold fits recordings of
        different amplitude; the score then does not depend on the threshold, so thresholds
        can be tuned on recorded scores (:meth:`decide`).
    baseline_s : float
        Baseline time constant (s).
    target_phase : float | None
        Phase (degrees; 0 peak, 180 trough) to stimulate at; None: at detection.
    max_delay_s : float
        Largest wait (s) for the target phase; a later phase is not waited for.
    code : int
        Trigger code.
    """

    def __init__(self, channel: str | int = 0, *, freq: float = 13.5, threshold: float = 2.0,
                 rms_s: float = 0.25, min_duration_s: float = 0.1, off_ratio: float = 0.8,
                 refractory_s: float = 1.0, relative: bool = True, baseline_s: float = 60.0,
                 target_phase: float | None = None, max_delay_s: float = 0.1,
                 code: int = 2) -> None:
        if freq <= 0 or rms_s <= 0 or threshold <= 0:
            raise ValueError(f"freq (Hz), rms_s (s) and threshold must be positive, got "
                             f"{freq}, {rms_s}, {threshold}.")
        self.channel, self.freq, self.threshold, self.rms_s = channel, freq, threshold, rms_s
        self.min_duration_s, self.off_ratio, self.refractory_s = min_duration_s, off_ratio, \
            refractory_s
        self.relative, self.baseline_s = relative, baseline_s
        self.target_phase, self.max_delay_s, self.code = target_phase, max_delay_s, code
        self.reset()

    def reset(self) -> None:
        self._baseline: float | None = None
        self._t_prev: float | None = None
        self._above_since: float | None = None
        self._in_event = False
        self._last = -np.inf

    def _row(self) -> int:
        if isinstance(self.channel, (int, np.integer)):
            return int(self.channel)
        if self.ch_names is None or self.channel not in self.ch_names:
            raise ValueError(f"Channel {self.channel!r} is not in the stream "
                             f"({self.ch_names}); pass one of its channel names.")
        return self.ch_names.index(self.channel)

    def score(self, decision: Decision) -> float:
        """The detection statistic for this window (updates the baseline)."""
        if decision.window is None:
            raise ValueError("OscillationTrigger needs the loop to pass the window.")
        sfreq = self.sfreq
        x = decision.window[self._row()]
        n = max(int(round(self.rms_s * sfreq)), 1)
        if len(x) < n:
            raise ValueError(f"The window has {len(x)} samples, fewer than rms_s={self.rms_s} s "
                             f"({n} samples); make the loop's window_s longer.")
        rms = float(np.sqrt(np.mean(x[-n:] ** 2)))
        if not self.relative:
            return rms
        dt = 0.0 if self._t_prev is None else max(decision.t_end - self._t_prev, 0.0)
        self._t_prev = decision.t_end
        if self._baseline is None:
            self._baseline = rms
        else:  # updated always, so the score does not depend on the threshold
            alpha = 1.0 - np.exp(-dt / self.baseline_s)
            self._baseline += alpha * (rms - self._baseline)
        return rms / self._baseline if self._baseline > 0 else 0.0

    def decide(self, score: float, t: float, window: np.ndarray | None = None
               ) -> StimRequest | None:
        """The event state machine on a score at time ``t`` (s); see the class notes."""
        if score >= self.threshold:
            if self._above_since is None:
                self._above_since = t
        elif score < self.threshold * self.off_ratio:
            self._above_since = None
            self._in_event = False
        if (self._in_event or self._above_since is None
                or t - self._above_since < self.min_duration_s - 1e-9
                or t - self._last < self.refractory_s):
            return None
        self._in_event, self._last = True, t
        at = None
        reason = f"oscillation score {score:.2f}>={self.threshold:g}"
        if self.target_phase is not None and window is not None:
            n = max(int(round(2 * self.sfreq / self.freq)), 4)
            phase, _ = estimate_phase(window[self._row()][-n:], self.sfreq, self.freq)
            delay = np.mod(np.deg2rad(self.target_phase) - phase, 2 * np.pi) / (
                2 * np.pi * self.freq)
            if delay > self.max_delay_s:
                self._in_event, self._last = False, -np.inf  # try again at the next window
                return None
            at = t + delay
            reason += f", phase {np.rad2deg(phase):.0f} deg, wait {delay * 1e3:.0f} ms"
        return StimRequest(at=at, code=self.code, reason=reason, t_trigger=t)

    def update(self, decision: Decision) -> StimRequest | None:
        score = self.score(decision)
        decision.score = score
        return self.decide(score, decision.t_end, decision.window)
