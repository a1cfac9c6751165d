"""Replay cued trials and rest periods of a recording through the online loop.

The primitives of the pseudo-online evaluation (:mod:`bci.realtime.pseudo_online`): for each
cue, the recording from one window before it to a horizon after it is fed to a fresh
:class:`~bci.realtime.loop.OnlineLoop` (an unthreaded stream over an
:class:`~bci.realtime.sources.ArraySource`, stamped in seconds after the cue), which decodes a
window every ``step_s``; a :class:`ConfidencePolicy` turns confident windows into activations.
Rest periods are replayed the same way to count false activations. :func:`find_cues` finds the
cues of MOABB's epochs in a continuous run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_positive, check_real, check_type, ensure_int
from .._logging import logger as _root_logger
from .events import Decision, StimRequest
from .loop import OnlineLoop
from .policies import Policy
from .safety import SafetyGate
from .sources import ArraySource
from .stream import Stream

logger = _root_logger.getChild("realtime.trial_replay")

__all__ = ["ConfidencePolicy", "TrialReplay", "find_cues", "replay_rest", "replay_trials"]

class ConfidencePolicy(Policy):
    """Activate when the most probable class reaches a probability, ``n_consecutive`` times.

    The decision policy of the pseudo-online evaluation: each activation is a stimulation
    request whose ``code`` is the column of the class selected (so the loop records it as a
    stimulus); it re-arms when that class's probability falls to ``off`` or another class
    leads, and no activation follows another within ``refractory_s``.

    Parameters
    ----------
    on : float
        Probability (in [0, 1]) the most probable class must reach.
    off : float | None
        Re-arm once the selected class's probability fell to ``off`` or below (hysteresis,
        ``off <= on``); None: once it fell below ``on``.
    n_consecutive : int
        Consecutive windows (>= 1) in which the same class must reach ``on``.
    refractory_s : float
        Minimum time (s, finite, >= 0) between two activations.
    """

    def __init__(self, on: float = 0.8, *, off: float | None = None, n_consecutive: int = 1,
                 refractory_s: float = 0.0) -> None:
        self.on = check_real(on, "on", low=0.0, high=1.0, kind="probability")
        self.off = None if off is None else check_real(off, "off", low=0.0, high=self.on,
                                                         kind="probability")
        self.n_consecutive = ensure_int(n_consecutive, "n_consecutive", minimum=1,
                                        what="windows")
        self.refractory_s = check_positive(refractory_s, "refractory_s", unit="s",
                                           allow_zero=True)
        self.reset()

    def reset(self) -> None:
        """Re-arm, forget the run of confident windows and the refractory clock."""
        self._armed_class: int | None = None  # class that fired and has not fallen yet
        self._run_class, self._run = -1, 0
        self._last = -np.inf

    def update(self, decision: Decision) -> StimRequest | None:
        """Return an activation (code = class column) when the policy's conditions hold."""
        if decision.proba is None:
            raise ValueError("ConfidencePolicy needs a decoder's probabilities; give the loop "
                             "a decoder.")
        proba = np.asarray(decision.proba, dtype=float)
        col = int(np.argmax(proba))
        p = float(proba[col])
        decision.score = p
        if self._armed_class is not None:
            p_armed = proba[self._armed_class]
            if col != self._armed_class or (p_armed < self.on if self.off is None
                                            else p_armed <= self.off):
                self._armed_class = None
            else:
                return None
        if p >= self.on:
            self._run = self._run + 1 if col == self._run_class else 1
            self._run_class = col
        else:
            self._run_class, self._run = -1, 0
        if self._run < self.n_consecutive or decision.t_end - self._last < self.refractory_s:
            return None
        self._armed_class, self._last = col, decision.t_end
        self._run_class, self._run = -1, 0
        name = self.classes[col] if self.classes else col
        return StimRequest(code=col, reason=f"p({name})={p:.2f}>={self.on:g}",
                           t_trigger=decision.t_end)


