"""Metrics, tables and plots of pseudo-online (replayed) and online BCI evaluations.

A pseudo-online evaluation (:func:`bci.realtime.pseudo_online.pseudo_online`) replays held-out
recordings through the real-time loop; this module holds what needs no real-time code: the
information transfer rate (Wolpaw et al. 2002), the per-trial metrics of decoded windows
(accuracy against time after the cue, the decision at a deadline, the first confident and the
first correct confident decision), their summary per pipeline, a table and the plot of
accuracy against time after the cue.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_positive, check_real, ensure_int

__all__ = ["ONLINE_COLUMNS", "ONLINE_COLUMN_DOCS", "format_online_table", "itr_bits_per_min",
           "plot_accuracy_curves", "summarize_online", "trial_metrics", "wolpaw_bits"]

#: Columns a pseudo-online evaluation adds to MOABB's (see
#: :func:`bci.realtime.pseudo_online.pseudo_online`), in the order written to ``results.csv``.
ONLINE_COLUMNS = ["offline_accuracy", "online_accuracy", "selection_accuracy",
                  "median_decision_s", "median_first_correct_s", "itr_bits_min",
                  "itr_deadline_bits_min", "false_activations_per_min", "n_false_activations",
                  "rest_min", "n_trials", "window_s", "step_s", "deadline_s", "threshold",
                  "iti_s", "replay_speed"]
#: What each of :data:`ONLINE_COLUMNS` means (units in the names: ``_s`` seconds, ``_min``
#: minutes, ``bits_min`` bits per minute).
ONLINE_COLUMN_DOCS = {
    "offline_accuracy": "accuracy of the fold's epochs, offline (beside MOABB's score)",
    "online_accuracy": "accuracy of the decision forced at deadline_s after the cue",
    "selection_accuracy": "accuracy of the selections: the first confident decision at or "
                          "before the deadline, else the forced one",
    "median_decision_s": "median time of the selections after the cue (s)",
    "median_first_correct_s": "median time of the first correct confident decision (s; "
                              "trials that have one)",
    "itr_bits_min": "Wolpaw ITR of the selections, mean selection time + iti_s per trial",
    "itr_deadline_bits_min": "Wolpaw ITR of the forced decisions, deadline_s + iti_s per "
                             "trial",
    "false_activations_per_min": "confident decisions per minute of rest windows (NaN: the "
                                 "dataset has no rest period that is not a class)",
    "n_false_activations": "confident decisions in rest periods",
    "rest_min": "minutes of rest decisions (windows times step_s)",
    "n_trials": "test trials replayed",
    "window_s": "decoded window (s): the paradigm's epoch",
    "step_s": "time between windows (s)",
    "deadline_s": "forced decision time after the cue (s)",
    "threshold": "probability of a confident decision",
    "iti_s": "inter-trial interval added in the ITR (s)",
    "replay_speed": "windows decided x step_s / wall time: speed-up over a live loop",
}


def wolpaw_bits(n_classes: int, accuracy: float) -> float:
    """Bits per selection of Wolpaw's information transfer rate.

    ``B = log2 N + P log2 P + (1 - P) log2((1 - P) / (N - 1))`` (Wolpaw et al. 2002, Clin.
    Neurophysiol. 113:767), for ``N`` equally likely classes decoded with accuracy ``P``;
    0 at or below chance (``P <= 1 / N``), as is customary (the formula assumes errors spread
    evenly over the other classes, and is not a rate of information below chance).

    Parameters
    ----------
    n_classes : int
        Number of classes ``N`` (>= 2).
    accuracy : float
        Fraction of correct selections ``P``, in [0, 1].

    Returns
    -------
    bits : float
        Bits per selection, in [0, log2 N].

    Examples
    --------
    >>> wolpaw_bits(2, 1.0), wolpaw_bits(4, 0.25), round(wolpaw_bits(2, 0.9), 4)
    (1.0, 0.0, 0.531)
    """
    n = ensure_int(n_classes, "n_classes", minimum=2, what="classes")
    p = check_real(accuracy, "accuracy", low=0.0, high=1.0, kind="fraction")
    if p <= 1.0 / n:
        return 0.0
    bits = np.log2(n) + p * np.log2(p)
    if p < 1.0:
        bits += (1.0 - p) * np.log2((1.0 - p) / (n - 1))
    return float(bits)


def itr_bits_per_min(n_classes: int, accuracy: float, selection_s: float) -> float:
    """Wolpaw's information transfer rate in bits per minute.

    Parameters
    ----------
    n_classes : int
        Number of classes (>= 2).
    accuracy : float
        Fraction of correct selections, in [0, 1].
    selection_s : float
        Mean time per selection (s, > 0): the decision time after the cue plus the
        inter-trial interval the protocol imposes before the next cue.

    Returns
    -------
    itr : float
        ``wolpaw_bits(n_classes, accuracy) * 60 / selection_s`` (bits/min).

    Examples
    --------
    >>> itr_bits_per_min(2, 1.0, 6.0)
    10.0
    """
    selection_s = check_positive(selection_s, "selection_s", unit="s")
    return wolpaw_bits(n_classes, accuracy) * 60.0 / selection_s


def trial_metrics(times_s, proba, labels, activations: Sequence[Sequence[tuple[float, int]]],
                  *, deadline_s: float) -> dict[str, np.ndarray]:
    """Per-trial metrics of the decisions made on sliding windows after each cue.

    Parameters
    ----------
    times_s : array, shape (n_steps,)
        Time (s) after the cue of each window's last sample (the same grid for every trial).
    proba : array, shape (n_trials, n_steps, n_classes)
        Class probabilities of each window (NaN where no window was decided).
    labels : array of int, shape (n_trials,)
        True class (column of ``proba``) of each trial.
    activations : sequence of sequences of (float, int)
        For each trial, the confident decisions of the policy in time order: (time after the
        cue in s, class column).
    deadline_s : float
        Time (s) after the cue at which a decision is forced: the last window ending at or
        before it decides.

    Returns
    -------
    metrics : dict of ndarray
        ``correct`` (n_trials, n_steps) float: 1 where the most probable class is the true one,
        0 where not, NaN where undecided; ``deadline_correct`` (n_trials,) float: the decision
        at the deadline is right (NaN: no window by then); ``selection_s`` and
        ``selection_correct`` (n_trials,): the trial's selection, the first confident decision
        at or before the deadline, or else the forced one at the deadline; ``confident``
        (n_trials,) bool: the selection was a confident decision; ``first_correct_s``
        (n_trials,): time of the first confident decision of the true class (NaN: none).
    """
    times_s = np.asarray(times_s, dtype=float)
    proba = np.asarray(proba, dtype=float)
    labels = np.asarray(labels)
    if proba.ndim != 3 or proba.shape[:2] != (len(labels), len(times_s)):
        raise ValueError(f"proba must have shape (n_trials={len(labels)}, n_steps="
                         f"{len(times_s)}, n_classes), got {proba.shape}.")
    if len(activations) != len(labels):
        raise ValueError(f"activations must hold one list per trial ({len(labels)}), got "
                         f"{len(activations)}.")
    deadline_s = check_real(deadline_s, "deadline_s", unit="s")
    decided = np.isfinite(proba).all(axis=2)
    guess = np.argmax(np.nan_to_num(proba, nan=-np.inf), axis=2)
    correct = np.where(decided, (guess == labels[:, None]).astype(float), np.nan)
    before = np.flatnonzero(times_s <= deadline_s + 1e-9)
    jd = before[-1] if before.size else None
    deadline_correct = (correct[:, jd] if jd is not None
                        else np.full(len(labels), np.nan))
    deadline_t = times_s[jd] if jd is not None else np.nan
    n = len(labels)
    selection_s, selection_correct = np.full(n, np.nan), np.full(n, np.nan)
    confident, first_correct_s = np.zeros(n, bool), np.full(n, np.nan)
    for i, acts in enumerate(activations):
        early = [(t, c) for t, c in acts if t <= deadline_s + 1e-9]
        if early:
            selection_s[i], selection_correct[i] = early[0][0], float(early[0][1] == labels[i])
            confident[i] = True
        else:
            selection_s[i], selection_correct[i] = deadline_t, deadline_correct[i]
        hits = [t for t, c in acts if c == labels[i]]
        if hits:
            first_correct_s[i] = hits[0]
    return {"correct": correct, "deadline_correct": deadline_correct,
            "selection_s": selection_s, "selection_correct": selection_correct,
            "confident": confident, "first_correct_s": first_correct_s}


def summarize_online(results) -> Any:
    """Mean offline and pseudo-online scores per pipeline (rows averaged with equal weight).

    Parameters
    ----------
    results : pandas.DataFrame
        As returned by :func:`bci.realtime.pseudo_online.pseudo_online` (``.results``).

    Returns
    -------
    summary : pandas.DataFrame
        Indexed by pipeline: the mean of ``score`` and of every numeric column of
        :data:`ONLINE_COLUMNS`, ``n`` (rows averaged), sorted by decreasing online accuracy.
    """
    cols = ["score", *[c for c in ONLINE_COLUMNS if c in results]]
    summary = results.groupby("pipeline", sort=False)[cols].mean(numeric_only=True)
    summary["n"] = results.groupby("pipeline", sort=False).size()
    return summary.sort_values("online_accuracy", ascending=False)


def format_online_table(results) -> str:
    """Plain-text table of :func:`summarize_online`.

    Columns: pipeline, offline score (MOABB metric), offline accuracy, pseudo-online accuracy at
    the deadline, accuracy of the selections (first confident decision, else the forced one),
    median decision time (s), ITR (bits/min), false activations per minute of rest, rows.
    """
    summary = summarize_online(results)
    width = max([14, *(len(str(name)) for name in summary.index)])
    header = (f"{'pipeline':<{width}} {'offline':>8} {'off acc':>8} {'online@dl':>9} "
              f"{'select':>7} {'t_dec (s)':>9} {'ITR b/min':>9} {'FA/min':>7} {'n':>3}")
    lines = [header, "-" * len(header)]
    for name, row in summary.iterrows():
        lines.append(
            f"{name:<{width}} {row.score:>8.3f} {row.offline_accuracy:>8.3f} "
            f"{row.online_accuracy:>9.3f} {row.selection_accuracy:>7.3f} "
            f"{row.median_decision_s:>9.2f} {row.itr_bits_min:>9.2f} "
            f"{_fmt(row.false_activations_per_min):>7} {int(row.n):>3d}")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def plot_accuracy_curves(curves, fname: str | Path | None = None, *,
                         deadline_s: float | None = None):
    """Plot pseudo-online accuracy against time after the cue, one line per pipeline.

    Parameters
    ----------
    curves : pandas.DataFrame
        Columns ``pipeline``, ``time_s`` (s after the cue) and ``accuracy`` (one row per fold
        and time, or already averaged), optionally ``dataset``; rows of a pipeline are averaged
        per time.
    fname : str | Path | None
        Save the figure there (PNG) when given.
    deadline_s : float | None
        Draw the deadline as a vertical line.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib

    if fname is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    for name, part in curves.groupby("pipeline", sort=False):
        mean = part.groupby("time_s")["accuracy"].mean()
        ax.plot(mean.index, mean.to_numpy(), label=str(name))
    if deadline_s is not None:
        ax.axvline(deadline_s, color="k", ls=":", lw=1, label="deadline")
    ax.set_xlabel("time after cue (s): end of the decoded window")
    ax.set_ylabel("accuracy (most probable class)")
    if "dataset" in curves:
        ax.set_title(", ".join(map(str, curves["dataset"].unique())) + " – pseudo-online")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    if fname is not None:
        fig.savefig(fname, dpi=120)
    return fig
