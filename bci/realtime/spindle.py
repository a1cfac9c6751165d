"""Spindle-triggered stimulation driven by a small causal network (Portiloop-style).

:class:`SpindleNetTrigger` is an :class:`~bci.realtime.policies.OscillationTrigger` whose score
is a :class:`~bci.models.spindle_net.SpindleNet`'s spindle probability instead of a relative
RMS: every decision it takes the window's new (band-passed) samples, decimates them to the
network's rate, normalises them causally (:func:`~bci.models.spindle_net.causal_normalise`)
and runs the network on the last ``net.n_times`` of them. The event logic (threshold held for
``min_duration_s``, once per event, refractory period) is the oscillation trigger's; the
target phase can follow each spindle's own frequency (:func:`causal_phase`: the frequency of
the best-fitting sinusoid in a band, and the causal filter's phase lag at that frequency
taken back out). :func:`offline_net_scores` computes the same scores on a whole
recording in one batch (for tuning thresholds and leave-one-out evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from scipy import signal as sps

from .._checks import check_positive, check_type
from ..models.spindle_net import SpindleNet, causal_normalise, window_scores
from .events import Decision, StimRequest
from .policies import OscillationTrigger, estimate_phase

__all__ = ["SpindleNetTrigger", "causal_phase", "decimation_factor", "offline_net_scores"]


def causal_phase(x: np.ndarray, sfreq: float, band: tuple[float, float], *,
                 sos: np.ndarray | None = None, step_hz: float = 0.25
                 ) -> tuple[float, float]:
    """Phase and frequency of an oscillation at the last sample, each spindle its own frequency.

    Fits ``a cos(2 pi f t) + b sin(2 pi f t)`` (least squares, :func:`estimate_phase`) for
    every ``f`` of ``band`` in steps of ``step_hz`` and keeps the best fit (smallest residual);
    uses no sample after the last. With ``sos``, the causal filter the signal went through,
    its phase response at that frequency is taken back out, so the phase is the unfiltered
    oscillation's (what a zero-phase filter would show).

    Parameters
    ----------
    x : array, shape (n_times,)
        The (causally filtered) signal's last samples, a few cycles (e.g. 0.2-0.3 s).
    sfreq : float
        Sampling rate (Hz).
    band : tuple of float
        ``(low, high)`` frequencies (Hz, 0 < low <= high < sfreq / 2) searched.
    sos : ndarray, shape (n_sections, 6) | None
        The causal filter (at ``sfreq``) to compensate; None: none.
    step_hz : float
        Frequency step (Hz, > 0).

    Returns
    -------
    phase : float
        Phase (rad, in ``[0, 2 pi)``) at the last sample: 0 at a peak, pi at a trough.
    freq : float
        The fitted frequency (Hz).

    Examples
    --------
    >>> t = np.arange(30) / 200.0
    >>> phase, freq = causal_phase(np.cos(2 * np.pi * 12.0 * (t - t[-1])), 200.0, (11.0, 16.0))
    >>> round(float(np.rad2deg(phase)) % 360, 3), freq
    (0.0, 12.0)
    """
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    lo, hi = (check_positive(f, "band", unit="Hz") for f in band)
    if not lo <= hi < sfreq / 2:
        raise ValueError(f"band must be (low, high) with low <= high below the Nyquist "
                         f"frequency ({sfreq / 2:g} Hz), got {tuple(band)}.")
    x = np.asarray(x, float)
    freqs = np.arange(lo, hi + 1e-9, check_positive(step_hz, "step_hz", unit="Hz"))
    t = (np.arange(len(x)) - (len(x) - 1)) / sfreq
    best = (np.inf, lo)
    for f in freqs:
        design = np.column_stack([np.cos(2 * np.pi * f * t), np.sin(2 * np.pi * f * t)])
        coef, *_ = np.linalg.lstsq(design, x, rcond=None)
        resid = float(np.sum((x - design @ coef) ** 2))
        if resid < best[0]:
            best = (resid, float(f))
    freq = best[1]
    phase, _ = estimate_phase(x, sfreq, freq)
    if sos is not None:
        _, h = sps.sosfreqz(np.asarray(sos, float), worN=[freq], fs=sfreq)
        phase -= float(np.angle(h[0]))
    return float(np.mod(phase, 2 * np.pi)), freq


def decimation_factor(sfreq: float, net_sfreq: float) -> int:
    """Integer factor from the stream's rate to the network's (ValueError if not integer)."""
    q = sfreq / net_sfreq
    if not (np.isfinite(q) and q >= 1 and abs(q - round(q)) < 1e-9):
        raise ValueError(f"The stream's rate ({sfreq:g} Hz) must be an integer multiple of the "
                         f"network's ({net_sfreq:g} Hz); train the network at a rate that "
                         f"divides the stream's.")
    return int(round(q))


def offline_net_scores(net: SpindleNet, filtered: np.ndarray, sfreq: float,
                       stop_indices: np.ndarray, *, baseline_s: float = 60.0) -> np.ndarray:
    """Compute the trigger's scores on a whole band-passed recording, one per decision.

    Parameters
    ----------
    net : SpindleNet
        The trained network (its ``sfreq`` divides ``sfreq``).
    filtered : array, shape (n_times,)
        The causally band-passed signal (the loop's processing chain applied to it all).
    sfreq : float
        Its rate (Hz).
    stop_indices : array of int
        ``Decision.stop_index`` of each decision (index of the sample after the window).
    baseline_s : float
        Normalisation time constant (s), as the trigger's.

    Returns
    -------
    scores : ndarray, shape (len(stop_indices),)
        The probabilities :class:`SpindleNetTrigger` computes at those decisions.
    """
    q = decimation_factor(sfreq, net.sfreq)
    x, _ = causal_normalise(np.asarray(filtered, float)[::q], net.sfreq, baseline_s=baseline_s)
    ends = (np.asarray(stop_indices, int) - 1) // q
    return window_scores(net, x, ends)


class SpindleNetTrigger(OscillationTrigger):
    """Fire on a :class:`~bci.models.spindle_net.SpindleNet`'s spindle probability.

    Parameters
    ----------
    net : SpindleNet
        Trained network; its ``sfreq`` must divide the stream's rate and its ``n_times`` is
        the length (samples at ``net.sfreq``) it is run on each decision.
    channel : str | int
        Channel of the processed window (band-passed to the spindle band by the loop's
        processing chain) to read.
    threshold : float
        Probability (in (0, 1], or ``inf`` to score only) needed to start an event.
    min_duration_s, off_ratio, refractory_s, target_phase, max_delay_s, code
        As :class:`~bci.realtime.policies.OscillationTrigger` (``freq`` is the spindle
        frequency used by the phase estimate).
    freq : float
        Spindle centre frequency (Hz) for the target phase.
    baseline_s : float
        Time constant (s) of the causal normalisation (:func:`causal_normalise`).
    freq_band : tuple of float | None
        With ``target_phase``: search each spindle's frequency in this band (Hz) and estimate
        the phase with it (:func:`causal_phase`) over the last ``phase_s``; None: ``freq``.
    phase_s : float
        Samples (s, > 0) the frequency and phase are fitted on (with ``freq_band``).
    phase_sos : ndarray, shape (n_sections, 6) | None
        The loop's causal filter (at the stream's rate), whose phase lag at the fitted
        frequency is taken back out; None: none.
    """

    def __init__(self, net: SpindleNet, channel: str | int = 0, *, threshold: float = 0.5,
                 min_duration_s: float = 0.0, off_ratio: float = 0.8,
                 refractory_s: float = 1.0, freq: float = 13.5, baseline_s: float = 60.0,
                 target_phase: float | None = None, max_delay_s: float = 0.1,
                 code: int = 2, freq_band: tuple[float, float] | None = None,
                 phase_s: float = 0.3, phase_sos: np.ndarray | None = None) -> None:
        self.net = check_type(net, SpindleNet, "net")
        self.freq_band = None if freq_band is None else tuple(check_positive(
            f, "freq_band", unit="Hz") for f in check_type(freq_band, (tuple, list),
                                                          "freq_band"))
        if self.freq_band is not None and (len(self.freq_band) != 2
                                           or self.freq_band[0] > self.freq_band[1]):
            raise ValueError(f"freq_band must be (low, high) in Hz with low <= high, got "
                             f"{freq_band!r}.")
        self.phase_s = check_positive(phase_s, "phase_s", unit="s")
        self.phase_sos = None if phase_sos is None else np.array(phase_sos, float)
        super().__init__(channel, freq=freq, threshold=threshold, rms_s=1.0,
                         min_duration_s=min_duration_s, off_ratio=off_ratio,
                         refractory_s=refractory_s, relative=False, baseline_s=baseline_s,
                         target_phase=target_phase, max_delay_s=max_delay_s, code=code)

    def bind(self, *, classes: Sequence[str] | None, ch_names: Sequence[str],
             sfreq: float) -> None:
        """Check the channel and that the network's rate divides the stream's."""
        super().bind(classes=classes, ch_names=ch_names, sfreq=sfreq)
        decimation_factor(self.sfreq, self.net.sfreq)

    def decide(self, score: float, t: float, window: np.ndarray | None = None
               ) -> StimRequest | None:
        """Run the event state machine; with ``freq_band``, phase from :func:`causal_phase`."""
        if self.freq_band is None or self.target_phase is None or window is None:
            return super().decide(score, t, window)
        request = super().decide(score, t, None)  # event logic only
        if request is None:
            return None
        n = max(int(round(self.phase_s * self.sfreq)), 4)
        phase, freq = causal_phase(window[self._row()][-n:], self.sfreq, self.freq_band,
                                   sos=self.phase_sos)
        delay = np.mod(np.deg2rad(self.target_phase) - phase, 2 * np.pi) / (2 * np.pi * freq)
        if delay > self.max_delay_s:
            self._in_event, self._last = False, -np.inf  # try again at the next window
            return None
        return replace(request, at=t + delay, reason=request.reason + (
            f", {freq:.2f} Hz, phase {np.rad2deg(phase):.0f} deg, wait {delay * 1e3:.0f} ms"))

    def reset(self) -> None:
        """Forget the event state, the normalisation and the network's input history."""
        super().reset()
        self._next_index: int | None = None
        self._norm: tuple[float, int] | None = None
        n = getattr(self, "net", None)
        self._history = np.zeros(n.n_times if n is not None else 1, np.float32)

    def score(self, decision: Decision) -> float:
        """Spindle probability at the window's last sample (updates the input history)."""
        if decision.window is None:
            raise ValueError("SpindleNetTrigger needs the loop to pass the window.")
        if self.sfreq is None:
            raise RuntimeError("Bind the trigger to a stream first (the loop does).")
        q = decimation_factor(self.sfreq, self.net.sfreq)
        x = decision.window[self._row()]
        stop = int(decision.stop_index)
        start = stop - len(x) if self._next_index is None else max(self._next_index,
                                                                    stop - len(x))
        self._next_index = stop
        first = -(-start // q) * q  # first kept (multiple of q) absolute index >= start
        kept = x[first - (stop - len(x)):: q] if first < stop else x[:0]
        if len(kept):
            y, self._norm = causal_normalise(kept, self.net.sfreq, baseline_s=self.baseline_s,
                                             state=self._norm)
            n = self.net.n_times
            self._history = np.concatenate([self._history, y.astype(np.float32)])[-n:]
        with torch.no_grad():
            logit = self.net(torch.from_numpy(self._history[None, None].copy()))[0, -1]
        return float(torch.sigmoid(logit))
