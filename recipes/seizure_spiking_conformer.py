"""Seizure detection with the Spiking Conformer and its non-spiking twin (Gao et al. 2024).

Two data modes share the training, evaluation and reporting code:

- **Bonn** (``--data auto|real|synthetic``): single-channel segments, event metrics on streams
  that are synthetic concatenations of segments;
- **CHB-MIT** (``--data chbmit``): one case of the CHB-MIT scalp EEG, split by file, event
  metrics on the held-out files, which are **real continuous recordings**.

Protocol, Bonn:

1. Data: the Bonn epilepsy segments (``../shared/data/bonn_epilepsy``: sets Z, O, N, F, S x 100
   single-channel segments of 23.6 s at 173.61 Hz; S = seizures) when present, else seeded
   synthetic segments (:func:`bci.data.seizure.make_seizure_eeg`); the output says which.
   Task: seizure (set S) vs everything else (Z, O, N, F).
2. Split **by segment**, stratified by set and seeded: 60 % training, 10 % validation (early
   stopping), 30 % test; the same split for both models. Segments are cut into windows
   (``window_s``, 50 % overlap) scaled by 1/100 (µV -> 100 µV); a segment's prediction is the
   mean seizure probability of its windows.
3. Train :class:`bci.models.spiking.conformer.SpikingConformer` (approximate neurons) and its
   twin (``spiking=False``: ReLU, softmax attention, same parameters) with the Lightning path
   (:func:`bci.models.training.train_model`), same seed and budget.
4. Segment metrics on the test segments: accuracy, sensitivity, specificity.
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

Protocol, CHB-MIT (``--data chbmit --path ROOT --subject N [--files ...]``):

1. Data: the EDF files of case ``chbNN`` (:func:`bci.data.chbmit.load_chbmit_subject`; all files
   the summary lists, or ``--files``) under ``ROOT/chbNN/`` or ``ROOT/MNE-chbmit-data/chbNN/``;
   nothing is downloaded unless ``--download``. Channels: the EEG (bipolar) channels common to
   every file read, in the first file's order; MNE's numbered repeats of one derivation
   (``T8-P8-0``, ``T8-P8-1``) keep the first. Each file is band-passed (``band_hz``, 0.5-40 Hz,
   MNE FIR; the upper edge at most 0.45 x the new rate) and resampled to ``chbmit_sfreq``
   (128 Hz; ``--sfreq 256`` keeps the original rate), converted from volts (MNE) to µV, then
   scaled by 1/100 like the Bonn segments.
2. Split **by file**, a continuous-recording protocol: the held-out test files are the last
   ``test_fraction`` (30 %, at least one) of the files with seizures, in the summary's order,
   plus the last 30 % (at least one) of the seizure-free files; the other files train. At least
   two files with seizures are needed. Test files are never seen in training or validation.
3. Training windows (``window_s``, hop ``step_s``) from the training files only: seizure windows
   are those at least half inside an annotated seizure; background windows overlap no seizure
   and are subsampled (seeded, uniformly over the training files) to ``background_ratio`` (4)
   per seizure window; windows partly (< 50 %) inside a seizure are left out. A seeded,
   stratified ``val_fraction`` (15 %) of these windows is the validation set for early
   stopping (from the training files, so it overlaps the training windows in time).
4. Models and training as for Bonn (``n_chans`` = the common channels).
5. Evaluation on the held-out files as **real continuous CHB-MIT recordings**: each file is cut
   into sliding windows (``step_s``) and scored as its own recording with the same event rules;
   the event metrics are pooled over files (seizures detected / seizures, false alarms / hours of
   non-seizure time, window specificity over all windows). The held-out accuracy is the window
   accuracy over those windows (labelled seizure when at least half inside a seizure; very
   imbalanced, so balanced accuracy is reported too); there are no segments.
6. and 7. Operations and the approximate neuron as for Bonn, on held-out windows.

Usage::

    nice python recipes/seizure_spiking_conformer.py --out results/seizure   # ~15-20 min
    python recipes/seizure_spiking_conformer.py --quick                    # about a minute
    nice python recipes/seizure_spiking_conformer.py --data chbmit --path ~/mne_data \\
        --subject 1 --out results/seizure_chb01          # one case, real continuous recordings

Outputs in ``--out``: ``metrics.json``, ``stream_probability.png``, ``training.png``. The last
printed line is one JSON object with the final metrics.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

_BONN = Path(__file__).resolve().parents[2] / "shared" / "data" / "bonn_epilepsy"
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
    def quick_config(cls, **overrides) -> Config:
        cfg = cls(quick=True, window_s=2.0, step_s=1.0, segments_per_set=20, max_epochs=8,
                  patience=6, model=dict(n_filters_time=4, kernel_time=15, pool_size=16,
                                         d_model=16, n_heads=2, depth=1, mlp_ratio=2,
                                         kernel_token=5, drop_prob=0.1))
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return cfg


@dataclass
class Recording:
    """One held-out continuous signal, scored window by window.

    ``signal``: ``(n_chans, n_samples)`` float32 in units of 100 µV; ``intervals``: seizure
    onsets/offsets ``(n_seizures, 2)`` in seconds from its first sample.
    """

    name: str
    signal: np.ndarray
    intervals: np.ndarray
    description: str
    sfreq: float

    @property
    def duration_s(self) -> float:
        return self.signal.shape[1] / self.sfreq


@dataclass
class Prepared:
    """What the shared training/evaluation code needs from a data mode.

    Windows ``X_*`` are ``(n_windows, n_chans, n_window)`` float32 in units of 100 µV, labels
    ``y_*`` 1 for seizure. ``X_te``/``y_te`` are the held-out windows of the window-level scores
    (None: the held-out recordings' sliding windows are used). ``unit`` names the held-out
    accuracy reported (``"segment"`` for Bonn, ``"window"`` for CHB-MIT); ``segment_scores``
    maps the probabilities of ``X_te`` to that unit's scores when it is ``"segment"``.
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
# Bonn segments
def load_segments(cfg: Config, data: str, path: Path):
    from bci.data.seizure import load_bonn, make_seizure_eeg

    if data in ("auto", "real") and path.is_dir():
        segments, kind = load_bonn(path), "real"
    elif data == "real":
        sys.exit(f"--data real: the Bonn data is not at {path}.")
    else:
        n = 5 * (cfg.segments_per_set or 20)
        segments, kind = make_seizure_eeg(n, n_times=4097, ictal_ratio=0.2,
                                          random_state=cfg.seed), "synthetic"
    if cfg.segments_per_set is not None and kind == "real":
        rng = np.random.default_rng(cfg.seed)
        keep = np.concatenate([rng.permutation(np.flatnonzero(segments.sets == s))
                               [:cfg.segments_per_set] for s in np.unique(segments.sets)])
        segments = segments.subset(np.sort(keep))
    return segments, kind


def split_segments(sets: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (by set) split of segment indices: 60 % train, 10 % validation, 30 % test."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for name in np.unique(sets):
        idx = rng.permutation(np.flatnonzero(sets == name))
        n_test = max(1, int(round(0.3 * len(idx))))
        n_val = max(1, int(round(0.1 * len(idx))))
        test += idx[:n_test].tolist()
        val += idx[n_test:n_test + n_val].tolist()
        train += idx[n_test + n_val:].tolist()
    return np.sort(train), np.sort(val), np.sort(test)


def segment_windows(segments, idx, n_window: int):
    """Windows with 50 % overlap of the segments ``idx``: X, y (1 = seizure), segment index."""
    X, y, owner = [], [], []
    hop = n_window // 2
    for i in idx:
        sig = segments.X[i]
        for start in range(0, sig.shape[-1] - n_window + 1, hop):
            X.append(sig[:, start:start + n_window])
            y.append(int(segments.ictal[i]))
            owner.append(i)
    return np.stack(X) / SCALE, np.array(y), np.array(owner)


def prepare_bonn(cfg: Config, data: str, path: Path) -> Prepared:
    """Bonn (or synthetic) segments: split by segment, test stream of joined segments."""
    from bci.data.seizure import make_seizure_stream

    segments, kind = load_segments(cfg, data, path)
    sfreq = segments.sfreq
    n_window = int(round(cfg.window_s * sfreq))
    train_idx, val_idx, test_idx = split_segments(segments.sets, cfg.seed)
    X_tr, y_tr, _ = segment_windows(segments, train_idx, n_window)
    X_va, y_va, _ = segment_windows(segments, val_idx, n_window)
    X_te, y_te, own_te = segment_windows(segments, test_idx, n_window)
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
        segment_scores=lambda p: segment_scores(p, own_te, segments, test_idx, cfg.threshold),
        info={"split": {"train": [segments.names[i] for i in train_idx],
                        "val": [segments.names[i] for i in val_idx],
                        "test": [segments.names[i] for i in test_idx]},
              "stream": {"description": stream.description,
                         "duration_s": stream.duration_s,
                         "intervals_s": stream.intervals.tolist(),
                         "segments": stream.segment_names}})


# ---------------------------------------------------------------------------------------------
# CHB-MIT continuous recordings
def split_files(intervals: Sequence[np.ndarray], names: Sequence[str], test_fraction: float
                ) -> tuple[list[int], list[int]]:
    """Indices of the training and the held-out files (see the module docstring, CHB-MIT 2)."""
    with_seizures = [i for i, iv in enumerate(intervals) if len(iv)]
    quiet = [i for i, iv in enumerate(intervals) if not len(iv)]
    if len(with_seizures) < 2:
        raise ValueError(
            f"--data chbmit needs at least 2 files with seizures (one to train on, one held "
            f"out); the {len(names)} file(s) read ({', '.join(names)}) have "
            f"{len(with_seizures)}. Pass --files with more files (the case's summary lists "
            "which hold seizures), or leave --files out to read them all.")
    n_seizure = min(len(with_seizures) - 1,
                    max(1, int(round(test_fraction * len(with_seizures)))))
    n_quiet = min(len(quiet), max(1, int(round(test_fraction * len(quiet)))))
    test = sorted(with_seizures[len(with_seizures) - n_seizure:]
                  + quiet[len(quiet) - n_quiet:])
    return [i for i in range(len(names)) if i not in test], test


def _chbmit_signal(raw, channels: list[str], cfg: Config) -> tuple[np.ndarray, float]:
    """One file's common channels, band-passed and resampled, in units of 100 µV (float32)."""
    raw = raw.copy().pick(channels).load_data(verbose="error")
    if cfg.band_hz is not None:
        low, high = cfg.band_hz
        high = min(high, 0.45 * (cfg.chbmit_sfreq or raw.info["sfreq"]))
        raw.filter(low, high, verbose="error")
    if cfg.chbmit_sfreq is not None and not np.isclose(raw.info["sfreq"], cfg.chbmit_sfreq):
        raw.resample(cfg.chbmit_sfreq, verbose="error")
    # MNE holds volts: to µV, then to units of 100 µV as the Bonn path
    return (raw.get_data() * (1e6 / SCALE)).astype(np.float32), float(raw.info["sfreq"])


def prepare_chbmit(cfg: Config, path: Path | None, subject: int,
                   files: Sequence[str] | None = None, download: bool = False) -> Prepared:
    """One CHB-MIT case: split by file, training windows, held-out continuous recordings."""
    from bci.data.chbmit import common_eeg_channels, load_chbmit_subject, seizure_intervals
    from bci.data.datamodule import split_train_val
    from bci.data.seizure import seizure_overlap_s

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
    train, test = split_files(intervals, names, cfg.test_fraction)

    # training windows: choose them in seconds first, then read only the files' samples
    rng = np.random.default_rng(cfg.seed)
    seizure_wins, background_wins = [], []  # (file, start_s)
    for i in train:
        duration_s = raws[i].n_times / raws[i].info["sfreq"]
        starts_s = np.arange(0.0, duration_s - cfg.window_s + 1e-9, cfg.step_s)
        overlap = seizure_overlap_s(starts_s, cfg.window_s, intervals[i])
        seizure_wins += [(i, s) for s in starts_s[overlap >= 0.5 * cfg.window_s - 1e-9]]
        background_wins += [(i, s) for s in starts_s[overlap == 0]]
    if not seizure_wins:
        raise ValueError(f"--data chbmit: the training files {[names[i] for i in train]} hold "
                         f"no seizure window of {cfg.window_s} s; use a shorter window.")
    n_background = min(len(background_wins),
                       int(round(cfg.background_ratio * len(seizure_wins))))
    keep = np.sort(rng.choice(len(background_wins), size=n_background, replace=False))
    chosen = seizure_wins + [background_wins[k] for k in keep]
    labels = np.array([1] * len(seizure_wins) + [0] * n_background)
    X, y, sfreq = [], [], None
    for i in train:
        signal, sfreq = _chbmit_signal(raws[i], channels, cfg)
        n_window = int(round(cfg.window_s * sfreq))
        for (f, start_s), label in zip(chosen, labels):
            if f == i:
                start = int(round(start_s * sfreq))
                X.append(signal[:, start:start + n_window])
                y.append(label)
    X, y = np.stack(X), np.array(y)
    tr, va = split_train_val(y, cfg.val_fraction, stratify=True, random_state=cfg.seed)

    recordings = []
    for i in test:
        signal, sfreq_test = _chbmit_signal(raws[i], channels, cfg)
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
              "seizures_s": {n: iv.tolist() for n, iv in zip(names, intervals)},
              "test_hours": test_hours, "n_test_seizures": n_test_seizures,
              "training_windows": {"seizure": int(y.sum()), "background": int((y == 0).sum()),
                                   "val": len(va)}})


