r"""Seizure detection with the Spiking Conformer and its non-spiking twin (Gao et al. 2024).

Two data modes share the training, evaluation and reporting code:

- **Bonn** (``--data auto|real|synthetic``): single-channel segments, event metrics on streams
  that are synthetic concatenations of segments;
- **CHB-MIT** (``--data chbmit``): one case of the CHB-MIT scalp EEG, split by file, event
  metrics on the held-out files, which are **real continuous recordings**.

Protocol, Bonn:

1. Data: the Bonn epilepsy segments (:func:`bci.data.seizure.load_bonn`: sets Z, O, N, F, S x
   100 single-channel segments of 23.6 s at 173.61 Hz; S = seizures), found through
   ``MNE_DATASETS_BONN_PATH`` (else ``$MNE_DATA/bonn_epilepsy``, or ``--path``) when present,
   else seeded synthetic segments (:func:`bci.data.seizure.make_seizure_eeg`); the output says
   which. Task: seizure (set S) vs everything else (Z, O, N, F).
2. Split **by segment**, stratified by set and seeded (:func:`bci.data.seizure.split_segments`):
   60 % training, 10 % validation (early stopping), 30 % test; the same split for both models.
   Segments are cut into windows (``window_s``, 50 % overlap,
   :func:`bci.data.seizure.segment_windows`) scaled by 1/100 (µV -> 100 µV); a segment's
   prediction is the mean seizure probability of its windows.
3. Train :class:`bci.models.spiking.conformer.SpikingConformer` (approximate neurons) and its
   twin (``spiking=False``: ReLU, softmax attention, same parameters) with the Lightning path
   (:func:`bci.models.training.train_model`), same seed and budget.
4. Segment metrics on the test segments: accuracy, sensitivity, specificity
   (:func:`bci.evaluation.seizure_metrics.segment_scores`).
5. Streams: the held-out test segments joined end to end in a seeded random order, seizures
   between non-seizure segments (:func:`bci.data.seizure.make_seizure_stream`): **synthetic
   concatenations of real segments**, not continuous recordings. Sliding windows (``step_s``)
   scored by both models; event metrics (:mod:`bci.evaluation.seizure_metrics`, any-overlap,
   2 consecutive positive windows, 10 s refractory merge, tolerance one window).
6. Operations per window (NeuroBench definitions, :func:`bci.models.spiking.cost.count_operations`):
   effective ACs / MACs, dense operations, neuron updates, activation sparsity, memory; per
   second of signal at one window every ``step_s``.
7. Approximate neuron: a third model, the spiking one trained with plain LIF neurons (same seed
   and budget); then each spiking model's weights run with the other neuron (approximate-trained
   weights with plain LIF, ``spiking@lif``; LIF-trained weights with approximate neurons,
   ``spiking_lif@approx``): neuron updates saved by the approximate neuron on the same weights,
   and the change of accuracy and event metrics.

Protocol, CHB-MIT (``--data chbmit --subject N [--path ROOT] [--files ...]``):

1. Data: the EDF files of case ``chbNN`` (:func:`bci.data.chbmit.load_chbmit_subject`; all files
   the summary lists, or ``--files``) under ``ROOT/chbNN/`` or ``ROOT/MNE-chbmit-data/chbNN/``
   (``ROOT``: ``--path``, else ``MNE_DATASETS_CHBMIT_PATH``, ``MNE_DATA``, ``~/mne_data``);
   nothing is downloaded unless ``--download``. Channels: the EEG (bipolar) channels common to
   every file read (:func:`bci.data.chbmit.common_eeg_channels`). Each file is band-passed
   (``band_hz``, 0.5-40 Hz, MNE FIR; the upper edge at most 0.45 x the new rate), resampled to
   ``chbmit_sfreq`` (128 Hz; ``--sfreq 256`` keeps the original rate) and scaled like the Bonn
   segments (:func:`bci.data.seizure.prepare_recording`).
2. Split **by file** (:func:`bci.data.chbmit.split_files`), a continuous-recording protocol: the
   held-out test files are the last ``test_fraction`` (30 %, at least one) of the files with
   seizures, in the summary's order, plus the last 30 % (at least one) of the seizure-free
   files; the other files train. At least two files with seizures are needed.
3. Training windows (``window_s``, hop ``step_s``) from the training files only
   (:func:`bci.data.seizure.choose_training_windows`): seizure windows are those at least half
   inside an annotated seizure; background windows overlap no seizure and are subsampled
   (seeded) to ``background_ratio`` (4) per seizure window. A seeded, stratified
   ``val_fraction`` (15 %) of these windows is the validation set for early stopping.
4. Models and training as for Bonn (``n_chans`` = the common channels).
5. Evaluation on the held-out files as **real continuous CHB-MIT recordings**: each file is cut
   into sliding windows (``step_s``) and scored as its own recording with the same event rules;
   the event metrics are pooled over files
   (:func:`bci.evaluation.seizure_metrics.pool_seizure_metrics`). The held-out accuracy is the
   window accuracy over those windows (very imbalanced, so balanced accuracy is reported too).
6. and 7. Operations and the approximate neuron as for Bonn, on held-out windows.

Usage::

    nice python recipes/seizure_spiking_conformer.py --out results/seizure   # ~15-20 min
    python recipes/seizure_spiking_conformer.py --quick                    # about a minute
    nice python recipes/seizure_spiking_conformer.py --data chbmit --path ~/mne_data \
        --subject 1 --out results/seizure_chb01          # one case, real continuous recordings

Outputs in ``--out``: ``metrics.json``, ``stream_probability.png``, ``training.png``. The last
printed line is one JSON object with the final metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from bci.data.chbmit import (
    common_eeg_channels,
    load_chbmit_subject,
    seizure_intervals,
    split_files,
)
from bci.data.datamodule import EEGDataModule, split_train_val
from bci.data.seizure import (
    choose_training_windows,
    load_bonn,
    make_seizure_eeg,
    make_seizure_stream,
    prepare_recording,
    segment_windows,
    sliding_windows,
    split_segments,
    subsample_segments,
    windows_at,
)
from bci.evaluation.seizure_metrics import (
    binary_scores,
    pool_seizure_metrics,
    segment_scores,
    seizure_metrics,
)
from bci.models.inference import predict_proba
from bci.models.spiking.conformer import SpikingConformer
from bci.models.spiking.cost import count_operations
from bci.models.training import train_model

SCALE = 100.0  # µV -> units of 100 µV
CHBMIT_NOTE = "real continuous CHB-MIT recordings"


@dataclass
class Config:
    """Everything the recipe's numbers depend on."""

    quick: bool = False
    seed: int = 0
    window_s: float = 4.0
    step_s: float = 1.0
    segments_per_set: int | None = None  # None: all 100
    max_epochs: int = 25
    patience: int = 6
    batch_size: int = 64
    lr: float = 3e-3
    threads: int = 1
    model: dict = field(default_factory=lambda: dict(
        n_filters_time=8, kernel_time=25, pool_size=16, d_model=32, n_heads=4, depth=1,
        mlp_ratio=2, kernel_token=7, drop_prob=0.25))
    threshold: float = 0.5
    min_consecutive: int = 2
    merge_gap_s: float = 10.0
    # CHB-MIT only
    chbmit_sfreq: float | None = 128.0  # Hz after resampling; None keeps the files' rate
    band_hz: tuple[float, float] | None = (0.5, 40.0)  # band-pass (Hz); None: no filter
    background_ratio: float = 4.0  # background training windows per seizure window
    val_fraction: float = 0.15  # of the training windows, for early stopping
    test_fraction: float = 0.3  # of the seizure files (and of the seizure-free files)

    @classmethod
    def quick_config(cls) -> Config:
        """Return the ``--quick`` configuration: small model, 2-s windows, 20 segments per set."""
        return cls(quick=True, window_s=2.0, step_s=1.0, segments_per_set=20, max_epochs=8,
                   patience=6, model=dict(n_filters_time=4, kernel_time=15, pool_size=16,
                                          d_model=16, n_heads=2, depth=1, mlp_ratio=2,
                                          kernel_token=5, drop_prob=0.1))


