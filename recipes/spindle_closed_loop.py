"""Spindle-triggered closed-loop stimulation on the DREAMS sleep-spindle recordings.

A Portiloop-style pipeline, every stage causal:

    EEG -> causal band-pass 11-16 Hz (Butterworth, kept state) -> RMS over the last 0.25 s,
    divided by its slow (60 s) causal baseline -> OscillationTrigger (score >= threshold for
    min_duration_s, once per event, 1-s refractory) -> SafetyGate -> stimulus (LSL marker)

evaluated against the expert scorings of the DREAMS Sleep Spindles database (8 excerpts of
30 min, one central channel; ``../shared/data/dreams_spindles``):

1. **Offline, leave one excerpt out.** Each excerpt is replayed through the *same*
   ``OnlineLoop`` code (``ArraySource``, ``threaded=False``): the detector's two parameters
   (threshold, minimum duration) are chosen on the 7 other excerpts (best pooled F1) and
   tested on the held-out one. The reference is the union of both experts' scorings where
   there are two (excerpts 1-6; expert 1 scored only 5 spindles in excerpt 3) and expert 1's
   for excerpts 7-8. Recall = reference spindles with a stimulus within
   ``[onset - 0.25 s, end + 0.25 s]``; precision = stimuli inside such an interval; latency =
   first stimulus time minus the expert's onset (the sample that triggered it: the
   algorithmic delay, without computing or transport). With ``--budget-s``, a stimulus later
   than ``onset + budget`` does not count (Portiloop-style latency budget), in training and
   in scoring.
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

The DREAMS data are CC BY-NC-ND (see ``DREAMS_databases_License.txt`` beside them): used here
unmodified, for research; nothing derived from them is redistributed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bci.realtime.lsl import use_loopback_config  # noqa: E402  (no pylsl import yet)

DATA = ROOT.parent / "shared" / "data" / "dreams_spindles"
EXCERPTS = range(1, 9)
WINDOW_S, STEP_S = 0.5, 0.05
THRESHOLDS = np.round(np.arange(1.5, 4.01, 0.25), 2)
MIN_DURATIONS = (0.0, 0.05, 0.1, 0.2, 0.3)
TOL_S = 0.25
BUDGET_S: float | None = None  # set by --budget-s


def load_excerpt(k: int) -> dict:
    """Signal (V, shape (n_times,)), rate (Hz), channel, expert spindles ``(n, 2)`` (onset, s)."""
    path = DATA / f"excerpt{k}.txt"
    ch = path.open().readline().strip().strip("[]")
    sig = np.loadtxt(path, skiprows=1) * 1e-6  # µV -> V
    sfreq = round(len(sig) / 1800.0)  # 30-min excerpts: 50, 100 or 200 Hz
    experts = []
    for e in (1, 2):
        f = DATA / f"Visual_scoring{e}_excerpt{k}.txt"
        experts.append(np.loadtxt(f, skiprows=1, ndmin=2) if f.is_file() else None)
    reference = experts[0] if experts[1] is None else union(experts[0], experts[1])
    return {"k": k, "signal": sig, "sfreq": float(sfreq), "ch": ch, "expert1": experts[0],
            "expert2": experts[1], "reference": reference}


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union of two scorings ``(onset, duration)``: overlapping spindles merged."""
    ev = np.concatenate([a, b])
    ev = ev[np.argsort(ev[:, 0])]
    merged = [list(ev[0])]
    for onset, dur in ev[1:]:
        end = merged[-1][0] + merged[-1][1]
        if onset <= end:
            merged[-1][1] = max(end, onset + dur) - merged[-1][0]
        else:
            merged.append([onset, dur])
    return np.array(merged)


def make_chain(sfreq: float):
    from bci.realtime.processing import CausalFilter, ProcessingChain

    return ProcessingChain([CausalFilter(sfreq, 11.0, 16.0, order=3)])


def make_trigger(threshold: float, min_duration_s: float):
    from bci.realtime.policies import OscillationTrigger

    return OscillationTrigger("EEG", freq=13.5, threshold=threshold, rms_s=0.25,
                              min_duration_s=min_duration_s, off_ratio=0.8, refractory_s=1.0,
                              relative=True, baseline_s=60.0)


