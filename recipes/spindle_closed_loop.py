"""Spindle-triggered closed-loop stimulation on the DREAMS sleep-spindle recordings.

A Portiloop-style pipeline, every stage causal:

    EEG -> causal band-pass 11-16 Hz (Butterworth, kept state) -> RMS over the last 0.25 s,
    divided by its slow (60 s) causal baseline -> OscillationTrigger (score >= threshold for
    min_duration_s, once per event, 1-s refractory) -> SafetyGate -> stimulus (LSL marker)

evaluated against the expert scorings of the DREAMS Sleep Spindles database (8 excerpts of
30 min, one central channel; :func:`bci.data.dreams.load_dreams_spindles` finds them through
``MNE_DATASETS_DREAMS_PATH``, else ``$MNE_DATA/dreams_spindles``, or ``--path``):

1. **Offline, leave one excerpt out.** Each excerpt is replayed through the *same*
   ``OnlineLoop`` code (``ArraySource``, ``threaded=False``): the detector's two parameters
   (threshold, minimum duration) are chosen on the 7 other excerpts (best pooled F1) and
   tested on the held-out one. The reference is the union of both experts' scorings where
   there are two (excerpts 1-6; expert 1 scored only 5 spindles in excerpt 3) and expert 1's
   for excerpts 7-8. Scoring (:func:`bci.evaluation.events.score_detections`): recall =
   reference spindles with a stimulus within ``[onset - 0.25 s, end + 0.25 s]``; precision =
   stimuli inside such an interval; latency = first stimulus time minus the expert's onset
   (the sample that triggered it: the algorithmic delay, without computing or transport).
   With ``--budget-s``, a stimulus later than ``onset + budget`` does not count
   (Portiloop-style latency budget), in training and in scoring.
2. **Online, over LSL in real time.** One held-out excerpt (``--online-excerpt``) is
   published by ``bci play`` in another process and the closed loop runs on it live for
   ``--online-minutes`` (LSL marker stimulator, everything recorded); recall/precision are
   scored the same way, and the latency is now from the expert's onset to the *stimulation
   marker's LSL timestamp* (algorithm + processing + transport). The online stimuli are
   also compared with the offline ones on the same span (same code, same samples: they
   should coincide).
3. **Ceiling.** Expert 2 against expert 1 (excerpts 1-6), scored the same way at the level of
   events (an expert-2 spindle matches if it overlaps an expert-1 spindle).

Portiloop (Valenchon et al.) reports ~71 % recall and stimulation within ~300 ms of onset with a
trained network on MODA; this detector is a two-parameter envelope threshold.

Usage::

    python recipes/spindle_closed_loop.py --online-minutes 10 --out results/spindle_closed_loop
    python recipes/spindle_closed_loop.py --minutes 5 --online-minutes 0   # quick, offline

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
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bci.data.dreams import DreamsExcerpt, load_dreams_spindles
from bci.evaluation.events import event_rates, pool_event_counts, score_detections
from bci.evaluation.latency import latency_stats
from bci.realtime.loop import OnlineLoop
from bci.realtime.lsl import use_loopback_config  # imports no pylsl: LSLAPICFG is set first
from bci.realtime.policies import OscillationTrigger
from bci.realtime.processing import CausalFilter, ProcessingChain
from bci.realtime.safety import SafetyGate
from bci.realtime.sources import ArraySource
from bci.realtime.stream import Stream

WINDOW_S, STEP_S = 0.5, 0.05
THRESHOLDS = np.round(np.arange(1.5, 4.01, 0.25), 2)
MIN_DURATIONS = (0.0, 0.05, 0.1, 0.2, 0.3)
TOL_S = 0.25


def make_chain(sfreq: float) -> ProcessingChain:
    """Causal 11-16 Hz band-pass."""
    return ProcessingChain([CausalFilter(sfreq, 11.0, 16.0, order=3)])


def make_trigger(threshold: float, min_duration_s: float) -> OscillationTrigger:
    """Relative 13.5-Hz RMS envelope threshold, once per event."""
    return OscillationTrigger("EEG", freq=13.5, threshold=threshold, rms_s=0.25,
                              min_duration_s=min_duration_s, off_ratio=0.8, refractory_s=1.0,
                              relative=True, baseline_s=60.0)


def make_safety() -> SafetyGate:
    """At most one stimulus a second and 30 a minute."""
    return SafetyGate(min_interval_s=1.0, max_per_minute=30, max_per_session=None)


def offline_scores(ex: DreamsExcerpt) -> tuple[np.ndarray, np.ndarray, float]:
    """Run the online loop offline over the whole excerpt; (t_end, score) of each window."""
    source = ArraySource(ex.signal[np.newaxis], ex.sfreq, ["EEG"],
                         chunk_size=max(int(round(4 * STEP_S * ex.sfreq)), 1))
    loop = OnlineLoop(Stream(source, threaded=False, buffer_s=5.0), window_s=WINDOW_S,
                      step_s=STEP_S, processing=make_chain(ex.sfreq),
                      policy=make_trigger(np.inf, 0.0), catch_up=True)
    summary = loop.run()
    t = np.array([d.t_end for d in loop.decisions])
    score = np.array([d.score for d in loop.decisions])
    return t, score, summary["latency_ms"]["end_to_end"]["p50"]


def detect(t: np.ndarray, score: np.ndarray, threshold: float, min_duration_s: float
           ) -> tuple[np.ndarray, int]:
    """Stimulus times (s) the trigger + safety gate give on recorded scores; and suppressed."""
    trigger, safety = make_trigger(threshold, min_duration_s), make_safety()
    trigger.bind(classes=None, ch_names=["EEG"], sfreq=100.0)
    stims = []
    candidates = np.flatnonzero(score >= threshold * trigger.off_ratio)
    # the state machine only changes near candidates; feed those and the sample after each
    idx = np.unique(np.concatenate([candidates, np.minimum(candidates + 1, len(t) - 1)]))
    for i in idx:
        if trigger.decide(float(score[i]), float(t[i])) is not None \
                and safety.allow(float(t[i])):
            stims.append(t[i])
    return np.array(stims), safety.n_suppressed


def run_offline(excerpts: list[DreamsExcerpt], budget_s: float | None) -> dict:
    """Leave one excerpt out: parameters with the best pooled F1 on the others, per excerpt."""
    scores = {ex.number: offline_scores(ex)
              for ex in tqdm(excerpts, desc="offline replay (scores)", file=sys.stdout)}
    counts = {}  # (excerpt, threshold, min_duration) -> EventCounts
    grid = [(thr, dur) for thr in THRESHOLDS for dur in MIN_DURATIONS]
    for ex in tqdm(excerpts, desc="grid", file=sys.stdout):
        t, score, _ = scores[ex.number]
        for thr, dur in grid:
            stims, _ = detect(t, score, thr, dur)
            counts[ex.number, thr, dur] = score_detections(stims, ex.reference, tolerance_s=TOL_S,
                                                           max_delay_s=budget_s)
    results = {}
    for ex in excerpts:
        k = ex.number
        others = [e.number for e in excerpts if e.number != k]
        f1 = {(thr, dur): event_rates(pool_event_counts(counts[o, thr, dur] for o in others))
              ["f1"] for thr, dur in grid}
        thr, dur = max(f1, key=f1.get)
        t, score, e2e = scores[k]
        _, suppressed = detect(t, score, thr, dur)
        results[k] = {"threshold": float(thr), "min_duration_s": float(dur),
                      "train_f1": f1[thr, dur], "sfreq": ex.sfreq, "channel": ex.ch_name,
                      "suppressed": suppressed, "counts": counts[k, thr, dur],
                      **event_rates(counts[k, thr, dur]), "offline_loop_e2e_p50_ms": e2e}
    return results


def run_online(ex: DreamsExcerpt, fold: dict, minutes: float, out: Path,
               budget_s: float | None) -> dict:
    """Publish the excerpt over LSL (another process) and run the closed loop on it live."""
    import tempfile

    import mne

    from bci.hw.lsl_marker import LSLMarkerStimulator
    from bci.realtime.lsl import LSLSource
    from bci.realtime.recording import Recorder

    data = np.vstack([ex.signal, np.arange(len(ex.signal), dtype=float)])
    info = mne.create_info(["EEG", "idx"], ex.sfreq, ["eeg", "misc"])
    fif = Path(tempfile.mkdtemp(prefix="bci_dreams_")) / f"excerpt{ex.number}_raw.fif"
    mne.io.RawArray(data, info, verbose=False).save(fif, verbose=False)
    name = f"bci-dreams-{os.getpid()}"
    player = subprocess.Popen([sys.executable, "-m", "bci.cli", "play", str(fif), "--name", name,
                               "--picks", "EEG,idx", "--wait", "60"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    session = out / f"online_excerpt{ex.number}_{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        stream = Stream(LSLSource(name, timeout_s=30.0), threaded=True, buffer_s=30.0)
        loop = OnlineLoop(stream, window_s=WINDOW_S, step_s=STEP_S,
                          processing=make_chain(ex.sfreq),
                          policy=make_trigger(fold["threshold"], fold["min_duration_s"]),
                          safety=make_safety(), stimulator=LSLMarkerStimulator(f"{name}-stim"),
                          recorder=Recorder(session, ["EEG", "idx"], ex.sfreq,
                                            info={"source": name, "excerpt": ex.number,
                                                  "ch_types": ["eeg", "misc"]}),
                          catch_up=True)  # decide on every window, as offline
        print(f"Online: excerpt {ex.number} ({ex.ch_name}, {ex.sfreq:g} Hz) over LSL for "
              f"{minutes:g} min in real time ...", flush=True)
        loop.run(minutes * 60.0)
    finally:
        player.terminate()
        player.communicate(timeout=10)  # also closes its pipes
    return evaluate_session(session, ex, fold, minutes, budget_s)


def evaluate_session(session: Path, ex: DreamsExcerpt, fold: dict, minutes: float | None,
                     budget_s: float | None) -> dict:
    """Score a recorded online session (its stimuli and sample index) against the experts."""
    from bci.realtime.recording import read_events, read_signal
    from bci.realtime.report import make_session_report

    session = Path(session)
    summary = json.loads((session / "summary.json").read_text())
    sig, ts, _ = read_signal(session)
    idx = sig[1].astype(np.int64)
    t_start = float(np.median(ts - idx / ex.sfreq))  # LSL time of the excerpt's sample 0
    span = (idx[0] / ex.sfreq + WINDOW_S, idx[-1] / ex.sfreq)
    stims = [e for e in read_events(session) if e["kind"] == "stim"]
    trig = np.array([e["t_trigger"] for e in stims]) - t_start
    fired = np.array([e["time"] for e in stims]) - t_start  # just after the marker was sent
    on_trig, on_fired = (score_detections(s, ex.reference, tolerance_s=TOL_S,
                                          max_delay_s=budget_s, span=span) for s in (trig, fired))
    t_off, score_off, _ = offline_scores(ex)
    off_stims, _ = detect(t_off, score_off, fold["threshold"], fold["min_duration_s"])
    # online and offline share the code and (the player waits for the loop) the samples, from
    # sample 0: the stimuli should be the same, to the sample
    off_in = off_stims[(off_stims >= span[0]) & (off_stims <= span[1] - 1.0)]
    on_in = trig[(trig >= span[0]) & (trig <= span[1] - 1.0)]

    def agreement(tol_s: float) -> float | None:
        if not (len(on_in) and len(off_in)):
            return None
        return round(float(np.mean([np.min(np.abs(off_in - s)) <= tol_s for s in on_in])), 3)

    if not (session / "report.html").is_file():
        make_session_report(session)
    plot_examples(ex, fired, span, session.parent / f"online_excerpt{ex.number}_examples.png")
    return {"excerpt": ex.number, "minutes": minutes, "span_s": span, "session": str(session),
            "threshold": fold["threshold"], "min_duration_s": fold["min_duration_s"],
            "summary": {k: summary[k] for k in ("samples_received", "samples_lost", "gaps",
                                                "decisions", "stimuli_fired",
                                                "stimuli_suppressed", "latency_ms", "faults",
                                                "stopped_reason")},
            "by_trigger_sample": event_rates(on_trig), "by_marker_time": event_rates(on_fired),
            "online_offline_agreement": {"same_sample": agreement(0.5 / ex.sfreq),
                                         "within_one_step": agreement(STEP_S + 1e-6)},
            "online_windows_skipped": summary.get("windows_skipped", 0),
            "n_online_compared": int(len(on_in)), "n_offline_compared": int(len(off_in)),
            "marker_minus_trigger_ms": latency_stats(fired - trig, percentiles=(50, 99),
                                                     decimals=2, scale=1e3)}


def plot_examples(ex: DreamsExcerpt, stims: np.ndarray, span, path: Path, n: int = 6) -> None:
    """Plot a few reference spindles of the online span with the stimuli around them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sfreq, sig = ex.sfreq, ex.signal
    filtered = make_chain(sfreq).apply(sig[np.newaxis])[0]
    ref = ex.reference
    spindles = ref[(ref[:, 0] > span[0]) & (ref[:, 0] < span[1])]
    picks = spindles[np.linspace(0, len(spindles) - 1, min(n, len(spindles))).astype(int)]
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 1.6 * len(picks)), squeeze=False)
    for ax, (onset, offset) in zip(axes[:, 0], picks, strict=True):
        a = max(int((onset - 2) * sfreq), 0)
        b = min(int((offset + 2) * sfreq), len(sig))
        tt = np.arange(a, b) / sfreq
        ax.plot(tt, sig[a:b] * 1e6, color="0.6", lw=0.6, label="EEG")
        ax.plot(tt, filtered[a:b] * 1e6, color="C0", lw=0.8, label="11-16 Hz (causal)")
        ax.axvspan(onset, offset, color="C1", alpha=0.25, label="experts")
        for s in stims[(stims > tt[0]) & (stims < tt[-1])]:
            ax.axvline(s, color="C3", lw=1.5, label="stimulus (LSL marker)")
        ax.set_ylabel("µV")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    axes[0, 0].legend(uniq.values(), uniq.keys(), fontsize=7, ncol=4, loc="upper right")
    axes[-1, 0].set_xlabel(f"time in excerpt {ex.number} (s)")
    fig.suptitle("Spindle-triggered stimulation, online over LSL")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    parser.add_argument("--out", type=Path, default=Path("results") / "spindle_closed_loop")
    args = parser.parse_args(argv)
    lo, _, hi = args.excerpts.partition("-")
    ks = list(range(int(lo), int(hi) + 1)) if hi else [int(k) for k in args.excerpts.split(",")]
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
    folds = run_offline(excerpts, args.budget_s)
    pooled = event_rates(pool_event_counts(f["counts"] for f in folds.values()))
    ceiling = [score_detections(ex.expert2, ex.expert1) for ex in excerpts
               if ex.expert2 is not None]  # expert 2 against expert 1, event overlap
    report = {"offline_leave_one_excerpt_out": {
        str(k): {key: v for key, v in f.items() if key != "counts"} for k, f in folds.items()},
        "offline_pooled": pooled,
        "offline_mean_recall": round(float(np.mean([f["recall"] for f in folds.values()])), 3),
        "offline_mean_precision": round(float(np.mean([f["precision"] for f in
                                                       folds.values()])), 3),
        "expert2_vs_expert1": event_rates(pool_event_counts(ceiling)) if ceiling else None,
        "offline_minutes": round((time.time() - t0) / 60, 1), "budget_s": args.budget_s,
        "tolerance_s": TOL_S}
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