@dataclass
class Recording:
    """One held-out continuous signal ``(n_chans, n_samples)`` (100 µV) and its seizures (s)."""

    name: str
    signal: np.ndarray
    intervals: np.ndarray
    description: str
    sfreq: float

    @property
    def duration_s(self) -> float:
        """Length (seconds)."""
        return self.signal.shape[1] / self.sfreq


@dataclass
class Prepared:
    """What the shared training/evaluation code needs from a data mode.

    Windows ``X_*`` are ``(n_windows, n_chans, n_window)`` float32 in units of 100 µV, labels
    ``y_*`` 1 for seizure. ``X_te``/``y_te``: the held-out windows of the window-level scores
    (None: the held-out recordings' sliding windows). ``unit`` names the held-out accuracy
    reported (``"segment"`` for Bonn, ``"window"`` for CHB-MIT).
    """

    kind: str
    data_note: str
    sfreq: float
    n_chans: int
    n_window: int
    X_tr: np.ndarray
    y_tr: np.ndarray
    X_va: np.ndarray
    y_va: np.ndarray
    X_te: np.ndarray | None
    y_te: np.ndarray | None
    X_ops: np.ndarray
    recordings: list[Recording]
    unit: str
    segment_scores: Callable[[np.ndarray], dict] | None = None
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Bonn segments: split by segment, test stream of joined segments
def prepare_bonn(cfg: Config, data: str, path: Path | None) -> Prepared:
    """Bonn (or synthetic) segments: split by segment, test stream of joined segments."""
    kind = "synthetic"
    if data != "synthetic":
        try:
            segments, kind = load_bonn(path), "real"
        except FileNotFoundError as err:
            if data == "real":
                raise
            print(f"{err}\nFalling back to SYNTHETIC segments.")
    if kind == "synthetic":
        segments = make_seizure_eeg(5 * (cfg.segments_per_set or 20), n_times=4097,
                                    ictal_ratio=0.2, random_state=cfg.seed)
    elif cfg.segments_per_set is not None:
        segments = subsample_segments(segments, cfg.segments_per_set, random_state=cfg.seed)
    sfreq = segments.sfreq
    n_window = int(round(cfg.window_s * sfreq))
    train_idx, val_idx, test_idx = split_segments(segments.sets, random_state=cfg.seed)
    (X_tr, y_tr, _), (X_va, y_va, _), (X_te, y_te, own_te) = (
        segment_windows(segments, idx, n_window) for idx in (train_idx, val_idx, test_idx))
    X_tr, X_va, X_te = X_tr / SCALE, X_va / SCALE, X_te / SCALE
    print(f"data: {kind}; {len(segments)} segments (train {len(train_idx)}, val "
          f"{len(val_idx)}, test {len(test_idx)}); windows {n_window} samples "
          f"({cfg.window_s} s): train {len(X_tr)}, val {len(X_va)}, test {len(X_te)}")
    stream = make_seizure_stream(segments.subset(test_idx), random_state=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    X_ops = X_te[rng.choice(len(X_te), size=min(64, len(X_te)), replace=False)]
    data_note = ("real Bonn segments; streams are concatenations of real segments"
                 if kind == "real" else "synthetic")
    return Prepared(
        kind=kind, data_note=data_note, sfreq=sfreq, n_chans=segments.X.shape[1],
        n_window=n_window, X_tr=X_tr, y_tr=y_tr, X_va=X_va, y_va=y_va, X_te=X_te, y_te=y_te,
        X_ops=X_ops,
        recordings=[Recording("stream", stream.signal / SCALE, stream.intervals,
                              stream.description, sfreq)],
        unit="segment",
        segment_scores=lambda p: segment_scores(p, own_te, segments.ictal,
                                                threshold=cfg.threshold),
        info={"split": {"train": [segments.names[i] for i in train_idx],
                        "val": [segments.names[i] for i in val_idx],
                        "test": [segments.names[i] for i in test_idx]},
              "stream": {"description": stream.description,
                         "duration_s": stream.duration_s,
                         "intervals_s": stream.intervals.tolist(),
                         "segments": stream.segment_names}})


# ---------------------------------------------------------------------------------------------
# CHB-MIT continuous recordings: split by file, held-out files scored as recorded
def prepare_chbmit(cfg: Config, path: Path | None, subject: int,
                   files: Sequence[str] | None = None, download: bool = False) -> Prepared:
    """One CHB-MIT case: split by file, training windows, held-out continuous recordings."""
    case = f"chb{subject:02d}"
    try:
        raws = load_chbmit_subject(subject, path, files, download=download)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"--data chbmit: {err} With this recipe: pass --path ROOT (the folder holding "
            f"{case}/ or MNE-chbmit-data/{case}/), --files to use only the files present, or "
            "--download to fetch missing files from PhysioNet.") from err
    names = [Path(r.filenames[0]).name for r in raws]
    channels = common_eeg_channels(raws)
    intervals = [seizure_intervals(r) for r in raws]
    train, test = split_files(intervals, test_fraction=cfg.test_fraction, names=names)

    def prepare(raw) -> tuple[np.ndarray, float]:  # in units of 100 µV, like the Bonn path
        return prepare_recording(raw, channels, band_hz=cfg.band_hz, sfreq=cfg.chbmit_sfreq,
                                 unit_factor=1e6 / SCALE)

    # training windows: chosen in seconds first, then read from each training file
    rng = np.random.default_rng(cfg.seed)
    owner, starts_s, labels = choose_training_windows(
        [raws[i].n_times / raws[i].info["sfreq"] for i in train], [intervals[i] for i in train],
        cfg.window_s, cfg.step_s, background_ratio=cfg.background_ratio, random_state=rng)
    X, y = [], []
    for k, i in enumerate(train):
        signal, sfreq = prepare(raws[i])
        X.append(windows_at(signal, sfreq, starts_s[owner == k], cfg.window_s))
        y.append(labels[owner == k])
    X, y = np.concatenate(X), np.concatenate(y)
    tr, va = split_train_val(y, cfg.val_fraction, stratify=True, random_state=cfg.seed)

    recordings = []
    for i in test:
        signal, sfreq_test = prepare(raws[i])
        recordings.append(Recording(
            names[i], signal, intervals[i],
            f"{names[i]}: real continuous CHB-MIT recording, {signal.shape[1] / sfreq_test:.0f} "
            f"s, {len(intervals[i])} seizure(s)", sfreq_test))
    # windows for the operation counts: seeded, from the held-out recordings
    n_window = int(round(cfg.window_s * sfreq))
    n_step = max(1, int(round(cfg.step_s * sfreq)))
    pool = [(k, s) for k, rec in enumerate(recordings)
            for s in range(0, rec.signal.shape[1] - n_window + 1, n_step)]
    picks = rng.choice(len(pool), size=min(64, len(pool)), replace=False)
    X_ops = np.stack([recordings[pool[p][0]].signal[:, pool[p][1]:pool[p][1] + n_window]
                      for p in picks])
    test_hours = sum(r.duration_s for r in recordings) / 3600
    n_test_seizures = sum(len(r.intervals) for r in recordings)
    print(f"data: CHB-MIT {case}, {len(names)} files, {len(channels)} common EEG channels at "
          f"{sfreq:g} Hz; train files {[names[i] for i in train]}, held-out files "
          f"{[names[i] for i in test]} ({test_hours:.2f} h, {n_test_seizures} seizures); "
          f"windows {n_window} samples ({cfg.window_s} s): train {len(tr)}, val {len(va)} "
          f"({int(y.sum())} seizure windows in all)")
    data_note = (f"{CHBMIT_NOTE} (case {case}, split by file; held-out files: "
                 f"{', '.join(names[i] for i in test)})")
    return Prepared(
        kind="chbmit", data_note=data_note, sfreq=sfreq, n_chans=len(channels),
        n_window=n_window, X_tr=X[tr], y_tr=y[tr], X_va=X[va], y_va=y[va], X_te=None,
        y_te=None, X_ops=X_ops, recordings=recordings, unit="window",
        info={"subject": subject, "case": case, "channels": channels, "sfreq": sfreq,
              "split": {"train": [names[i] for i in train], "test": [names[i] for i in test]},
              "seizures_s": {n: iv.tolist() for n, iv in zip(names, intervals, strict=True)},
              "test_hours": test_hours, "n_test_seizures": n_test_seizures,
              "training_windows": {"seizure": int(y.sum()), "background": int((y == 0).sum()),
                                   "val": len(va)}})