@dataclass
class TrialReplay:
    """Decisions of the online loop on the trials of one replay.

    Attributes
    ----------
    times_s : ndarray, shape (n_steps,)
        Time (s) after the cue of the last sample of each window: ``0, step_s, 2 step_s...``.
    proba : ndarray, shape (n_trials, n_steps, n_classes)
        Decoder probabilities (NaN where a window could not be decided: the recording starts
        or ends too close to the cue).
    activations : list of list of (float, int)
        For each trial, the policy's activations: (time after the cue in s, class column).
    signal_s : float
        Seconds of recording replayed (each trial: one window before the cue, then up to the
        horizon).
    wall_s : float
        Seconds it took.
    n_windows : int
        Windows decided. A live loop takes ``step_s`` per window, so
        ``n_windows * step_s / wall_s`` is the speed-up over real time.
    cpu_s : float
        CPU seconds of this process meanwhile (``time.process_time``): the speed-up on an
        idle machine is about ``n_windows * step_s / cpu_s`` when the replay runs alone.
    """

    times_s: np.ndarray
    proba: np.ndarray
    activations: list[list[tuple[float, int]]]
    signal_s: float = 0.0
    wall_s: float = 0.0
    n_windows: int = 0
    cpu_s: float = 0.0


def _permissive_safety() -> SafetyGate:
    """No limit: the evaluation counts every activation (a stimulation gate would hide some)."""
    return SafetyGate(min_interval_s=0.0, max_per_minute=None, max_per_session=None)


def _check_timing(decoder: Any, sfreq: float, step_s: float) -> float:
    step_s = check_positive(step_s, "step_s", unit="s")
    window_s = decoder.n_times / sfreq
    if step_s > window_s + 0.5 / sfreq:
        raise ValueError(
            f"step_s={step_s:g} s is longer than the window ({window_s:g} s): samples between "
            f"windows would never be decoded; use step_s <= {window_s:g} s (e.g. 0.1).")
    return step_s


def _replay_segment(decoder: Any, data: np.ndarray, sfreq: float, ch_names: list[str],
                    t0: float, step_s: float, policy: Policy | None, chunk_size: int):
    """Run the online loop over one stretch of recording; return (decisions, stim events)."""
    if policy is not None:
        policy.reset()
    source = ArraySource(data, sfreq, ch_names, chunk_size=chunk_size, t0=t0,
                         name="pseudo-online")
    stream = Stream(source, threaded=False, buffer_s=data.shape[1] / sfreq + 1.0)
    loop = OnlineLoop(stream, decoder, step_s=step_s, policy=policy,
                      safety=_permissive_safety(), catch_up=True, blas_threads=None)
    loop.run()
    bad = {k: v for k, v in loop.faults.items() if k != "nan_window"}
    if bad:
        raise RuntimeError(f"The online loop failed while replaying ({dict(bad)}; "
                           f"{loop.stopped_reason}); check the decoder on these windows.")
    return loop.decisions, loop.stim_events


