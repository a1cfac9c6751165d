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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from .._checks import check_positive, check_type

__all__ = ["EventCounts", "event_rates", "match_events", "pool_event_counts", "score_detections"]


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