# ---------------------------------------------------------------------------------------------
# shared training / evaluation
def operations(model, X, step_s: float) -> dict:
    """NeuroBench operation counts per window, and per second at one window every ``step_s``."""
    counts = count_operations(model, torch.as_tensor(X, dtype=torch.float32), sfreq=1.0 / step_s)
    out = counts.as_dict()
    out["synaptic_operations"] = counts.synaptic_operations
    out["per_second"] = counts.per_second()
    return out


def train_models(cfg: Config, prep: Prepared) -> tuple[dict, dict, dict]:
    """Train the approximate spiking, the plain-LIF spiking and the twin models.

    The two neuron-swapped copies are added. Returns ``(models, results, histories)``.
    """
    results, models, histories = {}, {}, {}
    trained = (("spiking", True, True), ("spiking_lif", True, False), ("twin", False, True))
    for name, spiking, approximate in trained:
        torch.manual_seed(cfg.seed)
        model = SpikingConformer(prep.n_chans, 2, prep.n_window, sfreq=prep.sfreq,
                                 spiking=spiking, approximate=approximate, **cfg.model)
        dm = EEGDataModule(prep.X_tr, prep.y_tr, X_val=prep.X_va, y_val=prep.y_va,
                           batch_size=cfg.batch_size, random_state=cfg.seed)
        t = time.time()
        res = train_model(model, dm, max_epochs=cfg.max_epochs, patience=cfg.patience,
                          lr=cfg.lr, seed=cfg.seed, n_threads=cfg.threads)
        train_s = time.time() - t
        models[name], histories[name] = res.model, res.history
        results[name] = {"train_s": train_s, "epochs": res.n_epochs,
                         "best_epoch": res.best_epoch,
                         "n_params": sum(p.numel() for p in res.model.parameters())}
        print(f"trained {name}: {res.n_epochs} epochs in {train_s:.0f} s")

    # the same trained weights with the other neuron: approximate-trained with plain LIF, and
    # LIF-trained with approximate neurons
    for source, target, approximate in (("spiking", "spiking@lif", False),
                                        ("spiking_lif", "spiking_lif@approx", True)):
        swapped = SpikingConformer(**{**models[source].get_config(),
                                      "approximate": approximate})
        swapped.load_state_dict(models[source].state_dict())
        models[target] = swapped.eval()
        results[target] = {"n_params": results[source]["n_params"], "weights_of": source}
    return models, results, histories


