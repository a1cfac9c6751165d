"""Records passed between the stream, the online loop, the policies and the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Kinds of :class:`StreamEvent` a :class:`~bci.realtime.stream.Stream` reports.
STREAM_EVENT_KINDS = ("gap", "clock_jump", "nan", "flat", "flat_end", "stall", "lost",
                      "reconnected", "stopped")


@dataclass
class StreamEvent:
    """Something the stream noticed about its input (a fault or a recovery).

    Attributes
    ----------
    kind : str
        One of :data:`STREAM_EVENT_KINDS`.
    time : float
        Source timestamp (s) where it happened (the first sample after a gap, the chunk with
        NaNs...).
    index : int
        Absolute sample index (samples received before it).
    detail : dict
        Kind-specific facts: ``{"n_lost", "step_s"}`` for a gap (samples lost, step between
        the timestamps around it, s); ``{"jump_s", "step_s", "latency_change_s"}`` for a clock
        jump (its size, s: the step minus one sample period; and the change of latency that
        told it from lost samples, s); ``{"channels": [...]}`` for NaN and flat channels.
    message : str
        Human-readable description.
    """

    kind: str
    time: float
    index: int
    detail: dict = field(default_factory=dict)
    message: str = ""


@dataclass
class Decision:
    """One decoder/policy step over one window.

    Attributes
    ----------
    index : int
        Running number of the decision (0, 1, ...).
    t_start, t_end : float
        Source timestamps (s) of the window's first and last samples.
    stop_index : int
        Absolute index of the sample after the window's last one.
    proba : ndarray of shape (n_classes,) | None
        Decoder output (None without a decoder).
    label : str | None
        Most probable class.
    window : ndarray of shape (n_chans, n_times) | None
        The (processed) window the policy may look at; not recorded.
    latency_ms : dict
        ``acquire``, ``process``, ``decode``, ``act``, ``end_to_end`` (ms).
    has_gap : bool
        The window spans a timestamp gap.
    score : float | None
        The policy's statistic for this window (probability of the target class, envelope
        ratio...), set by the policy.
    """

    index: int
    t_start: float
    t_end: float
    stop_index: int
    proba: np.ndarray | None = None
    label: str | None = None
    window: np.ndarray | None = None
    latency_ms: dict = field(default_factory=dict)
    has_gap: bool = False
    score: float | None = None


@dataclass
class StimRequest:
    """A policy's wish to stimulate.

    Attributes
    ----------
    at : float | None
        Source time (s) at which to fire (e.g. a target phase); None: now.
    code : int
        Trigger code (serial/TTL byte, marker suffix).
    reason : str
        Why (e.g. ``"p(left)=0.91>0.80"``, ``"spindle"``).
    t_trigger : float
        Source timestamp (s) of the last sample that led to the request.
    """

    at: float | None = None
    code: int = 1
    reason: str = ""
    t_trigger: float = float("nan")


@dataclass
class StimEvent:
    """A stimulus that passed the safety limits and was sent.

    Attributes
    ----------
    index : int
        Running number of fired stimuli.
    code : int
        Trigger code.
    t_trigger : float
        Source timestamp (s) of the last sample that led to it.
    t_fired : float
        Time (s, source clock) the stimulator returned.
    reason : str
        Copied from the request.
    """

    index: int
    code: int
    t_trigger: float
    t_fired: float = float("nan")
    reason: str = ""