# ---------------------------------------------------------------------------------------------
# shared training / evaluation
def predict_proba(model, X, batch: int = 256) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch):
            logits = model(torch.as_tensor(X[start:start + batch], dtype=torch.float32))
            out.append(torch.softmax(logits, 1)[:, 1].numpy())
    return np.concatenate(out)


def binary_scores(pred: np.ndarray, true: np.ndarray) -> dict:
    pred, true = pred.astype(bool), true.astype(bool)
    sens = float((pred & true).sum() / max(true.sum(), 1))
    spec = float((~pred & ~true).sum() / max((~true).sum(), 1))
    return {"accuracy": float((pred == true).mean()), "sensitivity": sens,
            "specificity": spec, "balanced_accuracy": (sens + spec) / 2}


def segment_scores(proba, owner, segments, idx, threshold) -> dict:
    seg_p = np.array([proba[owner == i].mean() for i in idx])
    return binary_scores(seg_p >= threshold, segments.ictal[idx])


def pool_event_metrics(per_recording: list[dict], n_negative: Sequence[int],
                       n_positive: Sequence[int]) -> dict:
    """Event metrics of several recordings scored separately, pooled as one long recording.

    Sums seizures, detections, false alarms, alarms and non-seizure hours; latency is the mean
    over all detected seizures; window specificity and sensitivity are weighted by the
    recordings' non-seizure (``n_negative``) and seizure (``n_positive``) window counts.
    """
    if len(per_recording) == 1:
        return dict(per_recording[0])
    total = {key: sum(m[key] for m in per_recording)
             for key in ("n_seizures", "n_detected", "n_false_alarms", "n_alarms",
                         "interictal_hours")}
    latencies = [x for m in per_recording for x in m["latencies_s"]]

    def weighted(key: str, counts: Sequence[int]) -> float:
        if not sum(counts):
            return math.nan
        return sum(m[key] * n for m, n in zip(per_recording, counts) if n) / sum(counts)

    return {
        "sensitivity": (total["n_detected"] / total["n_seizures"] if total["n_seizures"]
                        else math.nan),
        "specificity": weighted("specificity", n_negative),
        "false_alarms_per_hour": total["n_false_alarms"] / total["interictal_hours"],
        "latency_s": float(np.mean(latencies)) if latencies else math.nan,
        "window_sensitivity": weighted("window_sensitivity", n_positive),
        **total, "latencies_s": latencies}


