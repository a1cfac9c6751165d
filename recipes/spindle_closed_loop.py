"""Spindle-triggered closed-loop stimulation on the DREAMS sleep-spindle recordings.

A Portiloop-style pipeline, every stage causal:

    EEG -> causal band-pass 11-16 Hz (Butterworth, kept state) -> RMS over the last 0.25 s,
    divided by its slow (60 s) causal baseline -> OscillationTrigger (score >= threshold for
    min_duration_s, once per event, 1-s refractory) -> SafetyGate -> stimulus (LSL marker)

evaluated against the expert scorings of the DREAMS Sleep Spindles database (8 excerpts of
30 min, one central channel, found through ``MNE_DATASETS_DREAMS_PATH``, else
``$MNE_DATA/dreams_spindles``, or ``--path``). The reference is the union of both experts'
scorings (excerpts 1-6; expert 1 scored only 5 spindles in excerpt 3), expert 1's for 7-8.

1. **Offline, leave one excerpt out.** Each excerpt is replayed through the *same*
   ``OnlineLoop`` code (:func:`bci.realtime.session.replay_offline`), recording every
   window's score; the trigger then runs on those scores (``OscillationTrigger.replay``) for
   each threshold and minimum duration, chosen on the 7 other excerpts (best pooled F1,
   :func:`bci.evaluation.events.choose_leave_one_out`) and tested on the held-out one.
   Scoring (:func:`bci.evaluation.events.score_detections`): recall = reference spindles with
   a stimulus within ``[onset - 0.25 s, end + 0.25 s]``; precision = stimuli inside such an
   interval; latency = first stimulus minus the expert's onset (the triggering sample: the
   algorithmic delay). With ``--budget-s``, a stimulus later than ``onset + budget`` does not
   count (Portiloop-style latency budget), in training and in scoring.
2. **Online, over LSL in real time.** One held-out excerpt (``--online-excerpt``), with a
   channel carrying each sample's index, is published by ``bci play`` in another process; the
   closed loop runs on it live for ``--online-minutes``
   (:func:`bci.realtime.session.run_session`, LSL marker stimulator, everything recorded).
   Scored the same way, the latency now runs to the *marker's LSL timestamp* (algorithm +
   processing + transport). The online stimuli, on the excerpt's clock
   (:func:`bci.realtime.recording.read_stimuli`), are compared with the offline ones (same
   code, same samples: they should coincide; :func:`bci.evaluation.events.detection_agreement`).
3. **Ceiling.** Expert 2 against expert 1 (excerpts 1-6), scored the same way as events.

Portiloop (Valenchon et al.) reports ~71 % recall and stimulation within ~300 ms of onset with a
trained network on MODA; this detector is a two-parameter envelope threshold.

With ``--detector net`` the envelope threshold is replaced by a trained causal network
(:class:`bci.models.spindle_net.SpindleNet`, run by
:class:`bci.realtime.spindle.SpindleNetTrigger`), trained leave one excerpt out on the other
excerpts' scorings (``--steps``; ``--search N``: a seeded random search of its
hyper-parameters; ``--target-phase``: phase-targeted stimuli and their phase error against the
offline zero-phase Hilbert phase).

Usage::

    python recipes/spindle_closed_loop.py --online-minutes 10 --out results/spindle_closed_loop
    python recipes/spindle_closed_loop.py --minutes 5 --online-minutes 0   # quick, offline
    python recipes/spindle_closed_loop.py --detector net --steps 800 --target-phase 0

The DREAMS data are CC BY-NC-ND (see ``DREAMS_databases_License.txt`` beside them): used here
unmodified, for research; nothing derived from them is redistributed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bci.data.dreams import DreamsExcerpt, load_dreams_spindles
from bci.evaluation.events import (
    choose_leave_one_out,
    detection_agreement,
    event_rates,
    plot_detections,
    pool_event_counts,
    score_detections,
)
from bci.evaluation.latency import latency_stats
from bci.models.spindle_net import (
    SpindleNet,
    causal_normalise,
    fit_spindle_net,
    onset_weights,
    spindle_labels,
)
from bci.realtime.lsl import use_loopback_config  # imports no pylsl: LSLAPICFG is set first
from bci.realtime.policies import OscillationTrigger
from bci.realtime.processing import CausalFilter, ProcessingChain
from bci.realtime.recording import read_stimuli
from bci.realtime.report import make_session_report
from bci.realtime.safety import SafetyGate
from bci.realtime.session import replay_offline, run_session
from bci.realtime.spindle import SpindleNetTrigger, causal_phase, offline_net_scores

WINDOW_S, STEP_S = 0.5, 0.05
THRESHOLDS = np.round(np.arange(1.5, 4.01, 0.25), 2)
MIN_DURATIONS = (0.0, 0.05, 0.1, 0.2, 0.3)
GRID = [(thr, dur) for thr in THRESHOLDS for dur in MIN_DURATIONS]
TOL_S = 0.25


def make_chain(sfreq: float, band: tuple[float, float] = (11.0, 16.0),
               order: int = 3) -> ProcessingChain:
    """Causal band-pass (Butterworth; 11-16 Hz, order 3 by default)."""
    return ProcessingChain([CausalFilter(sfreq, *band, order=order)])


@dataclass(frozen=True)
class NetSetup:
    """How the network detector is fed, trained, thresholded and phase-targeted.

    ``band``/``order``: the causal band-pass in front of the network (a wide, low-order one
    has less group delay); ``early_weight``/``early_s``: loss weight of the first ``early_s``
    of each spindle (:func:`onset_weights`); ``objective``: ``"f1"`` (best pooled F1) or
    ``"goal"`` (most recall with precision >= 0.5 and median onset -> trigger <= 300 ms on the
    training excerpts, else best F1 within 300 ms, else best F1); ``phase_band``: the phase
    target's frequency is fitted in this band (Hz) on the last ``phase_s`` and the input
    filter's phase lag at it taken out (:func:`~bci.realtime.spindle.causal_phase`; ``(11,
    16)``: each spindle's own frequency, ``(13.5, 13.5)``: fixed, compensated); None: a fixed
    13.5 Hz on the last two cycles, uncompensated.
    """

    band: tuple[float, float] = (11.0, 16.0)
    order: int = 3
    early_weight: float = 1.0
    early_s: float = 0.3
    objective: str = "f1"
    phase_band: tuple[float, float] | None = None
    phase_s: float = 0.3


def make_trigger(threshold: float, min_duration_s: float, net: SpindleNet | None = None,
                 target_phase: float | None = None, setup: NetSetup | None = None,
                 sfreq: float | None = None) -> OscillationTrigger:
    """Relative 13.5-Hz RMS envelope threshold, or the network's probability; once per event."""
    if net is not None:
        band = None if setup is None or sfreq is None else setup.phase_band
        sos = None if band is None else CausalFilter(sfreq, *setup.band, order=setup.order).sos
        return SpindleNetTrigger(net, "EEG", threshold=threshold, min_duration_s=min_duration_s,
                                 refractory_s=1.0, target_phase=target_phase, freq_band=band,
                                 phase_s=0.3 if setup is None else setup.phase_s, phase_sos=sos)
    return OscillationTrigger("EEG", freq=13.5, threshold=threshold, rms_s=0.25,
                              min_duration_s=min_duration_s, off_ratio=0.8, refractory_s=1.0,
                              relative=True, baseline_s=60.0)