def evaluate(cfg: Config, prep: Prepared, models: dict, results: dict) -> list[dict]:
    """Score windows/segments, events on the held-out recordings and operations.

    Scores go into ``results``. Returns, per recording, its decision times and each model's
    probabilities.
    """
    traces, per_model = [], {name: [] for name in models}
    labels_all, n_negative, n_positive = [], [], []
    for rec in prep.recordings:
        W, w_labels, w_times = sliding_windows(rec.signal, rec.sfreq, cfg.window_s,
                                               cfg.step_s, rec.intervals)
        print(f"{'stream' if prep.kind != 'chbmit' else 'recording'}: {rec.description}; "
              f"{rec.duration_s / 60:.1f} min, {len(rec.intervals)} seizures, {len(W)} windows")
        trace = {"name": rec.name, "times": w_times, "intervals": rec.intervals,
                 "duration_s": rec.duration_s, "probas": {}}
        for name, model in models.items():
            p = predict_proba(model, W)[:, 1]
            trace["probas"][name] = p
            metrics = seizure_metrics(
                p, w_times, rec.intervals, labels=w_labels, threshold=cfg.threshold,
                min_consecutive=cfg.min_consecutive, merge_gap_s=cfg.merge_gap_s,
                tolerance_s=cfg.window_s, duration_s=rec.duration_s)
            per_model[name].append((metrics, p))
        traces.append(trace)
        labels_all.append(w_labels)
        n_negative.append(int((w_labels == 0).sum()))
        n_positive.append(int((w_labels == 1).sum()))
    for name, model in models.items():
        r = results[name]
        if prep.X_te is not None:
            p_te = predict_proba(model, prep.X_te)[:, 1]
            r["window"] = binary_scores(p_te >= cfg.threshold, prep.y_te)
            r["segment"] = prep.segment_scores(p_te)
        else:  # held-out recordings' sliding windows (no consecutive rule: raw decisions)
            p_all = np.concatenate([p for _, p in per_model[name]])
            r["window"] = binary_scores(p_all >= cfg.threshold, np.concatenate(labels_all))
        r["stream"] = pool_seizure_metrics([m for m, _ in per_model[name]], n_negative,
                                           n_positive).as_dict()
        if len(prep.recordings) > 1:
            r["recordings"] = {rec.name: m.as_dict() for rec, (m, _)
                               in zip(prep.recordings, per_model[name], strict=True)}
        r["operations"] = operations(model, prep.X_ops, cfg.step_s)
    return traces


