"""Stimulation policies: when a decision should become a stimulus.

A policy sees each :class:`~bci.realtime.events.Decision` (decoder output and the processed
window) and returns a :class:`~bci.realtime.events.StimRequest` or None. Policies decide; the
:class:`~bci.realtime.safety.SafetyGate` then has the last word.

Class and channel names are names: a target ``"13"`` is the class called ``13`` (Kalunga2016's
13-Hz class), matched as text against the decoder's classes; an int (from Python only) is a
column or row index, checked against the number of classes or channels when the policy is bound
to the session, so a wrong target is refused before the session starts, never mid-session.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from .._checks import check_bool, check_positive, check_real, check_type, ensure_int
from .events import Decision, StimRequest
from .safety import SafetyGate


def _resolve(what: str, value: str | int, names: Sequence[str] | None, *, kinds: str,
             fix: str) -> int:
    """Index of ``value`` (a name matched as text, or an index) among ``names``."""
    if names is None:
        raise ValueError(f"The {what} {value!r} cannot be resolved: the session has no "
                         f"{kinds}; {fix}")
    names = [str(n) for n in names]
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"The {what} {value!r} is not one of the {kinds} {names}; pass "
                             "one of these names (matched as text: in Python, '13' is the "
                             "name and 13 a column index).")
        return names.index(value)
    if not 0 <= value < len(names):
        raise ValueError(f"The {what} index {value} is out of range for the {len(names)} "
                         f"{kinds} {names}; pass a name, or an index from 0 to "
                         f"{len(names) - 1}.")
    return int(value)


def _check_name_or_index(value, name: str) -> str | int:
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return check_type(value, str, name)


class Policy(ABC):
    """Base class: :meth:`bind` once to the session, then :meth:`update` every decision.

    Subclasses implement :meth:`update`; a subclass that needs the decoder's classes or a
    channel checks them in :meth:`bind` (called by the loop before the session starts), so
    a policy that cannot work is refused at start.
    """

    classes: list[str] | None = None
    ch_names: list[str] | None = None
    sfreq: float | None = None

    def bind(self, *, classes: Sequence[str] | None, ch_names: Sequence[str],
             sfreq: float) -> None:
        """Learn the decoder's classes and the window's channels and rate (called by the loop).

        Raises
        ------
        ValueError
            The policy cannot work with these (an unknown target class or channel...).
        """
        self.classes = [str(c) for c in classes] if classes is not None else None
        self.ch_names = list(ch_names)
        self.sfreq = check_positive(sfreq, "sfreq", unit="Hz")

    @abstractmethod
    def update(self, decision: Decision) -> StimRequest | None:
        """Return a request to stimulate, or None."""

    def reset(self) -> None:  # noqa: B027 (optional hook)
        """Forget the history (hysteresis state, refractory clock)."""


class ThresholdPolicy(Policy):
    """Fire when a class probability crosses a threshold, with hysteresis and refractoriness.

    Parameters
    ----------
    target : str | int
        Class name whose probability is watched, matched as text against the decoder's
        classes (``"13"`` is the class called 13); an int is a column index (Python only).
        Checked when the policy is bound to the session (:meth:`bind`).
    on : float
        Fire when the probability reaches ``on`` (in [0, 1]) ...
    off : float
        ... and re-arm only once it fell to ``off`` or below (hysteresis, ``0 <= off <= on``).
    refractory_s : float
        No new request within this time (s, finite, >= 0) after the last one.
    n_consecutive : int
        Number of consecutive decisions at or above ``on`` needed (>= 1).
    code : int
        Trigger code of the requests (>= 0).
    """

    def __init__(self, target: str | int, *, on: float = 0.8, off: float = 0.6,
                 refractory_s: float = 2.0, n_consecutive: int = 1, code: int = 1) -> None:
        self.target = _check_name_or_index(target, "target")
        self.on = check_real(on, "on", low=0.0, high=1.0, kind="probability")
        self.off = check_real(off, "off", low=0.0, high=1.0, kind="probability")
        if self.off > self.on:
            raise ValueError(f"Need 0 <= off <= on <= 1 (probabilities), got on={on}, "
                             f"off={off}.")
        self.refractory_s = check_positive(refractory_s, "refractory_s", unit="s",
                                           allow_zero=True)
        self.n_consecutive = ensure_int(n_consecutive, "n_consecutive", minimum=1,
                                        what="decisions")
        self.code = ensure_int(code, "code", minimum=0)
        self._col: int | None = None
        self.reset()

    def bind(self, *, classes: Sequence[str] | None, ch_names: Sequence[str],
             sfreq: float) -> None:
        """Check the target against the decoder's classes (refused at start if unknown)."""
        super().bind(classes=classes, ch_names=ch_names, sfreq=sfreq)
        self._col = self._column()

    def _column(self) -> int:
        return _resolve("target class", self.target, self.classes, kinds="decoder classes",
                        fix="the threshold policy needs a decoder's probabilities: give the "
                            "session a decoder, or use the oscillation policy on the signal.")

    def reset(self) -> None:
        """Re-arm, forget the run of high probabilities and the refractory clock."""
        self._armed = True
        self._run = 0
        self._last = -np.inf

    def update(self, decision: Decision) -> StimRequest | None:
        """Watch the target's probability; a request when it crosses ``on`` (armed)."""
        if decision.proba is None:
            raise ValueError("ThresholdPolicy needs a decoder's probabilities; give the loop "
                             "a decoder, or use OscillationTrigger on the signal.")
        if self._col is None:  # not bound to a session: resolve against self.classes
            self._col = self._column()
        p = float(decision.proba[self._col])
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
        Channel name to watch (matched as text against the stream's channels); an int is a
        row index (Python only). Checked when the policy is bound to the session.
    freq : float
        Centre frequency (Hz, > 0 and below the stream's Nyquist frequency) of the oscillation
        (e.g. 13.5 for spindles, 0.8 for slow oscillations).
    threshold : float
        Score needed (> 0; a ratio to the baseline when ``relative``, else signal units);
        ``inf`` never fires (scores only, e.g. to tune thresholds on recorded scores).
    rms_s : float
        RMS window (s, > 0).
    min_duration_s : float
        How long (s, >= 0) the score must stay above threshold.
    off_ratio : float
        The event ends below ``threshold * off_ratio`` (hysteresis; in (0, 1]).
    refractory_s : float
        Minimum time (s, >= 0) between two requests.
    relative : bool
        Divide the RMS by its baseline (an exponential mean of the RMS with time constant
        ``baseline_s``, much longer than an event), so one threshold fits recordings of
        different amplitude; the score then does not depend on the threshold, so thresholds
        can be tuned on recorded scores (:meth:`decide`).
    baseline_s : float
        Baseline time constant (s, > 0).
    target_phase : float | None
        Phase (degrees, finite; 0 peak, 180 trough) to stimulate at; None: at detection.
    max_delay_s : float
        Largest wait (s, >= 0) for the target phase; a later phase is not waited for.
    code : int
        Trigger code (>= 0).

    Notes
    -----
    Every number must be finite (except a threshold of ``inf``): NaN and inf are refused (a NaN
    threshold would never fire, a NaN refractory period never hold).
    """

    def __init__(self, channel: str | int = 0, *, freq: float = 13.5, threshold: float = 2.0,
                 rms_s: float = 0.25, min_duration_s: float = 0.1, off_ratio: float = 0.8,
                 refractory_s: float = 1.0, relative: bool = True, baseline_s: float = 60.0,
                 target_phase: float | None = None, max_delay_s: float = 0.1,
                 code: int = 2) -> None:
        self.channel = _check_name_or_index(channel, "channel")
        self.freq = check_positive(freq, "freq", unit="Hz")
        self.threshold = check_positive(threshold, "threshold", allow_inf=True)
        self.rms_s = check_positive(rms_s, "rms_s", unit="s")
        self.min_duration_s = check_positive(min_duration_s, "min_duration_s", unit="s",
                                             allow_zero=True)
        self.off_ratio = check_real(off_ratio, "off_ratio", low=0.0, high=1.0,
                                    low_inclusive=False, kind="fraction")
        self.refractory_s = check_positive(refractory_s, "refractory_s", unit="s",
                                           allow_zero=True)
        self.relative = check_bool(relative, "relative")
        self.baseline_s = check_positive(baseline_s, "baseline_s", unit="s")
        self.target_phase = (None if target_phase is None
                             else check_real(target_phase, "target_phase", unit="degrees"))
        self.max_delay_s = check_positive(max_delay_s, "max_delay_s", unit="s",
                                          allow_zero=True)
        self.code = ensure_int(code, "code", minimum=0)
        self._row_index: int | None = None
        self.reset()

    def bind(self, *, classes: Sequence[str] | None, ch_names: Sequence[str],
             sfreq: float) -> None:
        """Check the channel against the stream and ``freq`` against its Nyquist frequency."""
        super().bind(classes=classes, ch_names=ch_names, sfreq=sfreq)
        self._row_index = self._row()
        if not self.freq < self.sfreq / 2:
            raise ValueError(f"freq={self.freq:g} Hz must be below the stream's Nyquist "
                             f"frequency ({self.sfreq / 2:g} Hz at {self.sfreq:g} Hz).")

    def reset(self) -> None:
        """Forget the baseline, the event state and the refractory clock."""
        self._baseline: float | None = None
        self._t_prev: float | None = None
        self._above_since: float | None = None
        self._in_event = False
        self._last = -np.inf

    def _row(self) -> int:
        if self._row_index is not None:
            return self._row_index
        return _resolve("channel", self.channel, self.ch_names, kinds="stream channels",
                        fix="bind the policy to a stream (the loop does).")

    def score(self, decision: Decision) -> float:
        """Compute the detection statistic of this window (updates the baseline)."""
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
        """Run the event state machine on a score at time ``t`` (s); see the class notes."""
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
        """Score the window and run the event state machine on it."""
        score = self.score(decision)
        decision.score = score
        return self.decide(score, decision.t_end, decision.window)

    def replay(self, times, scores, *, safety: SafetyGate | None = None) -> np.ndarray:
        """Run the event state machine on recorded scores; return the stimulus times.

        Tunes ``threshold`` and ``min_duration_s`` offline: with ``relative=True`` a window's
        score does not depend on the threshold, so the scores of one replay through the loop
        (e.g. with ``threshold=inf``, which never fires) serve every threshold. The trigger is
        reset first. Only the windows where the state can change are visited (scores at or
        above ``threshold * off_ratio``, and the window after each): the result is that of
        visiting every window, in a fraction of the time.

        Parameters
        ----------
        times : array, shape (n_windows,)
            Decision time of each window (s, increasing), e.g. ``Decision.t_end``.
        scores : array, shape (n_windows,)
            The trigger's score of each window (``Decision.score``).
        safety : SafetyGate | None
            When given, every request must also pass ``safety.allow(t)`` (its counters, e.g.
            ``n_suppressed``, count the refused ones).

        Returns
        -------
        stim_times : ndarray, shape (n_stimuli,)
            Times (s) of the requests that fired (and passed ``safety``): the trigger times (a
            ``target_phase`` needs the window and is not waited for here).

        Examples
        --------
        >>> trigger = OscillationTrigger(threshold=2.0, min_duration_s=0.5, refractory_s=1.0)
        >>> t = np.arange(10) * 0.25
        >>> trigger.replay(t, [1, 3, 3, 3, 1, 1, 3, 3, 3, 3]).tolist()  # once per event
        [0.75, 2.0]
        """
        times = np.asarray(times, dtype=float)
        scores = np.asarray(scores, dtype=float)
        if times.ndim != 1 or times.shape != scores.shape:
            raise ValueError(f"times and scores must be 1-D with one value per window, got "
                             f"shapes {times.shape} and {scores.shape}.")
        check_type(safety, (SafetyGate, type(None)), "safety")
        self.reset()
        candidates = np.flatnonzero(scores >= self.threshold * self.off_ratio)
        # the state machine only changes near candidates: visit those and the window after
        idx = np.unique(np.concatenate([candidates,
                                        np.minimum(candidates + 1, len(times) - 1)]))
        stims = []
        for i in idx:
            t = float(times[i])
            if self.decide(float(scores[i]), t) is not None and (safety is None
                                                                 or safety.allow(t)):
                stims.append(times[i])
        return np.array(stims, dtype=float)