def make_safety() -> SafetyGate:
    """At most one stimulus a second and 30 a minute."""
    return SafetyGate(min_interval_s=1.0, max_per_minute=30, max_per_session=None)


def offline_scores(ex: DreamsExcerpt) -> tuple[np.ndarray, np.ndarray, float]:
    """Replay the excerpt through the online loop; (t_end, score) of each window, e2e p50 ms."""
    decisions, summary = replay_offline(
        ex.signal[np.newaxis], ex.sfreq, ["EEG"], window_s=WINDOW_S, step_s=STEP_S,
        processing=make_chain(ex.sfreq), policy=make_trigger(np.inf, 0.0), buffer_s=5.0,
        chunk_size=max(int(round(4 * STEP_S * ex.sfreq)), 1))
    return (np.array([d.t_end for d in decisions]), np.array([d.score for d in decisions]),
            summary["latency_ms"]["end_to_end"]["p50"])


def detect(t: np.ndarray, score: np.ndarray, threshold: float, min_duration_s: float,
           net: SpindleNet | None = None) -> tuple[np.ndarray, int]:
    """Stimulus times (s) the trigger + safety gate give on recorded scores; and suppressed."""
    safety = make_safety()
    stims = make_trigger(threshold, min_duration_s, net).replay(t, score, safety=safety)
    return stims, safety.n_suppressed


def run_offline(excerpts: list[DreamsExcerpt], budget_s: float | None) -> dict:
    """Leave one excerpt out: parameters with the best pooled F1 on the others, per excerpt."""
    scores = {ex.number: offline_scores(ex)
              for ex in tqdm(excerpts, desc="offline replay (scores)", file=sys.stdout)}
    counts = {(ex.number, p): score_detections(detect(*scores[ex.number][:2], *p)[0],
                                               ex.reference, tolerance_s=TOL_S,
                                               max_delay_s=budget_s)
              for ex in tqdm(excerpts, desc="grid", file=sys.stdout) for p in GRID}
    choice, folds = choose_leave_one_out(counts, rate="f1"), {}
    for ex in excerpts:
        (thr, dur), train_f1 = choice[ex.number]
        t, score, e2e = scores[ex.number]
        fold = counts[ex.number, (thr, dur)]
        folds[ex.number] = {"threshold": float(thr), "min_duration_s": float(dur),
                            "train_f1": train_f1, "sfreq": ex.sfreq, "channel": ex.ch_name,
                            "suppressed": detect(t, score, thr, dur)[1], "counts": fold,
                            **event_rates(fold), "offline_loop_e2e_p50_ms": e2e}
    return folds