def make_safety():
    from bci.realtime.safety import SafetyGate

    return SafetyGate(min_interval_s=1.0, max_per_minute=30, max_per_session=None)


def offline_scores(ex: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Run the online loop offline over the whole excerpt; (t_end, score) of each window."""
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.sources import ArraySource
    from bci.realtime.stream import Stream

    sfreq = ex["sfreq"]
    source = ArraySource(ex["signal"][np.newaxis], sfreq, ["EEG"],
                         chunk_size=max(int(round(4 * STEP_S * sfreq)), 1))
    loop = OnlineLoop(Stream(source, threaded=False, buffer_s=5.0), window_s=WINDOW_S,
                      step_s=STEP_S, processing=make_chain(sfreq),
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


def score_events(stims: np.ndarray, spindles: np.ndarray, span=None,
                 budget_s: float | None = None) -> dict:
    """Recall, precision and onset-to-stimulus latency (s) of stimuli against spindles.

    A stimulus hits a spindle within ``[onset - TOL_S, end + TOL_S]``, and, with a latency
    budget, no later than ``onset + budget_s`` (later stimuli count as false positives).
    """
    budget_s = BUDGET_S if budget_s is None else budget_s
    if span is not None:
        spindles = spindles[(spindles[:, 0] >= span[0]) & (spindles.sum(1) <= span[1])]
        stims = stims[(stims >= span[0]) & (stims <= span[1])]
    lo, hi = spindles[:, 0] - TOL_S, spindles.sum(1) + TOL_S
    if budget_s is not None:
        hi = np.minimum(hi, spindles[:, 0] + budget_s)
    hit_matrix = (stims[:, None] >= lo[None]) & (stims[:, None] <= hi[None])
    detected = hit_matrix.any(0)
    latencies = [stims[hit_matrix[:, j]].min() - spindles[j, 0]
                 for j in np.flatnonzero(detected)]
    return {"n_spindles": int(len(spindles)), "n_stimuli": int(len(stims)),
            "tp_spindles": int(detected.sum()), "tp_stimuli": int(hit_matrix.any(1).sum()),
            "latencies_s": [float(v) for v in latencies]}


def _rates(counts: dict) -> dict:
    recall = counts["tp_spindles"] / max(counts["n_spindles"], 1)
    precision = counts["tp_stimuli"] / max(counts["n_stimuli"], 1)
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    lat = np.asarray(counts["latencies_s"])
    return {"recall": round(recall, 3), "precision": round(precision, 3), "f1": round(f1, 3),
            "latency_median_ms": round(float(np.median(lat)) * 1e3, 1) if lat.size else None,
            "latency_p90_ms": round(float(np.percentile(lat, 90)) * 1e3, 1) if lat.size
            else None, "within_300ms": round(float(np.mean(lat <= 0.3)), 3) if lat.size
            else None, "n_spindles": counts["n_spindles"], "n_stimuli": counts["n_stimuli"]}


def _pool(parts: list[dict]) -> dict:
    keys = ("n_spindles", "n_stimuli", "tp_spindles", "tp_stimuli")
    pooled = {k: sum(p[k] for p in parts) for k in keys}
    pooled["latencies_s"] = [v for p in parts for v in p["latencies_s"]]
    return pooled


def expert_agreement(ex: dict) -> dict | None:
    """Expert 2 against expert 1 (event overlap), the ceiling of any detector."""
    e1, e2 = ex["expert1"], ex["expert2"]
    if e2 is None:
        return None
    overlap = (e2[:, None, 0] <= e1[None, :, 0] + e1[None, :, 1]) & (
        e2[:, None, 0] + e2[:, None, 1] >= e1[None, :, 0])
    return {"n_spindles": len(e1), "n_stimuli": len(e2), "tp_spindles": int(overlap.any(0).sum()),
            "tp_stimuli": int(overlap.any(1).sum()),
            "latencies_s": [float(e2[overlap[:, j], 0].min() - e1[j, 0])
                            for j in np.flatnonzero(overlap.any(0))]}


def run_offline(excerpts: list[dict]) -> tuple[dict, dict]:
    from tqdm import tqdm

    scores = {}
    for ex in tqdm(excerpts, desc="offline replay (scores)", file=sys.stdout):
        scores[ex["k"]] = offline_scores(ex)
    counts = {}  # (k, threshold, min_duration) -> counts
    grid = [(thr, dur) for thr in THRESHOLDS for dur in MIN_DURATIONS]
    for ex in tqdm(excerpts, desc="grid", file=sys.stdout):
        t, score, _ = scores[ex["k"]]
        for thr, dur in grid:
            stims, _ = detect(t, score, thr, dur)
            counts[ex["k"], thr, dur] = score_events(stims, ex["reference"])
    results = {}
    for ex in excerpts:
        k = ex["k"]
        others = [e["k"] for e in excerpts if e["k"] != k]
        f1 = {(thr, dur): _rates(_pool([counts[o, thr, dur] for o in others]))["f1"]
              for thr, dur in grid}
        thr, dur = max(f1, key=f1.get)
        t, score, e2e = scores[k]
        stims, suppressed = detect(t, score, thr, dur)
        results[k] = {"threshold": float(thr), "min_duration_s": float(dur),
                      "train_f1": f1[thr, dur], "sfreq": ex["sfreq"], "channel": ex["ch"],
                      "suppressed": suppressed, "counts": counts[k, thr, dur],
                      **_rates(counts[k, thr, dur]), "offline_loop_e2e_p50_ms": e2e}
    return results, scores


def run_online(ex: dict, fold: dict, minutes: float, out: Path) -> dict:
    """Publish the excerpt over LSL (another process) and run the closed loop on it live."""
    import mne

    from bci.hw.lsl_marker import LSLMarkerStimulator
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.lsl import LSLSource
    from bci.realtime.recording import Recorder
    from bci.realtime.stream import Stream

    sfreq = ex["sfreq"]
    data = np.vstack([ex["signal"], np.arange(len(ex["signal"]), dtype=float)])
    info = mne.create_info(["EEG", "idx"], sfreq, ["eeg", "misc"])
    tmp = Path(tempfile.mkdtemp(prefix="bci_dreams_"))
    fif = tmp / f"excerpt{ex['k']}_raw.fif"
    mne.io.RawArray(data, info, verbose=False).save(fif, verbose=False)
    name = f"bci-dreams-{os.getpid()}"
    player = subprocess.Popen([sys.executable, "-m", "bci.cli", "play", str(fif), "--name", name,
                               "--picks", "EEG,idx", "--wait", "60"], cwd=ROOT,
                              env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    session = out / f"online_excerpt{ex['k']}_{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        stream = Stream(LSLSource(name, timeout_s=30.0), threaded=True, buffer_s=30.0)
        stim = LSLMarkerStimulator(f"{name}-stim")
        loop = OnlineLoop(stream, window_s=WINDOW_S, step_s=STEP_S,
                          processing=make_chain(sfreq),
                          policy=make_trigger(fold["threshold"], fold["min_duration_s"]),
                          safety=make_safety(), stimulator=stim,
                          recorder=Recorder(session, ["EEG", "idx"], sfreq,
                                            info={"source": name, "excerpt": ex["k"],
                                                  "ch_types": ["eeg", "misc"]}),
                          catch_up=True)  # decide on every window, as offline
        print(f"Online: excerpt {ex['k']} ({ex['ch']}, {sfreq:g} Hz) over LSL for "
              f"{minutes:g} min in real time ...", flush=True)
        summary = loop.run(minutes * 60.0)
    finally:
        player.terminate()
        player.wait(10)
    return evaluate_session(session, ex, fold, minutes)


def evaluate_session(session: Path, ex: dict, fold: dict, minutes: float | None = None) -> dict:
    """Score a recorded online session (its stimuli and sample index) against the experts."""
    from bci.realtime.recording import read_events, read_signal
    from bci.realtime.report import make_session_report

    session = Path(session)
    summary = json.loads((session / "summary.json").read_text())
    sfreq = ex["sfreq"]
    sig, ts, _ = read_signal(session)
    idx = sig[1].astype(np.int64)
    t_start = float(np.median(ts - idx / sfreq))  # LSL time of the excerpt's sample 0
    span = (idx[0] / sfreq + WINDOW_S, idx[-1] / sfreq)
    stims = [e for e in read_events(session) if e["kind"] == "stim"]
    trig = np.array([e["t_trigger"] for e in stims]) - t_start
    fired = np.array([e["time"] for e in stims]) - t_start  # just after the marker was sent
    on_trig = score_events(trig, ex["reference"], span)
    on_fired = score_events(fired, ex["reference"], span)
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

    agree = {"same_sample": agreement(0.5 / sfreq), "within_one_step": agreement(STEP_S + 1e-6)}
    skipped = summary.get("windows_skipped", 0)
    if not (session / "report.html").is_file():
        make_session_report(session)
    _plot_examples(ex, fired, span, session.parent / f"online_excerpt{ex['k']}_examples.png")
    return {"excerpt": ex["k"], "minutes": minutes, "span_s": span, "session": str(session),
            "threshold": fold["threshold"], "min_duration_s": fold["min_duration_s"],
            "summary": {k: summary[k] for k in ("samples_received", "samples_lost", "gaps",
                                                "decisions", "stimuli_fired",
                                                "stimuli_suppressed", "latency_ms", "faults",
                                                "stopped_reason")},
            "by_trigger_sample": _rates(on_trig), "by_marker_time": _rates(on_fired),
            "online_offline_agreement": agree, "online_windows_skipped": skipped,
            "n_online_compared": int(len(on_in)),
            "n_offline_compared": int(len(off_in)),
            "marker_minus_trigger_ms": _pct_ms(fired - trig)}


def _pct_ms(values) -> dict:
    v = np.asarray(values) * 1e3
    return {"p50": round(float(np.median(v)), 2), "p99": round(float(np.percentile(v, 99)), 2),
            "max": round(float(v.max()), 2)} if v.size else {}


def _plot_examples(ex: dict, stims: np.ndarray, span, path: Path, n: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sfreq, sig = ex["sfreq"], ex["signal"]
    filtered = make_chain(sfreq).apply(sig[np.newaxis])[0]
    ref = ex["reference"]
    spindles = ref[(ref[:, 0] > span[0]) & (ref[:, 0] < span[1])]
    picks = spindles[np.linspace(0, len(spindles) - 1, min(n, len(spindles))).astype(int)]
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 1.6 * len(picks)), squeeze=False)
    for ax, (onset, dur) in zip(axes[:, 0], picks):
        a = max(int((onset - 2) * sfreq), 0)
        b = min(int((onset + dur + 2) * sfreq), len(sig))
        tt = np.arange(a, b) / sfreq
        ax.plot(tt, sig[a:b] * 1e6, color="0.6", lw=0.6, label="EEG")
        ax.plot(tt, filtered[a:b] * 1e6, color="C0", lw=0.8, label="11-16 Hz (causal)")
        ax.axvspan(onset, onset + dur, color="C1", alpha=0.25, label="experts")
        for s in stims[(stims > tt[0]) & (stims < tt[-1])]:
            ax.axvline(s, color="C3", lw=1.5, label="stimulus (LSL marker)")
        ax.set_ylabel("µV")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    axes[0, 0].legend(uniq.values(), uniq.keys(), fontsize=7, ncol=4, loc="upper right")
    axes[-1, 0].set_xlabel(f"time in excerpt {ex['k']} (s)")
    fig.suptitle("Spindle-triggered stimulation, online over LSL")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--online-excerpt", type=int, default=2)
    parser.add_argument("--online-minutes", type=float, default=10.0,
                        help="minutes replayed over LSL in real time (0: offline only)")
    parser.add_argument("--excerpts", default="1-8", help="e.g. 1-8 or 1,2,5")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="latency budget (s): a stimulus later than onset + budget is a "
                             "miss (and a false positive), in training and in scoring")
    parser.add_argument("--evaluate-session", default=None, metavar="DIR",
                        help="score an already recorded online session instead of running one")
    parser.add_argument("--out", default=str(ROOT / "results" / "spindle_closed_loop"))
    args = parser.parse_args(argv)
    global BUDGET_S
    BUDGET_S = args.budget_s
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: the DREAMS spindle excerpts are not staged.")
    if "LSLAPICFG" not in os.environ or "ResolveScope = machine" not in Path(
            os.environ["LSLAPICFG"]).read_text():
        use_loopback_config(Path(tempfile.mkdtemp(prefix="bci_recipe_lsl_")))
    lo, _, hi = args.excerpts.partition("-")
    ks = list(range(int(lo), int(hi) + 1)) if hi else [int(k) for k in args.excerpts.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    excerpts = [load_excerpt(k) for k in ks]
    t0 = time.time()
    folds, _ = run_offline(excerpts)
    pooled = _rates(_pool([f["counts"] for f in folds.values()]))
    ceiling = [a for a in (expert_agreement(ex) for ex in excerpts) if a is not None]
    report = {"offline_leave_one_excerpt_out": {
        str(k): {key: v for key, v in f.items() if key != "counts"} for k, f in folds.items()},
        "offline_pooled": pooled,
        "offline_mean_recall": round(float(np.mean([f["recall"] for f in folds.values()])), 3),
        "offline_mean_precision": round(float(np.mean([f["precision"] for f in
                                                       folds.values()])), 3),
        "expert2_vs_expert1": _rates(_pool(ceiling)) if ceiling else None,
        "offline_minutes": round((time.time() - t0) / 60, 1), "budget_s": args.budget_s,
        "tolerance_s": TOL_S}
    print("\nOffline, leave one excerpt out (reference: union of the experts; expert 1 "
          "alone for excerpts 7-8):")
    print("| excerpt | Hz | threshold | min dur (s) | recall | precision | F1 | onset->trigger "
          "median / p90 (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for k, f in folds.items():
        print(f"| {k} | {f['sfreq']:g} | {f['threshold']} | {f['min_duration_s']} | "
              f"{f['recall']} | {f['precision']} | {f['f1']} | {f['latency_median_ms']} / "
              f"{f['latency_p90_ms']} |")
    print(f"| pooled | | | | {pooled['recall']} | {pooled['precision']} | {pooled['f1']} | "
          f"{pooled['latency_median_ms']} / {pooled['latency_p90_ms']} |")
    if report["expert2_vs_expert1"]:
        c = report["expert2_vs_expert1"]
        print(f"| expert 2 vs 1 (1-6) | | | | {c['recall']} | {c['precision']} | {c['f1']} | "
              f"{c['latency_median_ms']} / {c['latency_p90_ms']} |")
    if args.online_minutes > 0:
        k = args.online_excerpt
        ex = next(e for e in excerpts if e["k"] == k)
        online = (evaluate_session(Path(args.evaluate_session), ex, folds[k],
                                   args.online_minutes) if args.evaluate_session
                  else run_online(ex, folds[k], args.online_minutes, out))
        report["online"] = online
        s = online["summary"]
        r = online["by_marker_time"]
        print(f"\nOnline over LSL, excerpt {k}, {args.online_minutes:g} min in real time: "
              f"{s['samples_received']} samples, {s['samples_lost']} lost, "
              f"{s['stimuli_fired']} stimuli ({s['stimuli_suppressed']} suppressed); recall "
              f"{r['recall']}, precision {r['precision']}, onset->marker median "
              f"{r['latency_median_ms']} ms (p90 {r['latency_p90_ms']}), within 300 ms "
              f"{r['within_300ms']}; trigger sample->marker {online['marker_minus_trigger_ms']}"
              f" ms; online==offline stimuli {online['online_offline_agreement']}")
    (out / "spindles.json").write_text(json.dumps(report, indent=2))
    print(f"\nWrote {out / 'spindles.json'}")
    return report


if __name__ == "__main__":
    main()