def summarise(cfg: Config, prep: Prepared, results: dict, elapsed_s: float) -> dict:
    """Print the comparison and return the one-line summary (JSON-serialisable)."""

    def saving(approx_name: str, plain_name: str) -> float:
        return 1.0 - (results[approx_name]["operations"]["neuron_updates"]
                      / results[plain_name]["operations"]["neuron_updates"])

    u = prep.unit  # "segment" (Bonn) or "window" (CHB-MIT)
    saving_same = saving("spiking", "spiking@lif")
    saving_lif_weights = saving("spiking_lif@approx", "spiking_lif")
    approx_ops = results["spiking"]["operations"]
    twin_synops = results["twin"]["operations"]["synaptic_operations"]
    synops_ratio = twin_synops / max(approx_ops["synaptic_operations"], 1e-12)
    # the first (temporal) convolution reads the raw signal: the same MACs in both models
    input_macs = approx_ops["effective_macs"]
    synops_ratio_after_input = ((twin_synops - input_macs)
                                / max(approx_ops["synaptic_operations"] - input_macs, 1e-12))

    print_table(results, prep.unit)
    acc = {name: r[u]["accuracy"] for name, r in results.items()}
    print(f"approximate neuron, approximate-trained weights: {100 * saving_same:.1f} % fewer "
          f"neuron updates than plain LIF on the same weights; {u} accuracy "
          f"{acc['spiking']:.3f} (approximate) vs {acc['spiking@lif']:.3f} (plain LIF)")
    print(f"approximate neuron, LIF-trained weights: {100 * saving_lif_weights:.1f} % fewer "
          f"neuron updates; {u} accuracy {acc['spiking_lif@approx']:.3f} (approximate) vs "
          f"{acc['spiking_lif']:.3f} (plain LIF)")
    print(f"twin / spiking synaptic operations: {synops_ratio:.1f}x "
          f"({synops_ratio_after_input:.1f}x after the input layer, whose MACs on the raw "
          "signal both models share)")
    if prep.kind == "chbmit":
        print(f"event metrics on {CHBMIT_NOTE}: {len(prep.recordings)} held-out file(s), "
              f"{prep.info['test_hours']:.2f} h, {prep.info['n_test_seizures']} seizures")

    stream = {name: r["stream"] for name, r in results.items()}
    held = {name: r[u] for name, r in results.items()}
    summary = {"data": prep.data_note}
    if prep.kind == "chbmit":
        summary.update({"subject": prep.info["subject"], "channels": prep.info["channels"],
                        "sfreq": prep.sfreq, "train_files": prep.info["split"]["train"],
                        "test_files": prep.info["split"]["test"],
                        "test_hours": prep.info["test_hours"],
                        "n_test_seizures": prep.info["n_test_seizures"]})
    events = ("sensitivity", "specificity", "false_alarms_per_hour", "latency_s")
    summary.update({key: stream["spiking"][key] for key in events})
    summary.update({f"{u}_{key}": held["spiking"][key]
                    for key in ("accuracy", "sensitivity", "specificity")})
    if u == "window":
        summary["window_balanced_accuracy"] = held["spiking"]["balanced_accuracy"]
    summary.update({f"twin_{key}": stream["twin"][key] for key in events})
    summary.update({
        f"twin_{u}_accuracy": held["twin"]["accuracy"],
        "synops_spiking": approx_ops["synaptic_operations"],
        "effective_acs_spiking": approx_ops["effective_acs"],
        "effective_macs_spiking": approx_ops["effective_macs"],
        "synops_twin": twin_synops,
        "twin_to_spiking_synops": synops_ratio,
        "twin_to_spiking_synops_after_input_layer": synops_ratio_after_input,
        "neuron_updates_approx": approx_ops["neuron_updates"],
        "neuron_updates_plain_lif": results["spiking@lif"]["operations"]["neuron_updates"],
        "neuron_update_saving": saving_same,
        f"same_weights_plain_lif_{u}_accuracy": acc["spiking@lif"],
        "same_weights_plain_lif_sensitivity": stream["spiking@lif"]["sensitivity"],
        f"lif_trained_{u}_accuracy": acc["spiking_lif"],
        "lif_trained_sensitivity": stream["spiking_lif"]["sensitivity"],
        "lif_trained_specificity": stream["spiking_lif"]["specificity"],
        "lif_trained_false_alarms_per_hour": stream["spiking_lif"]["false_alarms_per_hour"],
        f"lif_trained_with_approx_{u}_accuracy": acc["spiking_lif@approx"],
        "lif_trained_with_approx_sensitivity": stream["spiking_lif@approx"]["sensitivity"],
        "neuron_update_saving_lif_trained_weights": saving_lif_weights,
        "quick": cfg.quick,
        "elapsed_s": elapsed_s,
    })
    return summary


