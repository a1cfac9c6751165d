"""Spindle-triggered stimulation driven by a small causal network (Portiloop-style).

:class:`SpindleNetTrigger` is an :class:`~bci.realtime.policies.OscillationTrigger` whose score
is a :class:`~bci.models.spindle_net.SpindleNet`'s spindle probability instead of a relative
RMS: every decision it takes the window's new (band-passed) samples, decimates them to the
network's rate, normalises them causally (:func:`~bci.models.spindle_net.causal_normalise`)
and runs the network on the last ``net.n_times`` of them. The event logic (threshold held for
``min_duration_s``, once per event, refractory period, optional target phase) is the
oscillation trigger's. :func:`offline_net_scores` computes the same scores on a whole
recording in one batch (for tuning thresholds and leave-one-out evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._checks import check_type
from ..models.spindle_net import SpindleNet, causal_normalise, window_scores
from .events import Decision
from .policies import OscillationTrigger

__all__ = ["SpindleNetTrigger", "decimation_factor", "offline_net_scores"]


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
    """

    def __init__(self, net: SpindleNet, channel: str | int = 0, *, threshold: float = 0.5,
                 min_duration_s: float = 0.0, off_ratio: float = 0.8,
                 refractory_s: float = 1.0, freq: float = 13.5, baseline_s: float = 60.0,
                 target_phase: float | None = None, max_delay_s: float = 0.1,
                 code: int = 2) -> None:
        self.net = check_type(net, SpindleNet, "net")
        super().__init__(channel, freq=freq, threshold=threshold, rms_s=1.0,
                         min_duration_s=min_duration_s, off_ratio=off_ratio,
                         refractory_s=refractory_s, relative=False, baseline_s=baseline_s,
                         target_phase=target_phase, max_delay_s=max_delay_s, code=code)

    def bind(self, *, classes: Sequence[str] | None, ch_names: Sequence[str],
             sfreq: float) -> None:
        """Check the channel and that the network's rate divides the stream's."""
        super().bind(classes=classes, ch_names=ch_names, sfreq=sfreq)
        decimation_factor(self.sfreq, self.net.sfreq)

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