def operations(model, X, step_s: float) -> dict:
    import torch

    from bci.models.spiking.cost import count_operations

    counts = count_operations(model, torch.as_tensor(X, dtype=torch.float32), sfreq=1.0 / step_s)
    out = counts.as_dict()
    out["synaptic_operations"] = counts.synaptic_operations
    out["per_second"] = counts.per_second()
    return out


def train_models(cfg: Config, prep: Prepared) -> tuple[dict, dict, dict]:
    """Train the approximate spiking model, the plain-LIF one and the twin; add the two
    neuron-swapped copies. Returns ``(models, results, histories)``.
    """
    import torch

    from bci.data.datamodule import EEGDataModule
    from bci.models.spiking.conformer import SpikingConformer
    from bci.models.training import train_model

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
    """Window/segment scores, event metrics on the held-out recordings and operations, into
    ``results``. Returns, per recording, its decision times and each model's probabilities.
    """
    from bci.data.seizure import sliding_windows
    from bci.evaluation.seizure_metrics import seizure_metrics

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
            p = predict_proba(model, W)
            trace["probas"][name] = p
            metrics = seizure_metrics(
                p, w_times, rec.intervals, labels=w_labels, threshold=cfg.threshold,
                min_consecutive=cfg.min_consecutive, merge_gap_s=cfg.merge_gap_s,
                tolerance_s=cfg.window_s, duration_s=rec.duration_s).as_dict()
            per_model[name].append((metrics, p))
        traces.append(trace)
        labels_all.append(w_labels)
        n_negative.append(int((w_labels == 0).sum()))
        n_positive.append(int((w_labels == 1).sum()))
    for name, model in models.items():
        r = results[name]
        if prep.X_te is not None:
            p_te = predict_proba(model, prep.X_te)
            r["window"] = binary_scores(p_te >= cfg.threshold, prep.y_te)
            r["segment"] = prep.segment_scores(p_te)
        else:  # held-out recordings' sliding windows (no consecutive rule: raw decisions)
            p_all = np.concatenate([p for _, p in per_model[name]])
            r["window"] = binary_scores(p_all >= cfg.threshold, np.concatenate(labels_all))
        r["stream"] = pool_event_metrics([m for m, _ in per_model[name]], n_negative,
                                         n_positive)
        if len(prep.recordings) > 1:
            r["recordings"] = {rec.name: m for rec, (m, _) in zip(prep.recordings,
                                                                   per_model[name])}
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
    summary.update({
        "sensitivity": stream["spiking"]["sensitivity"],
        "specificity": stream["spiking"]["specificity"],
        "false_alarms_per_hour": stream["spiking"]["false_alarms_per_hour"],
        "latency_s": stream["spiking"]["latency_s"],
        f"{u}_accuracy": held["spiking"]["accuracy"],
        f"{u}_sensitivity": held["spiking"]["sensitivity"],
        f"{u}_specificity": held["spiking"]["specificity"],
    })
    if u == "window":
        summary["window_balanced_accuracy"] = held["spiking"]["balanced_accuracy"]
    summary.update({
        "twin_sensitivity": stream["twin"]["sensitivity"],
        "twin_specificity": stream["twin"]["specificity"],
        "twin_false_alarms_per_hour": stream["twin"]["false_alarms_per_hour"],
        "twin_latency_s": stream["twin"]["latency_s"],
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


def run(cfg: Config, data: str = "auto", path: Path | None = _BONN, out: Path | None = None,
        *, subject: int | None = None, files: Sequence[str] | None = None,
        download: bool = False) -> dict:
    """Train and evaluate the models; returns the summary (and writes files into ``out``).

    ``data``: ``"auto"``, ``"real"``, ``"synthetic"`` (Bonn path, ``path`` the Bonn folder) or
    ``"chbmit"`` (``path`` the CHB-MIT root or None for the MNE config, ``subject`` the case
    number, ``files`` an optional subset, ``download`` to fetch missing files).
    """
    import torch

    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    if data == "chbmit":
        if subject is None:
            raise ValueError("--data chbmit needs --subject N (the case number, 1..24).")
        prep = prepare_chbmit(cfg, path, subject, files, download)
    else:
        prep = prepare_bonn(cfg, data, _BONN if path is None else Path(path))
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
    """Each model's seizure probability over the held-out recordings, laid end to end (dotted
    lines separate recordings).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(traces[0]["probas"])
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 2.2 * len(names)), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), names):
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small model, 20 segments per set, 8 epochs (about a minute)")
    parser.add_argument("--data", choices=["auto", "real", "synthetic", "chbmit"],
                        default="auto",
                        help="real Bonn data, synthetic segments, real Bonn when present, or "
                             "one CHB-MIT case (--path, --subject)")
    parser.add_argument("--path", type=Path, default=None,
                        help=f"Bonn: folder of the sets (default {_BONN}); CHB-MIT: the folder "
                             "holding chbNN/ or MNE-chbmit-data/chbNN/ (default: the MNE config "
                             "MNE_DATASETS_CHBMIT_PATH, MNE_DATA, ~/mne_data)")
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
    if args.data == "chbmit":
        try:
            summary = run(cfg, "chbmit", args.path, args.out, subject=args.subject,
                          files=args.files, download=args.download)
        except FileNotFoundError as err:  # missing data: the message says how to fix it
            sys.exit(f"error: {err}")
    else:
        path = _BONN if args.path is None else args.path
        if args.data == "auto" and not path.is_dir():
            print(f"Bonn data not found at {path}: falling back to SYNTHETIC segments.")
        summary = run(cfg, args.data, path, args.out)
    print(f"wrote {args.out / 'metrics.json'}, {args.out / 'stream_probability.png'}, "
          f"{args.out / 'training.png'}")
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    main()
