"""Event-level seizure-detection metrics from window decisions.

A detector scores sliding windows; each window's decision is available at its end time ``t``
(causal). The metrics follow common seizure-detection practice (the *any-overlap* scoring of
Ziyabari et al. 2017 / the Temple University Hospital seizure scoring, and the event metrics of
the epilepsy benchmarks of Dan et al. 2024):

1. **Decisions**: ``score >= threshold``; with ``min_consecutive = k`` a window is positive only
   when it and the ``k - 1`` windows before it are all above threshold (a causal k-of-k rule
   that suppresses isolated positives).
2. **Alarm events**: runs of consecutive positive windows; runs separated by at most
   ``merge_gap_s`` seconds (between the last decision of one and the first of the next) are
   merged (a refractory period: one alarm per episode). An event spans ``[first, last]``
   decision times.
3. **Sensitivity** (event level, any-overlap): the fraction of true seizures ``[onset,
   offset]`` overlapped by at least one alarm event, where a seizure's end is extended by
   ``tolerance_s`` (late decisions of windows that still contain the seizure count):
   ``first <= offset + tolerance_s`` and ``last >= onset``.
4. **Latency** of a detected seizure: the first positive decision time in ``[onset, offset +
   tolerance_s]`` minus the onset (seconds, >= 0); an alarm already running at the onset
   gives the time of the first positive decision at or after it.
5. **False alarms per hour**: alarm events that overlap no (tolerance-extended) seizure,
   divided by the non-seizure time of the recording (hours): ``duration - sum(offset -
   onset)``.
6. **Specificity** (window level): the fraction of non-seizure windows with a negative decision
   (after step 1); window-level sensitivity likewise over seizure windows.

Several recordings scored one by one are pooled by :func:`pool_seizure_metrics`; window or
segment decisions without the event rules are scored by :func:`binary_scores` and
:func:`segment_scores`.

A model's probabilities over held-out continuous recordings: :func:`predict_stream` cuts each
recording into sliding windows and keeps every model's seizure probability (a
:class:`StreamTrace`), :func:`score_traces` scores one model's traces with the rules above and
pools them, :func:`plot_traces` draws them with the seizures and the alarms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .._checks import check_positive, check_real, check_type, ensure_int
from ..data.seizure import SeizureStream, sliding_windows
from .events import match_events

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

__all__ = ["SeizureMetrics", "StreamScores", "StreamTrace", "alarm_events", "binary_scores",
           "consecutive_decisions", "plot_traces", "pool_seizure_metrics", "predict_stream",
           "score_traces", "seizure_metrics", "segment_scores"]


@dataclass
class SeizureMetrics:
    """Event- and window-level seizure-detection metrics (see the module docstring).

    Attributes
    ----------
    sensitivity : float
        Detected seizures / seizures (nan without seizures).
    specificity : float
        Negative non-seizure windows / non-seizure windows (nan without such windows).
    false_alarms_per_hour : float
        False alarm events per hour of non-seizure time.
    latency_s : float
        Mean detection latency over detected seizures (seconds; nan when none detected).
    latencies_s : list of float
        Latency of each detected seizure (seconds).
    window_sensitivity : float
        Positive seizure windows / seizure windows.
    n_seizures, n_detected, n_false_alarms, n_alarms : int
        Counts.
    interictal_hours : float
        Non-seizure time the false alarms are divided by (hours).
    """

    sensitivity: float
    specificity: float
    false_alarms_per_hour: float
    latency_s: float
    window_sensitivity: float
    n_seizures: int
    n_detected: int
    n_false_alarms: int
    n_alarms: int
    interictal_hours: float
    latencies_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        """All fields as a plain dict (JSON-serialisable; nan stays a float)."""
        return asdict(self)


def _as_1d(values, name: str, dtype=float) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per window), got shape {arr.shape}.")
    return arr


def consecutive_decisions(decisions, min_consecutive: int = 1) -> np.ndarray:
    """Apply the causal k-of-k rule to window decisions.

    A window is True where it and the ``min_consecutive - 1`` windows before it are all True.

    Examples
    --------
    >>> consecutive_decisions([1, 1, 0, 1, 1, 1], 2).astype(int).tolist()
    [0, 1, 0, 0, 1, 1]
    """
    d = _as_1d(decisions, "decisions", bool)
    min_consecutive = ensure_int(min_consecutive, "min_consecutive", minimum=1, what="windows")
    if min_consecutive == 1:
        return d.copy()
    run = np.zeros(len(d), dtype=int)
    count = 0
    for i, value in enumerate(d):
        count = count + 1 if value else 0
        run[i] = count
    return run >= min_consecutive


def alarm_events(decisions, times, *, merge_gap_s: float = 0.0) -> np.ndarray:
    """Group positive windows into alarm events ``(n_events, 2)``.

    An event is the ``[first, last]`` decision times of a run of positive windows; runs whose
    gap is at most ``merge_gap_s`` seconds are merged.

    Parameters
    ----------
    decisions : array of bool, shape (n_windows,)
        Window decisions, in time order.
    times : array, shape (n_windows,)
        Decision time of each window (seconds, increasing).
    merge_gap_s : float
        Runs separated by at most this time (last decision of one to first of the next) are one
        event; 0 merges only adjacent windows.

    Examples
    --------
    >>> alarm_events([0, 1, 1, 0, 0, 1, 0, 1], np.arange(8.0), merge_gap_s=2.0).tolist()
    [[1.0, 2.0], [5.0, 7.0]]
    """
    d = _as_1d(decisions, "decisions", bool)
    t = _as_1d(times, "times")
    if len(d) != len(t):
        raise ValueError(f"decisions ({len(d)}) and times ({len(t)}) must have one value per "
                         "window.")
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("times must be strictly increasing (window decision times, seconds).")
    check_positive(merge_gap_s, "merge_gap_s", allow_zero=True, allow_inf=True, unit="seconds")
    events: list[list[float]] = []
    prev = False
    for value, time in zip(d, t, strict=True):
        if value:
            if not prev and events and time - events[-1][1] <= merge_gap_s:
                events[-1][1] = time
            elif not prev:
                events.append([time, time])
            else:
                events[-1][1] = time
        prev = value
    return np.array(events, dtype=float).reshape(-1, 2)


def seizure_metrics(scores, times, intervals, *, labels=None, threshold: float = 0.5,
                    min_consecutive: int = 1, merge_gap_s: float = 0.0,
                    tolerance_s: float = 0.0, duration_s: float | None = None
                    ) -> SeizureMetrics:
    """Event-level sensitivity, false alarms per hour, latency and window specificity.

    Parameters
    ----------
    scores : array, shape (n_windows,)
        Seizure probabilities (or any score, or 0/1 decisions) of windows in time order.
    times : array, shape (n_windows,)
        Decision time of each window (its end, seconds from the start of the recording).
    intervals : array, shape (n_seizures, 2)
        True seizure onsets and offsets (seconds).
    labels : array of int, shape (n_windows,) | None
        Window labels (1: seizure) for the window-level scores; when None a window is a seizure
        window when its decision time lies in a seizure.
    threshold : float
        Decision threshold on ``scores``.
    min_consecutive : int
        Consecutive above-threshold windows needed for a positive decision.
    merge_gap_s : float
        Refractory merge of alarm runs (seconds).
    tolerance_s : float
        Decisions up to this long after a seizure's offset still detect it (e.g. the window
        length, whose last windows still contain the seizure).
    duration_s : float | None
        Length of the recording (seconds); the last decision time when None.

    Returns
    -------
    metrics : SeizureMetrics

    Examples
    --------
    >>> t = np.arange(1.0, 11.0)                  # decisions at 1 .. 10 s
    >>> p = [0, 0, 0, 0.9, 0.8, 0, 0, 0, 0.7, 0]   # alarm at 4-5 s, another at 9 s
    >>> m = seizure_metrics(p, t, [[3.5, 6.0]], duration_s=3600.0)
    >>> m.sensitivity, m.latency_s, m.n_false_alarms
    (1.0, 0.5, 1)
    """
    scores = _as_1d(scores, "scores")
    times = _as_1d(times, "times")
    if len(scores) != len(times):
        raise ValueError(f"scores ({len(scores)}) and times ({len(times)}) must have one value "
                         "per window.")
    if len(scores) == 0:
        raise ValueError("scores is empty: there are no windows to score.")
    intervals = np.asarray(intervals, dtype=float).reshape(-1, 2)
    if np.any(intervals[:, 1] < intervals[:, 0]):
        raise ValueError("Every seizure interval must be [onset, offset] with offset >= onset "
                         "(seconds).")
    check_positive(tolerance_s, "tolerance_s", allow_zero=True, allow_inf=True, unit="seconds")
    duration_s = check_positive(float(times[-1]) if duration_s is None else duration_s,
                                "duration_s", unit="seconds")
    decisions = consecutive_decisions(scores >= threshold, min_consecutive)
    events = alarm_events(decisions, times, merge_gap_s=merge_gap_s)

    hits = match_events(events, intervals, after_s=tolerance_s)  # (n_alarms, n_seizures)
    n_detected, latencies = 0, []
    for (onset, offset), hit in zip(intervals, hits.T, strict=True):
        if hit.any():
            n_detected += 1
            inside = decisions & (times >= onset) & (times <= offset + tolerance_s)
            latencies.append(float(times[np.argmax(inside)] - onset) if inside.any() else 0.0)
    n_false = int((~hits.any(1)).sum())
    interictal_s = max(duration_s - float((intervals[:, 1] - intervals[:, 0]).sum()), 1e-9)

    if labels is None:
        labels = np.zeros(len(times), dtype=bool)
        for onset, offset in intervals:
            labels |= (times >= onset) & (times <= offset)
    else:
        labels = _as_1d(labels, "labels", int).astype(bool)
        if len(labels) != len(times):
            raise ValueError(f"labels ({len(labels)}) and times ({len(times)}) must have one "
                             "value per window.")
    n_neg, n_pos = int((~labels).sum()), int(labels.sum())
    specificity = float((~decisions & ~labels).sum() / n_neg) if n_neg else math.nan
    window_sens = float((decisions & labels).sum() / n_pos) if n_pos else math.nan
    n_seizures = len(intervals)
    return SeizureMetrics(
        sensitivity=n_detected / n_seizures if n_seizures else math.nan,
        specificity=specificity,
        false_alarms_per_hour=n_false / (interictal_s / 3600.0),
        latency_s=float(np.mean(latencies)) if latencies else math.nan,
        window_sensitivity=window_sens, n_seizures=n_seizures, n_detected=n_detected,
        n_false_alarms=n_false, n_alarms=len(events), interictal_hours=interictal_s / 3600.0,
        latencies_s=latencies)


def pool_seizure_metrics(metrics: Sequence[SeizureMetrics], n_negative: Sequence[int],
                         n_positive: Sequence[int]) -> SeizureMetrics:
    """Event metrics of several recordings scored one by one, pooled as one long recording.

    Seizures, detections, false alarms, alarms and non-seizure hours are summed; the
    sensitivity and the false alarms per hour are computed from the sums; the latency is the
    mean over all detected seizures; window specificity and sensitivity are the recordings'
    values weighted by their non-seizure (``n_negative``) and seizure (``n_positive``) window
    counts (a recording without such windows, whose value is nan, has weight 0).

    Parameters
    ----------
    metrics : sequence of SeizureMetrics
        One per recording, from :func:`seizure_metrics`.
    n_negative, n_positive : sequence of int
        Non-seizure and seizure windows of each recording (the denominators of its window
        specificity and sensitivity).

    Returns
    -------
    pooled : SeizureMetrics
        A copy of the only element when there is one recording.

    Examples
    --------
    >>> t = np.arange(1.0, 11.0)
    >>> a = seizure_metrics([0, 0, 0, 1, 1, 0, 0, 0, 0, 0], t, [[3.5, 6.0]], duration_s=3600.0)
    >>> b = seizure_metrics([0, 0, 0, 0, 0, 0, 0, 0, 1, 0], t, [], duration_s=3600.0)
    >>> m = pool_seizure_metrics([a, b], n_negative=[7, 10], n_positive=[3, 0])
    >>> m.sensitivity, m.n_false_alarms, m.n_alarms, round(m.interictal_hours * 3600, 6)
    (1.0, 1, 2, 7197.5)
    >>> round(m.specificity * 17, 6)  # (7 x 7/7 + 10 x 9/10) / 17 windows
    16.0
    """
    metrics = list(check_type(metrics, (list, tuple), "metrics"))
    for m in metrics:
        check_type(m, SeizureMetrics, "metrics")
    n_negative = [ensure_int(n, "n_negative", minimum=0, what="windows") for n in n_negative]
    n_positive = [ensure_int(n, "n_positive", minimum=0, what="windows") for n in n_positive]
    if not metrics or not len(metrics) == len(n_negative) == len(n_positive):
        raise ValueError(f"metrics ({len(metrics)}), n_negative ({len(n_negative)}) and "
                         f"n_positive ({len(n_positive)}) need one entry per recording, and at "
                         "least one recording.")
    if len(metrics) == 1:
        return SeizureMetrics(**{**metrics[0].as_dict(),
                                 "latencies_s": list(metrics[0].latencies_s)})
    total = {key: sum(getattr(m, key) for m in metrics)
             for key in ("n_seizures", "n_detected", "n_false_alarms", "n_alarms",
                         "interictal_hours")}
    latencies = [x for m in metrics for x in m.latencies_s]

    def weighted(key: str, counts: Sequence[int]) -> float:
        if not sum(counts):
            return math.nan
        total_weight = sum(getattr(m, key) * n for m, n in zip(metrics, counts, strict=True) if n)
        return total_weight / sum(counts)

    return SeizureMetrics(
        sensitivity=(total["n_detected"] / total["n_seizures"] if total["n_seizures"]
                     else math.nan),
        specificity=weighted("specificity", n_negative),
        false_alarms_per_hour=total["n_false_alarms"] / total["interictal_hours"],
        latency_s=float(np.mean(latencies)) if latencies else math.nan,
        window_sensitivity=weighted("window_sensitivity", n_positive),
        **total, latencies_s=latencies)


def binary_scores(y_pred, y_true) -> dict[str, float]:
    """Accuracy, sensitivity, specificity and balanced accuracy of binary decisions.

    Parameters
    ----------
    y_pred, y_true : array of bool or int, shape (n_windows,)
        Decisions and truths (nonzero = seizure), e.g. one per window or per segment.

    Returns
    -------
    scores : dict
        ``accuracy``, ``sensitivity`` (positives found / positives), ``specificity``
        (negatives found / negatives), ``balanced_accuracy`` (their mean); a rate without any
        case to count is 0.

    Examples
    --------
    >>> binary_scores([1, 1, 0, 0, 0], [1, 0, 0, 0, 1])
    {'accuracy': 0.6, 'sensitivity': 0.5, 'specificity': 0.6666666666666666, \
'balanced_accuracy': 0.5833333333333333}
    """
    pred, true = _as_1d(y_pred, "y_pred", bool), _as_1d(y_true, "y_true", bool)
    if len(pred) != len(true):
        raise ValueError(f"y_pred ({len(pred)}) and y_true ({len(true)}) must have one value "
                         "per window.")
    sens = float((pred & true).sum() / max(true.sum(), 1))
    spec = float((~pred & ~true).sum() / max((~true).sum(), 1))
    return {"accuracy": float((pred == true).mean()), "sensitivity": sens,
            "specificity": spec, "balanced_accuracy": (sens + spec) / 2}


def segment_scores(proba, owner, ictal, *, threshold: float = 0.5) -> dict[str, float]:
    """Binary scores of segments whose seizure probability is the mean over their windows.

    Parameters
    ----------
    proba : array, shape (n_windows,)
        Seizure probability of each window.
    owner : array of int, shape (n_windows,)
        Index of the segment each window was cut from
        (:func:`bci.data.seizure.segment_windows`).
    ictal : array of bool, shape (n_segments,)
        Truth of every segment, indexed by ``owner`` (e.g. ``SeizureSegments.ictal``).
    threshold : float
        A segment is a seizure when its mean probability is at least this.

    Returns
    -------
    scores : dict
        :func:`binary_scores` of the segments that own windows, in increasing index order.

    Examples
    --------
    >>> segment_scores([0.9, 0.7, 0.2, 0.6], [0, 0, 2, 2], [True, False, False])
    {'accuracy': 1.0, 'sensitivity': 1.0, 'specificity': 1.0, 'balanced_accuracy': 1.0}
    """
    proba = _as_1d(proba, "proba", None)  # float32 probabilities average in float32
    owner = _as_1d(owner, "owner", int)
    ictal = _as_1d(ictal, "ictal", bool)
    threshold = check_real(threshold, "threshold")
    if len(proba) != len(owner):
        raise ValueError(f"proba ({len(proba)}) and owner ({len(owner)}) must have one value "
                         "per window.")
    idx = np.unique(owner)
    if len(idx) and (idx[0] < 0 or idx[-1] >= len(ictal)):
        raise ValueError(f"owner holds segment indices in [{idx[0]}, {idx[-1]}]; ictal has "
                         f"{len(ictal)} segments.")
    seg_p = np.array([proba[owner == i].mean() for i in idx])
    return binary_scores(seg_p >= threshold, ictal[idx])


@dataclass
class StreamTrace:
    """Seizure probabilities of one or more models over one continuous recording.

    Attributes
    ----------
    name : str
        The recording (e.g. its file name).
    times : ndarray, shape (n_windows,)
        Decision time of each sliding window: its end (seconds from the recording's start).
    labels : ndarray of int, shape (n_windows,)
        1 for seizure windows (at least half inside a seizure).
    intervals : ndarray, shape (n_seizures, 2)
        True seizure onsets and offsets (seconds).
    duration_s : float
        Length of the recording (seconds).
    probas : dict of str to ndarray, shape (n_windows,)
        Seizure probability of every window, per model name.
    """

    name: str
    times: np.ndarray
    labels: np.ndarray
    intervals: np.ndarray
    duration_s: float
    probas: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class StreamScores:
    """One model's scores over several recordings (:func:`score_traces`).

    Attributes
    ----------
    pooled : SeizureMetrics
        Event metrics pooled over the recordings (:func:`pool_seizure_metrics`).
    recordings : list of SeizureMetrics
        Event metrics of each recording, scored on its own.
    window : dict
        :func:`binary_scores` of the raw window decisions (``proba >= threshold``, without the
        consecutive rule) over all recordings' windows.
    """

    pooled: SeizureMetrics
    recordings: list[SeizureMetrics]
    window: dict[str, float]


def predict_stream(models: Mapping[str, nn.Module], stream: SeizureStream, *,
                   window_s: float, step_s: float, batch_size: int = 256) -> StreamTrace:
    """Cut a recording into sliding windows and compute each model's seizure probability.

    Parameters
    ----------
    models : mapping of str to torch.nn.Module
        Binary classifiers (class 1: seizure) taking windows ``(batch, n_chans, n_window)`` in
        the unit of ``stream.signal``, by name.
    stream : SeizureStream
        The recording (``signal`` ``(n_chans, n_samples)``, ``sfreq``, ``intervals``).
    window_s, step_s : float
        Window length and hop (seconds, > 0), as in training;
        :func:`bci.data.seizure.sliding_windows`.
    batch_size : int
        Windows per forward pass (:func:`bci.models.inference.predict_proba`).

    Returns
    -------
    trace : StreamTrace
        ``probas[name]`` is ``predict_proba(model, windows)[:, 1]`` (float32).
    """
    from ..models.inference import predict_proba  # torch only when predicting

    check_type(models, Mapping, "models")
    check_type(stream, SeizureStream, "stream")
    windows, labels, times = sliding_windows(stream.signal, stream.sfreq, window_s, step_s,
                                             stream.intervals)
    return StreamTrace(name=stream.name, times=times, labels=labels,
                       intervals=np.asarray(stream.intervals, dtype=float).reshape(-1, 2),
                       duration_s=stream.duration_s,
                       probas={name: predict_proba(model, windows, batch_size=batch_size)[:, 1]
                               for name, model in models.items()})


def score_traces(traces: Sequence[StreamTrace], model: str, *, threshold: float = 0.5,
                 min_consecutive: int = 1, merge_gap_s: float = 0.0,
                 tolerance_s: float = 0.0) -> StreamScores:
    """Score one model's probabilities on each recording and pool the event metrics.

    Each recording is scored on its own by :func:`seizure_metrics` (its window labels, its
    duration); the results are pooled by :func:`pool_seizure_metrics`, weighted by each
    recording's non-seizure and seizure window counts.

    Parameters
    ----------
    traces : sequence of StreamTrace
        From :func:`predict_stream`, one per recording.
    model : str
        Key of ``StreamTrace.probas`` to score.
    threshold, min_consecutive, merge_gap_s, tolerance_s
        The event rules of :func:`seizure_metrics`.

    Returns
    -------
    scores : StreamScores

    Examples
    --------
    >>> trace = StreamTrace("a", np.arange(1.0, 11.0), np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0]),
    ...                     np.array([[3.5, 6.0]]), 3600.0,
    ...                     {"m": np.array([0, 0, 0, 0.9, 0.8, 0, 0, 0, 0.7, 0])})
    >>> s = score_traces([trace], "m", tolerance_s=1.0)
    >>> s.pooled.sensitivity, s.pooled.n_false_alarms, s.window["sensitivity"]
    (1.0, 1, 0.6666666666666666)
    """
    traces = list(check_type(traces, (list, tuple), "traces"))
    if not traces:
        raise ValueError("traces is empty: score_traces needs at least one recording.")
    for trace in traces:
        check_type(trace, StreamTrace, "traces")
        if model not in trace.probas:
            raise ValueError(f"No probabilities of model {model!r} in trace {trace.name!r}; "
                             f"it has {sorted(trace.probas)}.")
    metrics = [seizure_metrics(t.probas[model], t.times, t.intervals, labels=t.labels,
                               threshold=threshold, min_consecutive=min_consecutive,
                               merge_gap_s=merge_gap_s, tolerance_s=tolerance_s,
                               duration_s=t.duration_s) for t in traces]
    pooled = pool_seizure_metrics(metrics, [int((t.labels == 0).sum()) for t in traces],
                                  [int((t.labels == 1).sum()) for t in traces])
    proba = np.concatenate([t.probas[model] for t in traces])
    window = binary_scores(proba >= threshold, np.concatenate([t.labels for t in traces]))
    return StreamScores(pooled=pooled, recordings=metrics, window=window)


def plot_traces(traces: Sequence[StreamTrace], *, threshold: float = 0.5,
                min_consecutive: int = 1, merge_gap_s: float = 0.0,
                title: str | None = None) -> Figure:
    """Plot each model's seizure probability over the recordings, end to end.

    One row per model: the probability of every window at its decision time (black), the true
    seizures (shaded red), the threshold (dashed blue) and the alarm events of the decision
    rules (:func:`consecutive_decisions`, :func:`alarm_events`; orange bars above the trace).
    Recordings follow each other on one time axis (minutes), separated by dotted lines.

    Parameters
    ----------
    traces : sequence of StreamTrace
        From :func:`predict_stream`; every trace has the same models.
    threshold, min_consecutive, merge_gap_s
        The decision rules of :func:`seizure_metrics` (for the threshold line and the alarms).
    title : str | None
        Figure title; a default naming the shading when None.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Made without pyplot, so no backend is chosen or changed; save it with
        ``fig.savefig(path)``.
    """
    from matplotlib.figure import Figure

    traces = list(check_type(traces, (list, tuple), "traces"))
    if not traces or not traces[0].probas:
        raise ValueError("plot_traces needs at least one trace with probabilities.")
    names = list(traces[0].probas)
    fig = Figure(figsize=(12, 2.2 * len(names)), layout="tight")
    axes = np.atleast_1d(fig.subplots(len(names), 1, sharex=True))
    for ax, name in zip(axes, names, strict=True):
        offset_s = 0.0
        for k, trace in enumerate(traces):
            for onset, offset in trace.intervals:
                ax.axvspan((offset_s + onset) / 60, (offset_s + offset) / 60, color="tab:red",
                           alpha=0.25, lw=0)
            proba = trace.probas[name]
            ax.plot((offset_s + trace.times) / 60, proba, lw=0.8, color="k")
            decisions = consecutive_decisions(proba >= threshold, min_consecutive)
            for first, last in alarm_events(decisions, trace.times, merge_gap_s=merge_gap_s):
                ax.plot([(offset_s + first) / 60, (offset_s + last) / 60], [1.08, 1.08],
                        color="tab:orange", lw=3, marker="|", solid_capstyle="butt")
            if k:
                ax.axvline(offset_s / 60, color="0.5", ls=":", lw=0.8)
            offset_s += trace.duration_s
        ax.axhline(threshold, color="tab:blue", ls="--", lw=0.8)
        ax.set_ylim(-0.05, 1.15)
        ax.set_ylabel("P(seizure)")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1].set_xlabel("time (min)")
    fig.suptitle(title or "Seizure probability per window (shaded: true seizures; orange: "
                          "alarms)", fontsize=9)
    return fig
