"""Detections scored against annotated events: matching, counts, recall, precision, latency.

The scoring of a closed-loop stimulator (stimuli against expert-scored sleep spindles) and of
one scorer against another, with one rule:

- **Match.** A detection ``[start, end]`` (a stimulus is ``[t, t]``) matches an event
  ``[onset, offset]`` when the two overlap once the event is widened by ``before_s`` and
  ``after_s``: ``start <= offset + after_s`` and ``end >= onset - before_s``. With a latency
  budget ``max_delay_s`` the event's end is moved to ``min(offset + after_s, onset +
  max_delay_s)``: a later detection is a miss (and a false detection).
- **Counts.** Events matched by at least one detection (true positive events), detections
  matching at least one event (true positive detections), and for each matched event its
  latency: the earliest ``start`` of its matching detections minus its onset (seconds,
  negative when the detection starts before the event).
- **Rates.** Recall = matched events / events, precision = matched detections / detections,
  F1 their harmonic mean; median and 90th percentile latency; the fraction of latencies
  within a bound.

The seizure scoring of :func:`bci.evaluation.seizure_metrics.seizure_metrics` matches alarm
events to seizures with the same rule (``before_s=0``, ``after_s=tolerance_s``).

Around the rule: :func:`choose_leave_one_out` picks a detector's parameters for each recording
on the others (best pooled rate), :func:`detection_agreement` compares two runs' detections
(e.g. online and offline), :func:`plot_detections` draws example events with the detections
around them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .._checks import check_option, check_positive, check_type, ensure_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EventCounts", "choose_leave_one_out", "detection_agreement", "event_rates",
           "match_events", "plot_detections", "pool_event_counts", "score_detections"]

RATES = ("recall", "precision", "f1")


@dataclass
class EventCounts:
    """Counts of detections matched to events (see the module docstring).

    Attributes
    ----------
    n_events : int
        Events scored.
    n_detections : int
        Detections scored.
    tp_events : int
        Events matched by at least one detection.
    tp_detections : int
        Detections that match at least one event.
    latencies_s : list of float
        Latency of each matched event (seconds), in the order of the events.
    """

    n_events: int
    n_detections: int
    tp_events: int
    tp_detections: int
    latencies_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        """All fields as a plain dict (JSON-serialisable)."""
        return asdict(self)


def _intervals(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1 and name == "detections":
        arr = np.stack([arr, arr], axis=1)
    arr = arr.reshape(-1, 2) if arr.size == 0 else arr
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be intervals of shape (n, 2) ([start, end] in seconds)"
                         f"{' or times of shape (n,)' if name == 'detections' else ''}, got "
                         f"shape {arr.shape}.")
    if np.any(arr[:, 1] < arr[:, 0]):
        raise ValueError(f"Every interval of {name} must be [start, end] with end >= start "
                         "(seconds).")
    return arr


def match_events(detections, events, *, before_s: float = 0.0, after_s: float = 0.0,
                 max_delay_s: float | None = None) -> np.ndarray:
    """Which detections match which events (overlap after widening the events).

    Parameters
    ----------
    detections : array, shape (n_detections, 2) or (n_detections,)
        Detection intervals ``[start, end]`` (seconds), or detection times (``[t, t]``).
    events : array, shape (n_events, 2)
        Event intervals ``[onset, offset]`` (seconds).
    before_s, after_s : float
        Widening of each event before its onset and after its offset (seconds, >= 0).
    max_delay_s : float | None
        Latency budget (seconds, >= 0): the widened event ends no later than ``onset +
        max_delay_s``. None for no budget.

    Returns
    -------
    hits : ndarray of bool, shape (n_detections, n_events)
        ``hits[i, j]`` is True when detection ``i`` matches event ``j``.

    Examples
    --------
    >>> match_events([1.0, 5.2], [[0.9, 1.5], [5.0, 6.0]], before_s=0.25).astype(int).tolist()
    [[1, 0], [0, 1]]
    >>> match_events([1.0, 5.2], [[0.9, 1.5], [5.0, 6.0]], max_delay_s=0.1).astype(int).tolist()
    [[1, 0], [0, 0]]
    """
    det = _intervals(detections, "detections")
    ev = _intervals(events, "events")
    before_s = check_positive(before_s, "before_s", unit="s", allow_zero=True, allow_inf=True)
    after_s = check_positive(after_s, "after_s", unit="s", allow_zero=True, allow_inf=True)
    lo, hi = ev[:, 0] - before_s, ev[:, 1] + after_s
    if max_delay_s is not None:
        max_delay_s = check_positive(max_delay_s, "max_delay_s", unit="s", allow_zero=True,
                                     allow_inf=True)
        hi = np.minimum(hi, ev[:, 0] + max_delay_s)
    return (det[:, 0, None] <= hi[None]) & (det[:, 1, None] >= lo[None])


def score_detections(detections, events, *, tolerance_s: float = 0.0,
                     max_delay_s: float | None = None,
                     span: tuple[float, float] | None = None) -> EventCounts:
    """Match detections to events and count them (see the module docstring).

    Parameters
    ----------
    detections : array, shape (n_detections, 2) or (n_detections,)
        Detection intervals ``[start, end]`` or times (seconds).
    events : array, shape (n_events, 2)
        Event intervals ``[onset, offset]`` (seconds), e.g. expert-scored spindles.
    tolerance_s : float
        Widening of each event on both sides (seconds, >= 0): a stimulus within ``[onset -
        tolerance_s, offset + tolerance_s]`` detects it.
    max_delay_s : float | None
        Latency budget (seconds): a detection starting after ``onset + max_delay_s`` does not
        match. None for no budget.
    span : tuple of float | None
        ``(start, end)`` (seconds): score only the events inside it (``onset >= start`` and
        ``offset <= end``) and the detections that start inside it, e.g. the part of a
        recording that was replayed. None for everything.

    Returns
    -------
    counts : EventCounts

    Examples
    --------
    >>> c = score_detections([10.0, 20.0, 31.0], [[9.9, 10.4], [30.0, 30.8], [50.0, 51.0]],
    ...                      tolerance_s=0.25)
    >>> c.tp_events, c.tp_detections, [round(v, 6) for v in c.latencies_s]
    (2, 2, [0.1, 1.0])
    """
    det = _intervals(detections, "detections")
    ev = _intervals(events, "events")
    if span is not None:
        check_type(span, (tuple, list), "span")
        if len(span) != 2:
            raise ValueError(f"span must be (start, end) in seconds, got {span!r}.")
        ev = ev[(ev[:, 0] >= span[0]) & (ev[:, 1] <= span[1])]
        det = det[(det[:, 0] >= span[0]) & (det[:, 0] <= span[1])]
    hits = match_events(det, ev, before_s=tolerance_s, after_s=tolerance_s,
                        max_delay_s=max_delay_s)
    detected = hits.any(0)
    latencies = [float(det[hits[:, j], 0].min() - ev[j, 0]) for j in np.flatnonzero(detected)]
    return EventCounts(n_events=int(len(ev)), n_detections=int(len(det)),
                       tp_events=int(detected.sum()), tp_detections=int(hits.any(1).sum()),
                       latencies_s=latencies)


def pool_event_counts(parts: Iterable[EventCounts]) -> EventCounts:
    """Sum the counts of several recordings and join their latencies (in order).

    Examples
    --------
    >>> pool_event_counts([EventCounts(3, 2, 1, 1, [0.5]), EventCounts(1, 4, 1, 2, [0.2])])
    EventCounts(n_events=4, n_detections=6, tp_events=2, tp_detections=3, latencies_s=[0.5, 0.2])
    """
    parts = list(parts)
    for part in parts:
        check_type(part, EventCounts, "parts")
    return EventCounts(n_events=sum(p.n_events for p in parts),
                       n_detections=sum(p.n_detections for p in parts),
                       tp_events=sum(p.tp_events for p in parts),
                       tp_detections=sum(p.tp_detections for p in parts),
                       latencies_s=[v for p in parts for v in p.latencies_s])


def event_rates(counts: EventCounts, *, within_s: float = 0.3) -> dict:
    """Recall, precision, F1 and latency summary of event counts.

    Parameters
    ----------
    counts : EventCounts
        From :func:`score_detections` or :func:`pool_event_counts`.
    within_s : float
        Latency bound (seconds, > 0) of the ``within_<ms>ms`` fraction.

    Returns
    -------
    rates : dict
        ``recall``, ``precision``, ``f1`` (3 decimals; 0 when nothing to divide by),
        ``latency_median_ms``, ``latency_p90_ms`` (milliseconds, 1 decimal),
        ``within_<ms>ms`` (fraction of latencies <= ``within_s``, 3 decimals; the latency
        entries are None without matched events), ``n_events`` and ``n_detections``.

    Examples
    --------
    >>> event_rates(EventCounts(4, 2, 2, 2, [0.1, 0.5]))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'recall': 0.5, 'precision': 1.0, 'f1': 0.667, 'latency_median_ms': 300.0,
     'latency_p90_ms': 460.0, 'within_300ms': 0.5, 'n_events': 4, 'n_detections': 2}
    """
    check_type(counts, EventCounts, "counts")
    within_s = check_positive(within_s, "within_s", unit="s")
    recall = counts.tp_events / max(counts.n_events, 1)
    precision = counts.tp_detections / max(counts.n_detections, 1)
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    lat = np.asarray(counts.latencies_s, dtype=float)
    return {"recall": round(recall, 3), "precision": round(precision, 3), "f1": round(f1, 3),
            "latency_median_ms": round(float(np.median(lat)) * 1e3, 1) if lat.size else None,
            "latency_p90_ms": round(float(np.percentile(lat, 90)) * 1e3, 1) if lat.size
            else None,
            f"within_{within_s * 1e3:g}ms": round(float(np.mean(lat <= within_s)), 3)
            if lat.size else None,
            "n_events": counts.n_events, "n_detections": counts.n_detections}


def choose_leave_one_out(counts: Mapping[tuple[Hashable, Hashable], EventCounts], *,
                         rate: str = "f1") -> dict[Hashable, tuple[Hashable, float]]:
    """For each recording, the parameters with the best pooled rate on the other recordings.

    Leave one recording out: a detector's parameters (e.g. threshold and minimum duration)
    are chosen on all the other recordings, whose counts are pooled
    (:func:`pool_event_counts`) and rated (:func:`event_rates`), then tested on the one left
    out; its own counts never take part in the choice.

    Parameters
    ----------
    counts : mapping of (recording, parameters) to EventCounts
        The counts of every parameter set on every recording (a full grid); recordings and
        parameter sets are any hashable keys, in the mapping's order.
    rate : {"f1", "recall", "precision"}
        What is maximised, as :func:`event_rates` gives it (rounded to 3 decimals); a tie goes
        to the parameter set that comes first in ``counts``.

    Returns
    -------
    choice : dict
        ``{recording: (parameters, rate on the other recordings)}``, recordings in order.

    Raises
    ------
    ValueError
        With fewer than 2 recordings, or when a (recording, parameters) pair is missing.

    Examples
    --------
    >>> counts = {("a", 1): EventCounts(2, 2, 2, 2), ("a", 2): EventCounts(2, 2, 1, 1),
    ...           ("b", 1): EventCounts(2, 2, 0, 0), ("b", 2): EventCounts(2, 2, 1, 1)}
    >>> choose_leave_one_out(counts)  # "a" is chosen on "b", "b" on "a"
    {'a': (2, 0.5), 'b': (1, 1.0)}
    """
    check_type(counts, Mapping, "counts")
    rate = check_option("rate", rate, RATES)
    for key, value in counts.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"counts must be keyed by (recording, parameters), got key "
                             f"{key!r}.")
        check_type(value, EventCounts, "counts")
    recordings = list(dict.fromkeys(k for k, _ in counts))
    params = list(dict.fromkeys(p for _, p in counts))
    if len(recordings) < 2:
        raise ValueError(f"Leaving one recording out needs at least 2 recordings, got "
                         f"{len(recordings)}.")
    missing = [(k, p) for k in recordings for p in params if (k, p) not in counts]
    if missing:
        raise ValueError(f"counts must hold every parameter set on every recording; missing "
                         f"{missing[:3]}{' ...' if len(missing) > 3 else ''}.")
    choice = {}
    for k in recordings:
        values = {p: event_rates(pool_event_counts(counts[o, p] for o in recordings
                                                   if o != k))[rate] for p in params}
        best = max(values, key=values.get)
        choice[k] = (best, values[best])
    return choice


def detection_agreement(detections, reference, *, tolerance_s: float) -> float:
    """Fraction of ``detections`` that have a ``reference`` detection within ``tolerance_s``.

    Parameters
    ----------
    detections, reference : array, shape (n,)
        Detection times (seconds), e.g. the stimuli of an online run and of an offline replay
        of the same samples.
    tolerance_s : float
        Largest time difference that counts as the same detection (seconds, >= 0); half a
        sample period asks for the same sample.

    Returns
    -------
    agreement : float
        In [0, 1]; nan without detections, 0 without reference detections.

    Examples
    --------
    >>> detection_agreement([1.0, 2.0, 3.0], [1.02, 2.5, 3.0], tolerance_s=0.05)
    0.6666666666666666
    """
    det = np.asarray(detections, dtype=float).ravel()
    ref = np.sort(np.asarray(reference, dtype=float).ravel())
    tolerance_s = check_positive(tolerance_s, "tolerance_s", unit="s", allow_zero=True)
    if det.size == 0:
        return math.nan
    if ref.size == 0:
        return 0.0
    pos = np.searchsorted(ref, det)
    nearest = np.minimum(np.abs(det - ref[np.clip(pos - 1, 0, ref.size - 1)]),
                         np.abs(det - ref[np.clip(pos, 0, ref.size - 1)]))
    return float(np.mean(nearest <= tolerance_s))


def plot_detections(signal, sfreq: float, events, detections, *, filtered=None,
                    span_s: tuple[float, float] | None = None, n_examples: int = 6,
                    margin_s: float = 2.0, scale: float = 1e6, unit: str = "µV",
                    signal_label: str = "signal", filtered_label: str = "filtered",
                    event_label: str = "events", detection_label: str = "detections",
                    title: str | None = None) -> Figure:
    """Plot a few events with the signal and the detections around them, one row each.

    Parameters
    ----------
    signal : array, shape (n_samples,)
        One channel, sample 0 at time 0.
    sfreq : float
        Its sampling rate (Hz).
    events : array, shape (n_events, 2)
        Event onsets and offsets (seconds), e.g. expert-scored spindles.
    detections : array, shape (n_detections,)
        Detection times (seconds), e.g. stimuli.
    filtered : array, shape (n_samples,) | None
        The signal as the detector saw it (e.g. band-passed), drawn over it.
    span_s : tuple of float | None
        ``(start, end)`` (seconds): pick only events whose onset lies strictly inside.
    n_examples : int
        Events shown (>= 1), evenly spaced over those in the span.
    margin_s : float
        Signal shown before each onset and after each offset (seconds, >= 0).
    scale : float
        Factor from the signal's unit to the plotted ``unit`` (1e6: volts to µV).
    unit : str
        Label of the y axes.
    signal_label, filtered_label, event_label, detection_label : str
        Legend entries.
    title : str | None
        Figure title.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Made without pyplot (no backend chosen or changed); one axis per event shown, or one
        axis saying that the span holds no event.
    """
    from matplotlib.figure import Figure

    sig = np.asarray(signal, dtype=float)
    if sig.ndim != 1:
        raise ValueError(f"signal must be one channel, shape (n_samples,), got {sig.shape}.")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    ev = _intervals(events, "events")
    det = np.asarray(detections, dtype=float).ravel()
    n_examples = ensure_int(n_examples, "n_examples", minimum=1, what="events")
    margin_s = check_positive(margin_s, "margin_s", unit="s", allow_zero=True)
    if filtered is not None:
        filtered = np.asarray(filtered, dtype=float)
        if filtered.shape != sig.shape:
            raise ValueError(f"filtered must have the signal's shape {sig.shape}, got "
                             f"{filtered.shape}.")
    if span_s is not None:
        ev = ev[(ev[:, 0] > span_s[0]) & (ev[:, 0] < span_s[1])]
    picks = ev[np.linspace(0, len(ev) - 1, min(n_examples, len(ev))).astype(int)]
    fig = Figure(figsize=(10, 1.6 * max(len(picks), 1)), layout="tight")
    axes = np.atleast_1d(fig.subplots(max(len(picks), 1), 1, squeeze=False)[:, 0])
    if not len(picks):
        axes[0].text(0.5, 0.5, "no event in the span", ha="center", va="center",
                     transform=axes[0].transAxes)
    for ax, (onset, offset) in zip(axes, picks, strict=False):
        a = max(int((onset - margin_s) * sfreq), 0)
        b = min(int((offset + margin_s) * sfreq), len(sig))
        tt = np.arange(a, b) / sfreq
        ax.plot(tt, sig[a:b] * scale, color="0.6", lw=0.6, label=signal_label)
        if filtered is not None:
            ax.plot(tt, filtered[a:b] * scale, color="C0", lw=0.8, label=filtered_label)
        ax.axvspan(onset, offset, color="C1", alpha=0.25, label=event_label)
        for t in det[(det > tt[0]) & (det < tt[-1])]:
            ax.axvline(t, color="C3", lw=1.5, label=detection_label)
        ax.set_ylabel(unit)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        unique = dict(zip(labels, handles, strict=True))
        axes[0].legend(unique.values(), unique.keys(), fontsize=7, ncol=4, loc="upper right")
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    return fig