NET_SFREQ, NET_WINDOW_S = 50.0, 2.0  # the network runs at 50 Hz on the last 2 s
GOAL = {"recall": 0.71, "precision": 0.5, "latency_s": 0.3}  # Portiloop's
PROBS = np.round(np.concatenate([np.arange(0.2, 0.91, 0.05), [0.93, 0.95, 0.97, 0.99]]), 2)
NET_GRID = [(p, d) for p in PROBS for d in (0.0, 0.05, 0.1)]
SWEEP_PROBS = (0.3, 0.5, 0.7, 0.8, 0.9)  # probabilities reported as the training trade-off
SEARCH_SPACE = {"n_filters": (4, 8, 16), "kernel_size": (3, 5, 7), "n_conv": (1, 2, 3),
                "hidden": (8, 16, 32), "lr": (1e-3, 3e-3, 1e-2), "noise": (0.0, 0.1, 0.3),
                "early_weight": (1.0, 3.0, 10.0)}
FLOAT_KEYS = ("lr", "noise", "early_weight")
DEFAULT_NET = {"n_filters": 8, "kernel_size": 5, "n_conv": 2, "hidden": 16, "lr": 3e-3,
               "noise": 0.1}


def net_inputs(ex: DreamsExcerpt, setup: NetSetup
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the causally band-passed signal, the 50-Hz input, its labels and loss weights."""
    filtered = make_chain(ex.sfreq, setup.band, setup.order).apply(ex.signal[np.newaxis])[0]
    x, _ = causal_normalise(filtered[::int(round(ex.sfreq / NET_SFREQ))], NET_SFREQ)
    return (filtered, x, spindle_labels(len(x), NET_SFREQ, ex.reference),
            onset_weights(len(x), NET_SFREQ, ex.reference, early_s=setup.early_s,
                          early_weight=setup.early_weight))


def net_scores(net: SpindleNet, ex: DreamsExcerpt, setup: NetSetup
               ) -> tuple[np.ndarray, np.ndarray]:
    """Score every loop window (as ``replay_offline`` decides) in one batch: (t_end, score)."""
    stops = np.arange(int(round(WINDOW_S * ex.sfreq)), len(ex.signal) + 1,
                      int(round(STEP_S * ex.sfreq)))
    filtered = make_chain(ex.sfreq, setup.band, setup.order).apply(ex.signal[np.newaxis])[0]
    return (stops - 1) / ex.sfreq, offline_net_scores(net, filtered, ex.sfreq, stops)


def train_net(train: list[DreamsExcerpt], config: dict, n_steps: int, seed: int,
              setup: NetSetup) -> SpindleNet:
    """Train a SpindleNet on the excerpts' expert scorings (augmented random crops)."""
    config = dict(config)
    setup = NetSetup(**{**asdict(setup), "early_weight": config.pop("early_weight",
                                                                    setup.early_weight)})
    inputs = [net_inputs(ex, setup) for ex in train]
    return fit_spindle_net([i[1] for i in inputs], [i[2] for i in inputs], NET_SFREQ,
                           n_times=int(NET_WINDOW_S * NET_SFREQ), n_steps=n_steps, seed=seed,
                           weights=[i[3] for i in inputs], **config)


def objective_key(rates: dict, objective: str) -> float:
    """Scalar to maximise on pooled rates: F1, or a tier plus a rate for ``"goal"``.

    Tier 2 (precision >= 0.5 and median onset -> trigger <= 300 ms) plus recall; tier 1 (only
    the latency met) plus F1; tier 0 plus F1.
    """
    if objective == "f1":
        return rates["f1"]
    lat = rates["latency_median_ms"]
    fast = lat is not None and lat <= GOAL["latency_s"] * 1e3
    if fast and rates["precision"] >= GOAL["precision"]:
        return 2.0 + rates["recall"]
    return (1.0 if fast else 0.0) + rates["f1"]


def best_threshold(net: SpindleNet, excerpts: list[DreamsExcerpt], budget_s: float | None,
                   setup: NetSetup, scores: dict | None = None
                   ) -> tuple[tuple[float, float], float]:
    """Pick the (probability, min duration) that maximises the objective on ``excerpts``."""
    scores = scores or {ex.number: net_scores(net, ex, setup) for ex in excerpts}
    value = {p: objective_key(event_rates(pool_event_counts(
        score_detections(detect(*scores[ex.number], *p, net)[0], ex.reference,
                         tolerance_s=TOL_S, max_delay_s=budget_s) for ex in excerpts)),
        setup.objective) for p in NET_GRID}
    best = max(NET_GRID, key=lambda p: (value[p], p[0]))
    return best, value[best]


def search_net(excerpts: list[DreamsExcerpt], n_trials: int, n_steps: int, seed: int,
               budget_s: float | None, out: Path, setup: NetSetup) -> dict:
    """Seeded random search: each config trained on odd excerpts, tested on even, and back."""
    rng = np.random.default_rng(seed)
    halves = [excerpts[0::2], excerpts[1::2]]
    trials = []
    for i in range(n_trials):
        config = DEFAULT_NET if i == 0 else {k: v[rng.integers(len(v))]
                                             for k, v in SEARCH_SPACE.items()}
        config = {k: (float(v) if k in FLOAT_KEYS else int(v)) for k, v in config.items()}
        value = [best_threshold(train_net(a, config, n_steps, seed, setup), b, budget_s,
                                setup)[1] for a, b in (halves, halves[::-1])]
        trials.append({"config": config, "objective": setup.objective,
                       "value": round(float(np.mean(value)), 4)})
        print(f"search {i + 1}/{n_trials}: {config} -> 2-fold {setup.objective} "
              f"{trials[-1]['value']}", flush=True)
        (out / "search.json").write_text(json.dumps(trials, indent=2))
    return max(trials, key=lambda r: r["value"])


_NOT_JSON = ("counts", "net", "stims", "setup")


def run_offline_net(excerpts: list[DreamsExcerpt], budget_s: float | None, config: dict,
                    n_steps: int, seed: int, target_phase: float | None,
                    setup: NetSetup, out: Path | None = None) -> dict:
    """Leave one excerpt out: train on 7, pick the threshold on them, test on the 8th."""
    folds = {}
    for ex in tqdm(excerpts, desc="leave-one-out (network)", file=sys.stdout):
        train = [e for e in excerpts if e.number != ex.number]
        net = train_net(train, config, n_steps, seed, setup)
        train_scores = {e.number: net_scores(net, e, setup) for e in train}
        (thr, dur), train_value = best_threshold(net, train, budget_s, setup, train_scores)
        # the trade-off the threshold chooses from: pooled over the training excerpts
        sweep = {f"{p:g}": event_rates(pool_event_counts(
            score_detections(detect(*train_scores[e.number], p, 0.0, net)[0], e.reference,
                             tolerance_s=TOL_S, max_delay_s=budget_s) for e in train))
            for p in SWEEP_PROBS}
        t, score = net_scores(net, ex, setup)
        stims, suppressed = detect(t, score, thr, dur, net)
        counts = score_detections(stims, ex.reference, tolerance_s=TOL_S, max_delay_s=budget_s)
        folds[ex.number] = {"threshold": float(thr), "min_duration_s": float(dur),
                            f"train_{setup.objective}": train_value, "sfreq": ex.sfreq,
                            "channel": ex.ch_name, "suppressed": suppressed, "counts": counts,
                            **event_rates(counts), "net": net, "target_phase": target_phase,
                            "stims": stims, "setup": setup, "train_sweep": sweep}
        if target_phase is not None:
            folds[ex.number]["phase"] = phase_errors(ex, stims, target_phase, setup)
            folds[ex.number]["phase_fixed_13.5hz"] = phase_errors(
                ex, stims, target_phase, NetSetup(setup.band, setup.order))
        if out is not None:  # as it goes: a run cut short still leaves numbers
            (out / "folds_partial.json").write_text(json.dumps(
                {k: {key: v for key, v in f.items() if key not in _NOT_JSON}
                 for k, f in folds.items()}, indent=1))
    return folds


def phase_errors(ex: DreamsExcerpt, trigger_times: np.ndarray, target_phase: float,
                 setup: NetSetup, freq: float = 13.5, max_delay_s: float = 0.1) -> dict:
    """Causal phase targeting against the offline (zero-phase band-pass + Hilbert) phase.

    At each trigger, the causal estimate on the causally band-passed signal schedules the
    stimulus at the next ``target_phase``: :func:`~bci.realtime.policies.estimate_phase` on the
    last two cycles of a fixed ``freq``, or with ``setup.phase_band``
    :func:`~bci.realtime.spindle.causal_phase` (the frequency fitted in that band, the filter's
    phase lag taken out; as :class:`~bci.realtime.spindle.SpindleNetTrigger` does online); the
    error is the offline phase at that sample minus the target (deg), for all stimuli and for
    those inside an expert's spindle (``in_spindles``).
    """
    from scipy.signal import butter, hilbert, sosfiltfilt

    from bci.realtime.policies import estimate_phase

    filtered = make_chain(ex.sfreq, setup.band, setup.order).apply(ex.signal[np.newaxis])[0]
    sos_causal = CausalFilter(ex.sfreq, *setup.band, order=setup.order).sos
    sos = butter(3, [11.0, 16.0], btype="bandpass", fs=ex.sfreq, output="sos")
    offline = np.angle(hilbert(sosfiltfilt(sos, ex.signal)))
    n = max(int(round(2 * ex.sfreq / freq)), 4)
    n_fit = max(int(round(setup.phase_s * ex.sfreq)), 4)  # SpindleNetTrigger's phase_s
    errors, now_errors, inside = [], [], []
    for t in trigger_times:
        i = int(round(t * ex.sfreq))
        if setup.phase_band is not None:
            phase, f = causal_phase(filtered[max(i - n_fit + 1, 0):i + 1], ex.sfreq,
                                    setup.phase_band, sos=sos_causal)
        else:
            (phase, _), f = estimate_phase(filtered[i - n + 1:i + 1], ex.sfreq, freq), freq
        delay = np.mod(np.deg2rad(target_phase) - phase, 2 * np.pi) / (2 * np.pi * f)
        j = i + int(round(delay * ex.sfreq))
        if delay > max_delay_s or j >= len(offline):
            continue
        now_errors.append(np.angle(np.exp(1j * (offline[i] - phase))))
        inside.append(bool(np.any((ex.reference[:, 0] <= t) & (t <= ex.reference[:, 1]))))
        errors.append(np.angle(np.exp(1j * (offline[j] - np.deg2rad(target_phase)))))
    err, now = np.rad2deg(errors), np.rad2deg(now_errors)

    def stats(e):
        if not len(e):
            return {"n": 0}
        return {"n": len(e), "median_abs_deg": round(float(np.median(np.abs(e))), 1),
                "p90_abs_deg": round(float(np.percentile(np.abs(e), 90)), 1),
                "circular_mean_deg": round(float(np.rad2deg(np.angle(np.mean(
                    np.exp(1j * np.deg2rad(e)))))), 1)}

    return {"at_stimulus": stats(err), "estimate_at_trigger": stats(now),
            "at_stimulus_in_spindles": stats(err[np.array(inside, bool)]),
            "errors_deg": np.round(err, 1).tolist()}


def phase_methods(excerpts: list[DreamsExcerpt], setup: NetSetup,
                  delays_s: tuple[float, ...] = (0.15, 0.3)) -> dict:
    """Compare causal phase estimates inside the experts' spindles, whatever the detector.

    At ``onset + delay`` of every reference spindle (where a stimulus within the latency goal
    lands), the causal estimate is compared with the offline zero-phase band-pass + Hilbert
    phase: the former input (11-16 Hz order 3, fixed 13.5 Hz), the network's input filter
    with a fixed 13.5 Hz, with 13.5 Hz and its phase lag taken out, and with each spindle's
    own 11-16-Hz frequency fitted over ``setup.phase_s`` (lag taken out).

    Returns
    -------
    stats : dict
        ``"<method> +<delay>s"`` -> ``{"n", "median_abs_deg", "p90_abs_deg"}``.
    """
    from scipy.signal import butter, hilbert, sosfiltfilt

    from bci.realtime.policies import estimate_phase

    methods = {"11-16 Hz o3, fixed 13.5 Hz (before)": ((11.0, 16.0), 3, None, None),
               "input filter, fixed 13.5 Hz": (setup.band, setup.order, None, None),
               "input filter, 13.5 Hz, lag out": (setup.band, setup.order, (13.5, 13.5),
                                                  2 / 13.5),
               "input filter, per-spindle 11-16 Hz, lag out": (setup.band, setup.order,
                                                               (11.0, 16.0), setup.phase_s)}
    errors: dict = {}
    for ex in excerpts:
        sos = butter(3, [11.0, 16.0], btype="bandpass", fs=ex.sfreq, output="sos")
        offline = np.angle(hilbert(sosfiltfilt(sos, ex.signal)))
        for name, (band, order, fband, fit_s) in methods.items():
            filt = CausalFilter(ex.sfreq, *band, order=order)
            y = ProcessingChain([filt]).apply(ex.signal[np.newaxis])[0]
            for delay in delays_s:
                idx = np.round((ex.reference[:, 0] + delay) * ex.sfreq).astype(int)
                for i in idx[(idx >= ex.sfreq) & (idx < len(y))]:
                    if fband is None:
                        n = max(int(round(2 * ex.sfreq / 13.5)), 4)
                        phase, _ = estimate_phase(y[i - n + 1:i + 1], ex.sfreq, 13.5)
                    else:
                        n = max(int(round(fit_s * ex.sfreq)), 4)
                        phase, _ = causal_phase(y[i - n + 1:i + 1], ex.sfreq, fband,
                                                sos=filt.sos)
                    errors.setdefault(f"{name} +{delay:g}s", []).append(
                        np.angle(np.exp(1j * (offline[i] - phase))))
    return {key: {"n": len(e), "median_abs_deg": round(float(np.rad2deg(np.median(np.abs(e)))),
                                                        1),
                  "p90_abs_deg": round(float(np.rad2deg(np.percentile(np.abs(e), 90))), 1)}
            for key, e in errors.items()}


def plot_net(folds: dict, fname: Path) -> None:
    """Per-excerpt recall / precision / median latency, and the phase errors (if targeted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ks = list(folds)
    for i, key in enumerate(("recall", "precision")):
        axes[0].bar(np.arange(len(ks)) + 0.4 * i, [folds[k][key] for k in ks], 0.4, label=key)
    axes[0].axhline(0.71, color="k", ls="--", lw=0.8, label="Portiloop recall")
    axes[0].set(xticks=np.arange(len(ks)) + 0.2, xticklabels=ks, xlabel="held-out excerpt",
                ylim=(0, 1), title="SpindleNet, leave one excerpt out")
    axes[0].legend(fontsize=7)
    axes[1].bar(range(len(ks)), [folds[k]["latency_median_ms"] or 0 for k in ks])
    axes[1].axhline(300, color="k", ls="--", lw=0.8)
    axes[1].set(xticks=range(len(ks)), xticklabels=ks, xlabel="held-out excerpt",
                ylabel="onset -> trigger, median (ms)")
    for key, label in (("phase_fixed_13.5hz", "fixed 13.5 Hz"),
                       ("phase", "per-spindle frequency")):
        errors = np.concatenate([folds[k].get(key, {}).get("errors_deg", []) for k in ks])
        if len(errors):
            med = np.median(np.abs(errors))
            axes[2].hist(errors, bins=np.arange(-180, 181, 15), histtype="step", lw=1.5,
                         label=f"{label}: n={len(errors)}, median |err| {med:.0f} deg")
    axes[2].set(xlabel="stimulus phase - target (deg, offline Hilbert)", ylabel="stimuli",
                title="phase error")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(fname, dpi=100)
    plt.close(fig)


def run_online(ex: DreamsExcerpt, fold: dict, minutes: float, out: Path,
               budget_s: float | None) -> dict:
    """Publish the excerpt over LSL (another process) and run the closed loop on it live."""
    import tempfile

    import mne

    from bci.hw.lsl_marker import LSLMarkerStimulator  # pylsl: after LSLAPICFG is set
    from bci.realtime.lsl import LSLSource

    # a second channel carries each sample's index: stimuli go back onto the excerpt's clock
    data = np.vstack([ex.signal, np.arange(len(ex.signal), dtype=float)])
    info = mne.create_info(["EEG", "idx"], ex.sfreq, ["eeg", "misc"])
    fif = Path(tempfile.mkdtemp(prefix="bci_dreams_")) / f"excerpt{ex.number}_raw.fif"
    mne.io.RawArray(data, info, verbose=False).save(fif, verbose=False)
    name = f"bci-dreams-{os.getpid()}"
    player = subprocess.Popen([sys.executable, "-m", "bci.cli", "play", str(fif), "--name", name,
                               "--picks", "EEG,idx", "--wait", "60"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    session = out / f"online_excerpt{ex.number}_{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"Online: excerpt {ex.number} ({ex.ch_name}, {ex.sfreq:g} Hz) over LSL for "
          f"{minutes:g} min in real time ...", flush=True)
    try:  # catch_up: decide on every window, as offline
        run_session(LSLSource(name, timeout_s=30.0), duration_s=minutes * 60.0,
                    processing=(make_chain(ex.sfreq) if fold.get("net") is None else make_chain(
                        ex.sfreq, fold["setup"].band, fold["setup"].order)),
                    window_s=WINDOW_S, step_s=STEP_S,
                    policy=make_trigger(fold["threshold"], fold["min_duration_s"],
                                        fold.get("net"), fold.get("target_phase"),
                                        fold.get("setup"), ex.sfreq),
                    safety=make_safety(), stimulator=LSLMarkerStimulator(f"{name}-stim"),
                    record_dir=session, info={"excerpt": ex.number, "ch_types": ["eeg", "misc"]},
                    catch_up=True)
    finally:
        player.terminate()
        player.communicate(timeout=10)  # also closes its pipes
    return evaluate_session(session, ex, fold, minutes, budget_s)


def evaluate_session(session: Path, ex: DreamsExcerpt, fold: dict, minutes: float | None,
                     budget_s: float | None) -> dict:
    """Score a recorded online session (its stimuli and sample index) against the experts."""
    session = Path(session)
    summary = json.loads((session / "summary.json").read_text())
    stims = read_stimuli(session, index_channel="idx")  # s from the excerpt's sample 0
    trig, fired = stims.t_trigger, stims.t_fired  # fired: just after the marker was sent
    span = (stims.span_s[0] + WINDOW_S, stims.span_s[1])
    on_trig, on_fired = (score_detections(s, ex.reference, tolerance_s=TOL_S,
                                          max_delay_s=budget_s, span=span) for s in (trig, fired))
    # online and offline share the code and (the player waits for the loop) the samples, from
    # sample 0: the stimuli should be the same, to the sample
    scores = (offline_scores(ex) if fold.get("net") is None
              else net_scores(fold["net"], ex, fold["setup"]))
    off_stims, _ = detect(*scores[:2], fold["threshold"], fold["min_duration_s"], fold.get("net"))
    off_in, on_in = (s[(s >= span[0]) & (s <= span[1] - 1.0)] for s in (off_stims, trig))
    agreement = {key: round(detection_agreement(on_in, off_in, tolerance_s=tol), 3)
                 if len(on_in) and len(off_in) else None
                 for key, tol in (("same_sample", 0.5 / ex.sfreq),
                                  ("within_one_step", STEP_S + 1e-6))}
    if not (session / "report.html").is_file():
        make_session_report(session)
    plot_detections(ex.signal, ex.sfreq, ex.reference, fired, span_s=span,
                    filtered=make_chain(ex.sfreq).apply(ex.signal[np.newaxis])[0],
                    signal_label="EEG", filtered_label="11-16 Hz (causal)",
                    event_label="experts", detection_label="stimulus (LSL marker)",
                    title="Spindle-triggered stimulation, online over LSL"
                    ).savefig(session.parent / f"online_excerpt{ex.number}_examples.png", dpi=100)
    return {"excerpt": ex.number, "minutes": minutes, "span_s": span, "session": str(session),
            "threshold": fold["threshold"], "min_duration_s": fold["min_duration_s"],
            "summary": {k: summary[k] for k in ("samples_received", "samples_lost", "gaps",
                                                "decisions", "stimuli_fired",
                                                "stimuli_suppressed", "latency_ms", "faults",
                                                "stopped_reason")},
            "by_trigger_sample": event_rates(on_trig), "by_marker_time": event_rates(on_fired),
            "online_offline_agreement": agreement,
            "online_windows_skipped": summary.get("windows_skipped", 0),
            "n_online_compared": int(len(on_in)), "n_offline_compared": int(len(off_in)),
            "marker_minus_trigger_ms": latency_stats(fired - trig, percentiles=(50, 99),
                                                     decimals=2, scale=1e3)}


def print_table(folds: dict, pooled: dict, ceiling: dict | None) -> None:
    """Print the offline results as a Markdown table."""
    print("\nOffline, leave one excerpt out (reference: union of the experts; expert 1 "
          "alone for excerpts 7-8):")
    print("| excerpt | Hz | threshold | min dur (s) | recall | precision | F1 | onset->trigger "
          "median / p90 (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for k, f in folds.items():
        print(f"| {k} | {f['sfreq']:g} | {f['threshold']} | {f['min_duration_s']} | "
              f"{f['recall']} | {f['precision']} | {f['f1']} | {f['latency_median_ms']} / "
              f"{f['latency_p90_ms']} |")
    for label, r in (("pooled", pooled), ("expert 2 vs 1 (1-6)", ceiling)):
        if r:
            print(f"| {label} | | | | {r['recall']} | {r['precision']} | {r['f1']} | "
                  f"{r['latency_median_ms']} / {r['latency_p90_ms']} |")


def main(argv: list[str] | None = None) -> dict:
    """Run the recipe from the command line (``argv``); returns the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=None,
                        help="folder of the DREAMS spindle files (default: "
                             "MNE_DATASETS_DREAMS_PATH, else $MNE_DATA/dreams_spindles)")
    parser.add_argument("--online-excerpt", type=int, default=2)
    parser.add_argument("--online-minutes", type=float, default=10.0,
                        help="minutes replayed over LSL in real time (0: offline only)")
    parser.add_argument("--excerpts", default="1-8", help="e.g. 1-8 or 1,2,5")
    parser.add_argument("--minutes", type=float, default=None,
                        help="use only the first minutes of each excerpt (quick runs)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="latency budget (s): a stimulus later than onset + budget is a "
                             "miss (and a false positive), in training and in scoring")
    parser.add_argument("--evaluate-session", default=None, metavar="DIR",
                        help="score an already recorded online session instead of running one")
    parser.add_argument("--detector", choices=("envelope", "net"), default="envelope",
                        help="envelope threshold, or the trained causal network (SpindleNet)")
    parser.add_argument("--search", type=int, default=0, metavar="N",
                        help="net: random search over N configurations first (0: default)")
    parser.add_argument("--steps", type=int, default=1500, help="net: training steps")
    parser.add_argument("--target-phase", type=float, default=None, metavar="DEG",
                        help="net: stimulate at this spindle phase (0 peak, 180 trough)")
    parser.add_argument("--net-band", type=float, nargs=2, default=(11.0, 16.0),
                        metavar=("LOW", "HIGH"),
                        help="net: causal band-pass in front of the network (Hz); 5 22 with "
                             "--net-order 2 has ~23 ms group delay at 13.5 Hz, 11 16 order 3 "
                             "~126 ms")
    parser.add_argument("--net-order", type=int, default=3, help="net: its Butterworth order")
    parser.add_argument("--early-weight", type=float, default=1.0,
                        help="net: loss weight of the first --early-s of each spindle")
    parser.add_argument("--early-s", type=float, default=0.3)
    parser.add_argument("--objective", choices=("f1", "goal"), default="f1",
                        help="net: threshold (and search) objective on the training excerpts: "
                             "best F1, or most recall with precision >= 0.5 and median "
                             "onset->trigger <= 300 ms")
    parser.add_argument("--phase-band", type=float, nargs=2, default=None,
                        metavar=("LOW", "HIGH"),
                        help="net: fit the phase target's frequency in this band (Hz; 11 16: "
                             "each spindle's own, 13.5 13.5: fixed) on the last --phase-s and "
                             "take the filter's phase lag out; default: 13.5 Hz, two cycles, "
                             "uncompensated")
    parser.add_argument("--phase-s", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results") / "spindle_closed_loop")
    args = parser.parse_args(argv)
    lo, _, hi = args.excerpts.partition("-")
    ks = list(range(int(lo), int(hi) + 1)) if hi else [int(k) for k in args.excerpts.split(",")]
    if len(ks) < 2:
        parser.error(f"--excerpts needs at least 2 excerpts (one is left out, the others choose "
                     f"its parameters), got {args.excerpts!r}.")
    try:
        excerpts = [load_dreams_spindles(k, args.path) for k in ks]
    except FileNotFoundError as err:
        sys.exit(f"error: {err}")
    if args.minutes is not None:
        excerpts = [ex.crop(args.minutes * 60.0) for ex in excerpts]
    lsl_config = os.environ.get("LSLAPICFG")
    if not lsl_config or "ResolveScope = machine" not in Path(lsl_config).read_text():
        use_loopback_config()  # LSL stays on this machine (before the first pylsl call)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.detector == "net":
        import torch

        torch.set_num_threads(1)
        setup = NetSetup(band=tuple(args.net_band), order=args.net_order,
                         early_weight=args.early_weight, early_s=args.early_s,
                         objective=args.objective, phase_s=args.phase_s,
                         phase_band=None if args.phase_band is None else tuple(args.phase_band))
        config = (search_net(excerpts, args.search, args.steps, args.seed, args.budget_s,
                             args.out, setup)["config"] if args.search else DEFAULT_NET)
        folds = run_offline_net(excerpts, args.budget_s, config, args.steps, args.seed,
                                args.target_phase, setup, args.out)
    else:
        folds = run_offline(excerpts, args.budget_s)
    pooled = event_rates(pool_event_counts(f["counts"] for f in folds.values()))
    ceiling = [score_detections(ex.expert2, ex.expert1) for ex in excerpts
               if ex.expert2 is not None]  # expert 2 against expert 1, event overlap
    report = {"offline_leave_one_excerpt_out": {
        str(k): {key: v for key, v in f.items() if key not in _NOT_JSON}
        for k, f in folds.items()},
        "offline_pooled": pooled,
        "offline_mean_recall": round(float(np.mean([f["recall"] for f in folds.values()])), 3),
        "offline_mean_precision": round(float(np.mean([f["precision"] for f in
                                                       folds.values()])), 3),
        "expert2_vs_expert1": event_rates(pool_event_counts(ceiling)) if ceiling else None,
        "offline_minutes": round((time.time() - t0) / 60, 1), "budget_s": args.budget_s,
        "tolerance_s": TOL_S, "detector": args.detector, "seed": args.seed}
    if args.detector == "net":
        report["net_config"], report["net_steps"] = config, args.steps
        report["net_setup"] = {**asdict(setup), "band": list(setup.band), "phase_band": None
                               if setup.phase_band is None else list(setup.phase_band)}
        if args.target_phase is not None:
            report["phase_methods_at_onset"] = phase_methods(excerpts, setup)
        plot_net(folds, args.out / "spindle_net.png")
    if args.minutes is not None:
        report["excerpt_minutes"] = args.minutes
    print_table(folds, pooled, report["expert2_vs_expert1"])
    if args.online_minutes > 0:
        k = args.online_excerpt
        ex = next(e for e in excerpts if e.number == k)
        online = (evaluate_session(Path(args.evaluate_session), ex, folds[k],
                                   args.online_minutes, args.budget_s) if args.evaluate_session
                  else run_online(ex, folds[k], args.online_minutes, args.out, args.budget_s))
        report["online"] = online
        s, r = online["summary"], online["by_marker_time"]
        print(f"\nOnline over LSL, excerpt {k}, {args.online_minutes:g} min in real time: "
              f"{s['samples_received']} samples, {s['samples_lost']} lost, "
              f"{s['stimuli_fired']} stimuli ({s['stimuli_suppressed']} suppressed); recall "
              f"{r['recall']}, precision {r['precision']}, onset->marker median "
              f"{r['latency_median_ms']} ms (p90 {r['latency_p90_ms']}), within 300 ms "
              f"{r['within_300ms']}; trigger sample->marker {online['marker_minus_trigger_ms']}"
              f" ms; online==offline stimuli {online['online_offline_agreement']}")
    (args.out / "spindles.json").write_text(json.dumps(report, indent=2))
    print(f"\nWrote {args.out / 'spindles.json'}")
    return report


if __name__ == "__main__":
    main()