def replay_trials(decoder: Any, signal, sfreq: float, ch_names: Sequence[str],
                  onsets: Sequence[int], *, step_s: float = 0.1, horizon_s: float | None = None,
                  policy: Policy | None = None, chunk_size: int = 32) -> TrialReplay:
    """Replay the recording around each cue through the online loop.

    For each cue, the samples from one window before it (the first window ends on the cue) to
    ``horizon_s`` after it are fed to an :class:`~bci.realtime.loop.OnlineLoop` (fresh stream,
    same decoder, the policy reset), which decodes a window every ``step_s``.

    Parameters
    ----------
    decoder : Decoder
        What the loop runs (``ch_names``, ``sfreq``, ``n_times``, ``classes``,
        ``predict_proba``): a :class:`~bci.models.decoder.Decoder` or a duck-typed object.
    signal : array, shape (n_chans, n_samples)
        The continuous recording (volts for a Decoder), not modified.
    sfreq : float
        Its sampling rate (Hz).
    ch_names : sequence of str
        Its channels (the decoder picks its own by name).
    onsets : sequence of int
        Sample index of each cue in ``signal``.
    step_s : float
        Time (s) between window ends (> 0, at most the window).
    horizon_s : float | None
        Last window end (s after the cue, >= 0); the end of the decoder's epoch
        (``decoder.tmax``) when None.
    policy : Policy | None
        Turns windows into activations (e.g. :class:`ConfidencePolicy`); none: no activation.
    chunk_size : int
        Samples per pull of the replayed source (>= 1).

    Returns
    -------
    replay : TrialReplay
    """
    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise ValueError(f"signal must be 2-D (n_chans, n_samples), got shape {signal.shape}.")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    step_s = _check_timing(decoder, sfreq, step_s)
    if horizon_s is None:
        horizon_s = float(decoder.tmax)
    horizon_s = check_positive(horizon_s, "horizon_s", unit="s", allow_zero=True)
    chunk_size = ensure_int(chunk_size, "chunk_size", minimum=1, what="samples")
    check_type(policy, (Policy, type(None)), "policy")
    ch_names = list(ch_names)
    n_window = int(decoder.n_times)
    n_steps = int(np.floor(horizon_s / step_s + 1e-9)) + 1
    times = np.arange(n_steps) * step_s
    n_horizon = int(round(times[-1] * sfreq))
    onsets = [int(c) for c in onsets]
    proba = np.full((len(onsets), n_steps, len(decoder.classes)), np.nan)
    activations: list[list[tuple[float, int]]] = []
    signal_s, n_windows, t_start, c_start = 0.0, 0, time.perf_counter(), time.process_time()
    for i, cue in enumerate(onsets):
        # the first window ends on the cue, or on the first step after it that has a whole
        # window of recording before it (a cue near the start of its run)
        j0 = 0
        while cue + int(round(j0 * step_s * sfreq)) - n_window + 1 < 0:
            j0 += 1
        start = cue + int(round(j0 * step_s * sfreq)) - n_window + 1
        stop = min(cue + n_horizon + 2, signal.shape[1])
        if stop - start < n_window:
            logger.warning("Trial %d (cue at sample %d) is too close to the start or end of "
                           "its recording for one window; not decided.", i, cue)
            activations.append([])
            continue
        decisions, stims = _replay_segment(decoder, signal[:, start:stop], sfreq, ch_names,
                                           (start - cue) / sfreq, step_s, policy, chunk_size)
        signal_s += (stop - start) / sfreq
        n_windows += len(decisions)
        for d in decisions:
            j = int(round(d.t_end / step_s))
            if 0 <= j < n_steps and abs(d.t_end - j * step_s) <= 0.5 / sfreq + 1e-9:
                proba[i, j] = d.proba
        activations.append([(float(s.t_trigger), int(s.code)) for s in stims
                            if s.t_trigger <= times[-1] + 0.5 / sfreq])
    return TrialReplay(times, proba, activations, signal_s, time.perf_counter() - t_start,
                       n_windows, time.process_time() - c_start)


def replay_rest(decoder: Any, signal, sfreq: float, ch_names: Sequence[str],
                segments: Sequence[tuple[int, int]], *, step_s: float = 0.1,
                policy: Policy, chunk_size: int = 32) -> tuple[int, float, float]:
    """Replay no-control periods through the online loop and count the activations.

    Parameters
    ----------
    decoder, signal, sfreq, ch_names, step_s, chunk_size
        See :func:`replay_trials`.
    segments : sequence of (int, int)
        (first sample, stop sample) of each rest period in ``signal``; windows lie wholly
        inside a period (shorter periods give none).
    policy : Policy
        The decision policy (reset at each period).

    Returns
    -------
    n_activations : int
        Activations (all false: the user is not trying to control).
    observed_s : float
        Decision time covered: decided windows times ``step_s`` (s).
    signal_s : float
        Seconds of recording replayed.
    """
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    step_s = _check_timing(decoder, sfreq, step_s)
    check_type(policy, Policy, "policy")
    n_act, n_windows, signal_s = 0, 0, 0.0
    for start, stop in segments:
        start, stop = max(int(start), 0), min(int(stop), np.shape(signal)[1])
        if stop - start < decoder.n_times:
            continue
        decisions, stims = _replay_segment(decoder, np.asarray(signal)[:, start:stop], sfreq,
                                           list(ch_names), start / sfreq, step_s, policy,
                                           chunk_size)
        n_act += len(stims)
        n_windows += len(decisions)
        signal_s += (stop - start) / sfreq
    return n_act, n_windows * step_s, signal_s