def run(cfg: Config, data: str = "auto", path: Path | None = None, out: Path | None = None,
        *, subject: int | None = None, files: Sequence[str] | None = None,
        download: bool = False) -> dict:
    """Train and evaluate the models; returns the summary (and writes files into ``out``).

    ``data``: ``"auto"``, ``"real"``, ``"synthetic"`` (Bonn; ``path`` the Bonn folder or None
    for ``MNE_DATASETS_BONN_PATH``) or ``"chbmit"`` (``path`` the CHB-MIT root or None for the
    MNE config, ``subject`` the case number, ``files`` an optional subset, ``download`` to fetch
    missing files).
    """
    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    if data == "chbmit":
        if subject is None:
            raise ValueError("--data chbmit needs --subject N (the case number, 1..24).")
        prep = prepare_chbmit(cfg, path, subject, files, download)
    else:
        prep = prepare_bonn(cfg, data, path)
    models, results, histories = train_models(cfg, prep)
    traces = evaluate(cfg, prep, models, results)
    summary = summarise(cfg, prep, results, time.time() - t0)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        full = {"summary": summary, "config": asdict(cfg), "results": results,
                **prep.info, "histories": histories}
        (out / "metrics.json").write_text(json.dumps(full, indent=2, default=float))
        plot_stream(out / "stream_probability.png", traces, cfg, prep.data_note)
        plot_training(out / "training.png", histories)
    return summary


