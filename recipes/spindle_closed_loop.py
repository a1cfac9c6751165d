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
from bci.evaluation.events import (
    choose_leave_one_out,
    detection_agreement,
    event_rates,
    plot_detections,
    pool_event_counts,
    score_detections,
)
from bci.evaluation.latency import latency_stats
from bci.realtime.lsl import use_loopback_config  # imports no pylsl: LSLAPICFG is set first
from bci.realtime.policies import OscillationTrigger
from bci.realtime.processing import CausalFilter, ProcessingChain
from bci.realtime.recording import read_stimuli
from bci.realtime.report import make_session_report
from bci.realtime.safety import SafetyGate
from bci.realtime.session import replay_offline, run_session

WINDOW_S, STEP_S = 0.5, 0.05
THRESHOLDS = np.round(np.arange(1.5, 4.01, 0.25), 2)
MIN_DURATIONS = (0.0, 0.05, 0.1, 0.2, 0.3)
GRID = [(thr, dur) for thr in THRESHOLDS for dur in MIN_DURATIONS]
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
    """Replay the excerpt through the online loop; (t_end, score) of each window, e2e p50 ms."""
    decisions, summary = replay_offline(
        ex.signal[np.newaxis], ex.sfreq, ["EEG"], window_s=WINDOW_S, step_s=STEP_S,
        processing=make_chain(ex.sfreq), policy=make_trigger(np.inf, 0.0), buffer_s=5.0,
        chunk_size=max(int(round(4 * STEP_S * ex.sfreq)), 1))
    return (np.array([d.t_end for d in decisions]), np.array([d.score for d in decisions]),
            summary["latency_ms"]["end_to_end"]["p50"])


def detect(t: np.ndarray, score: np.ndarray, threshold: float, min_duration_s: float
           ) -> tuple[np.ndarray, int]:
    """Stimulus times (s) the trigger + safety gate give on recorded scores; and suppressed."""
    safety = make_safety()
    stims = make_trigger(threshold, min_duration_s).replay(t, score, safety=safety)
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
                    processing=make_chain(ex.sfreq), window_s=WINDOW_S, step_s=STEP_S,
                    policy=make_trigger(fold["threshold"], fold["min_duration_s"]),
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
    off_stims, _ = detect(*offline_scores(ex)[:2], fold["threshold"], fold["min_duration_s"])
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