def find_cues(raw: Any, event_id: Mapping[str, int], tmin: float, tmax: float, *,
              interval_start_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Cue samples and class names of the epochs MOABB cuts from one continuous run.

    Uses MOABB's own event extraction (:class:`moabb.datasets.preprocessing.RawToEvents`:
    annotations or stim channel) and keeps the events whose epoch ``[tmin, tmax]`` (s, relative
    to the event) lies inside the recording, as :class:`mne.Epochs` does.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        One run of a MOABB dataset.
    event_id : mapping of str to int
        The paradigm's classes (``paradigm.used_events(dataset)``).
    tmin, tmax : float
        Epoch limits (s) relative to the event (MOABB adds ``dataset.interval[0]``).
    interval_start_s : float
        ``dataset.interval[0]``: MOABB datasets shift their annotations by it (an annotation
        starts where the epoch of its trial starts) and its event reader shifts them back.

    Returns
    -------
    onsets : ndarray of int
        Sample index of each event in ``raw.get_data()`` (``raw.first_samp`` removed).
    names : ndarray of str
        Class of each event.

    Raises
    ------
    TypeError
        ``raw`` is not a continuous recording.
    """
    import mne
    from moabb.datasets.preprocessing import RawToEvents

    if not isinstance(raw, mne.io.BaseRaw):
        raise TypeError(
            f"Pseudo-online evaluation replays continuous recordings, but the dataset gave a "
            f"{type(raw).__name__} for a run; use a MOABB dataset whose get_data returns "
            "mne.io.Raw runs with the trial events (annotations or a stim channel).")
    events = RawToEvents(event_id=dict(event_id),
                         interval=(float(interval_start_s), 0.0)).transform(raw)
    sfreq = raw.info["sfreq"]
    onsets = events[:, 0] - raw.first_samp
    first, last = int(round(tmin * sfreq)), int(round(tmax * sfreq))
    keep = (onsets + first >= 0) & (onsets + last < raw.n_times)
    code_to_name = {v: k for k, v in event_id.items()}
    return onsets[keep].astype(int), np.array([code_to_name[c] for c in events[keep, 2]])


def _rest_segments(raw: Any, rest_events: Sequence[str], classes: Sequence[str],
                   interval_start_s: float) -> list[tuple[int, int]]:
    """(start, stop) samples of the rest annotations that are not a class of the paradigm.

    A period runs from its cue to the next annotation's cue (MOABB annotations start
    ``interval_start_s`` after the cue, see :func:`find_cues`).
    """
    names = [r for r in rest_events if r not in set(classes)]
    ann = raw.annotations
    if not names or not len(ann):
        return []
    sfreq = raw.info["sfreq"]
    onsets = np.asarray(ann.onset) - (raw.first_time if ann.orig_time is not None else 0.0)
    onsets = onsets - interval_start_s  # the cues
    order = np.argsort(onsets)
    onsets, desc = onsets[order], np.asarray(ann.description)[order]
    segments = []
    for k, (onset, name) in enumerate(zip(onsets, desc, strict=True)):
        if name not in names:
            continue
        end = onsets[k + 1] if k + 1 < len(onsets) else raw.times[-1]
        segments.append((int(round(onset * sfreq)), int(round(end * sfreq))))
    return segments