def print_table(results: dict, unit: str = "segment") -> None:
    """Print one column per model, one row per metric."""
    rows = []
    if unit == "segment":
        rows += [("segment acc", lambda r: r["segment"]["accuracy"], "{:.3f}"),
                 ("segment sens", lambda r: r["segment"]["sensitivity"], "{:.3f}"),
                 ("segment spec", lambda r: r["segment"]["specificity"], "{:.3f}")]
    rows += [("window acc", lambda r: r["window"]["accuracy"], "{:.3f}")]
    if unit == "window":
        rows += [("window balanced acc", lambda r: r["window"]["balanced_accuracy"], "{:.3f}")]
    rows += [("event sensitivity", lambda r: r["stream"]["sensitivity"], "{:.3f}"),
             ("window specificity", lambda r: r["stream"]["specificity"], "{:.4f}"),
             ("false alarms / h", lambda r: r["stream"]["false_alarms_per_hour"], "{:.2f}"),
             ("latency (s)", lambda r: r["stream"]["latency_s"], "{:.2f}"),
             ("effective MACs/win", lambda r: r["operations"]["effective_macs"], "{:,.0f}"),
             ("effective ACs/win", lambda r: r["operations"]["effective_acs"], "{:,.0f}"),
             ("dense ops/win", lambda r: r["operations"]["dense_ops"], "{:,.0f}"),
             ("neuron updates/win", lambda r: r["operations"]["neuron_updates"], "{:,.0f}"),
             ("updates skipped/win", lambda r: r["operations"]["neuron_updates_skipped"],
              "{:,.0f}"),
             ("activation sparsity", lambda r: r["operations"]["activation_sparsity"],
              "{:.3f}"),
             ("parameters", lambda r: r["n_params"], "{:,}")]
    names = list(results)
    width = max(len(n) for n in names) + 2
    print(f"{'':22s}" + "".join(f"{n:>{width}s}" for n in names))
    for label, get, fmt in rows:
        print(f"{label:22s}" + "".join(f"{fmt.format(get(results[n])):>{width}s}"
                                       for n in names))


def plot_stream(file: Path, traces: list[dict], cfg: Config, data_note: str) -> None:
    """Plot each model's seizure probability over the held-out recordings, end to end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(traces[0]["probas"])
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 2.2 * len(names)), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        offset_s = 0.0
        for k, trace in enumerate(traces):
            for onset, offset in trace["intervals"]:
                ax.axvspan((offset_s + onset) / 60, (offset_s + offset) / 60, color="tab:red",
                           alpha=0.25, lw=0)
            ax.plot((offset_s + trace["times"]) / 60, trace["probas"][name], lw=0.8, color="k")
            if k:
                ax.axvline(offset_s / 60, color="0.5", ls=":", lw=0.8)
            offset_s += trace["duration_s"]
        ax.axhline(cfg.threshold, color="tab:blue", ls="--", lw=0.8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("P(seizure)")
        ax.set_title(name, fontsize=9, loc="left")
    np.atleast_1d(axes)[-1].set_xlabel("time (min)")
    fig.suptitle(f"Seizure probability per {cfg.window_s:g} s window (shaded: true seizures); "
                 f"{data_note}", fontsize=9)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)


def plot_training(file: Path, histories: dict) -> None:
    """Plot the training and validation losses of the trained models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, rows in histories.items():
        ax.plot([r["epoch"] for r in rows], [r.get("train_loss", np.nan) for r in rows],
                label=f"{name} train")
        ax.plot([r["epoch"] for r in rows], [r.get("val_loss", np.nan) for r in rows],
                ls="--", label=f"{name} val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Run the recipe from the command line (``argv``); returns the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small model, 20 segments per set, 8 epochs (about a minute)")
    parser.add_argument("--data", choices=["auto", "real", "synthetic", "chbmit"],
                        default="auto",
                        help="real Bonn data, synthetic segments, real Bonn when present, or "
                             "one CHB-MIT case (--subject)")
    parser.add_argument("--path", type=Path, default=None,
                        help="Bonn: folder of the sets (default: MNE_DATASETS_BONN_PATH, else "
                             "$MNE_DATA/bonn_epilepsy); CHB-MIT: the folder holding chbNN/ or "
                             "MNE-chbmit-data/chbNN/ (default: MNE_DATASETS_CHBMIT_PATH, "
                             "MNE_DATA, ~/mne_data)")
    parser.add_argument("--subject", type=int, default=None,
                        help="CHB-MIT case number, 1..24 (--data chbmit)")
    parser.add_argument("--files", nargs="+", default=None,
                        help="CHB-MIT: EDF files of the case to use (default: all in its "
                             "summary), e.g. chb01_03.edf chb01_04.edf")
    parser.add_argument("--download", action="store_true",
                        help="CHB-MIT: download missing files from PhysioNet (1-4 GB a case)")
    parser.add_argument("--sfreq", type=float, default=None,
                        help="CHB-MIT: resample to this rate (Hz; default 128, 256 keeps it)")
    parser.add_argument("--out", type=Path, default=Path("results") / "seizure_conformer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=None, help="override max_epochs")
    parser.add_argument("--segments-per-set", type=int, default=None,
                        help="override the segments used per set (all 100 in the full run)")
    args = parser.parse_args(argv)
    if args.data == "chbmit" and args.subject is None:
        parser.error("--data chbmit needs --subject N (the CHB-MIT case number, 1..24).")
    if args.data != "chbmit" and (args.subject is not None or args.files or args.download
                                  or args.sfreq is not None):
        parser.error("--subject, --files, --download and --sfreq apply to --data chbmit only.")
    cfg = Config.quick_config() if args.quick else Config()
    cfg.seed, cfg.threads = args.seed, args.threads
    if args.epochs is not None:
        cfg.max_epochs = args.epochs
    if args.segments_per_set is not None:
        cfg.segments_per_set = args.segments_per_set
    if args.sfreq is not None:
        cfg.chbmit_sfreq = args.sfreq
    try:
        summary = run(cfg, args.data, args.path, args.out, subject=args.subject,
                      files=args.files, download=args.download)
    except FileNotFoundError as err:  # missing data: the message says how to fix it
        sys.exit(f"error: {err}")
    print(f"wrote {args.out / 'metrics.json'}, {args.out / 'stream_probability.png'}, "
          f"{args.out / 'training.png'}")
    print(json.dumps(summary, default=float))
    return summary


if __name__ == "__main__":
    main()
