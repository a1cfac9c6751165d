"""Seizure detection with the Spiking Conformer and its non-spiking twin (Gao et al. 2024).

Protocol:

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

Usage::

    nice python recipes/seizure_spiking_conformer.py --out results/seizure   # ~15-20 min
    python recipes/seizure_spiking_conformer.py --quick                    # about a minute

Outputs in ``--out``: ``metrics.json``, ``stream_probability.png``, ``training.png``. The last
printed line is one JSON object with the final metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

_BONN = Path(__file__).resolve().parents[2] / "shared" / "data" / "bonn_epilepsy"
SCALE = 100.0  # µV -> units of 100 µV


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

    @classmethod
    def quick_config(cls, **overrides) -> Config:
        cfg = cls(quick=True, window_s=2.0, step_s=1.0, segments_per_set=20, max_epochs=8,
                  patience=6, model=dict(n_filters_time=4, kernel_time=15, pool_size=16,
                                         d_model=16, n_heads=2, depth=1, mlp_ratio=2,
                                         kernel_token=5, drop_prob=0.1))
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return cfg


# ---------------------------------------------------------------------------------------------
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
    return {"accuracy": float((pred == true).mean()),
            "sensitivity": float((pred & true).sum() / max(true.sum(), 1)),
            "specificity": float((~pred & ~true).sum() / max((~true).sum(), 1))}


def segment_scores(proba, owner, segments, idx, threshold) -> dict:
    seg_p = np.array([proba[owner == i].mean() for i in idx])
    return binary_scores(seg_p >= threshold, segments.ictal[idx])


def operations(model, X, step_s: float) -> dict:
    import torch

    from bci.models.spiking.cost import count_operations

    counts = count_operations(model, torch.as_tensor(X, dtype=torch.float32), sfreq=1.0 / step_s)
    out = counts.as_dict()
    out["synaptic_operations"] = counts.synaptic_operations
    out["per_second"] = counts.per_second()
    return out


# ---------------------------------------------------------------------------------------------
def run(cfg: Config, data: str = "auto", path: Path = _BONN, out: Path | None = None) -> dict:
    """Train and evaluate both models; returns the summary (and writes files into ``out``)."""
    import torch

    from bci.data.seizure import make_seizure_stream, sliding_windows
    from bci.evaluation.seizure_metrics import seizure_metrics
    from bci.models.spiking.conformer import SpikingConformer
    from bci.models.training import EEGDataModule, train_model

    t0 = time.time()
    torch.set_num_threads(cfg.threads)
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
    W, w_labels, w_times = sliding_windows(stream.signal, sfreq, cfg.window_s, cfg.step_s,
                                           stream.intervals)
    W = W / SCALE
    print(f"stream: {stream.description}; {stream.duration_s / 60:.1f} min, "
          f"{len(stream.intervals)} seizures, {len(W)} windows")

    results, models, histories = {}, {}, {}
    trained = (("spiking", True, True), ("spiking_lif", True, False), ("twin", False, True))
    for name, spiking, approximate in trained:
        torch.manual_seed(cfg.seed)
        model = SpikingConformer(1, 2, n_window, sfreq=sfreq, spiking=spiking,
                                 approximate=approximate, **cfg.model)
        dm = EEGDataModule(X_tr, y_tr, X_val=X_va, y_val=y_va, batch_size=cfg.batch_size,
                           random_state=cfg.seed)
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

    rng = np.random.default_rng(cfg.seed)
    ops_X = X_te[rng.choice(len(X_te), size=min(64, len(X_te)), replace=False)]
    probas = {}
    for name, model in models.items():
        r = results[name]
        p_te = predict_proba(model, X_te)
        r["window"] = binary_scores(p_te >= cfg.threshold, y_te)
        r["segment"] = segment_scores(p_te, own_te, segments, test_idx, cfg.threshold)
        probas[name] = predict_proba(model, W)
        r["stream"] = seizure_metrics(
            probas[name], w_times, stream.intervals, labels=w_labels, threshold=cfg.threshold,
            min_consecutive=cfg.min_consecutive, merge_gap_s=cfg.merge_gap_s,
            tolerance_s=cfg.window_s, duration_s=stream.duration_s).as_dict()
        r["operations"] = operations(model, ops_X, cfg.step_s)

    def saving(approx_name: str, plain_name: str) -> float:
        return 1.0 - (results[approx_name]["operations"]["neuron_updates"]
                      / results[plain_name]["operations"]["neuron_updates"])

    saving_same = saving("spiking", "spiking@lif")
    saving_lif_weights = saving("spiking_lif@approx", "spiking_lif")
    approx_ops = results["spiking"]["operations"]
    synops_ratio = (results["twin"]["operations"]["synaptic_operations"]
                    / max(approx_ops["synaptic_operations"], 1e-12))
    # the first (temporal) convolution reads the raw signal: the same MACs in both models
    input_macs = approx_ops["effective_macs"]
    twin_synops = results["twin"]["operations"]["synaptic_operations"]
    synops_ratio_after_input = ((twin_synops - input_macs)
                                / max(approx_ops["synaptic_operations"] - input_macs, 1e-12))
    data_note = ("real Bonn segments; streams are concatenations of real segments"
                 if kind == "real" else "synthetic")

    print_table(results)
    acc = {name: r["segment"]["accuracy"] for name, r in results.items()}
    print(f"approximate neuron, approximate-trained weights: {100 * saving_same:.1f} % fewer "
          f"neuron updates than plain LIF on the same weights; segment accuracy "
          f"{acc['spiking']:.3f} (approximate) vs {acc['spiking@lif']:.3f} (plain LIF)")
    print(f"approximate neuron, LIF-trained weights: {100 * saving_lif_weights:.1f} % fewer "
          f"neuron updates; segment accuracy {acc['spiking_lif@approx']:.3f} (approximate) vs "
          f"{acc['spiking_lif']:.3f} (plain LIF)")
    print(f"twin / spiking synaptic operations: {synops_ratio:.1f}x "
          f"({synops_ratio_after_input:.1f}x after the input layer, whose MACs on the raw "
          "signal both models share)")

    summary = {
        "data": data_note,
        "sensitivity": results["spiking"]["stream"]["sensitivity"],
        "specificity": results["spiking"]["stream"]["specificity"],
        "false_alarms_per_hour": results["spiking"]["stream"]["false_alarms_per_hour"],
        "latency_s": results["spiking"]["stream"]["latency_s"],
        "segment_accuracy": results["spiking"]["segment"]["accuracy"],
        "segment_sensitivity": results["spiking"]["segment"]["sensitivity"],
        "segment_specificity": results["spiking"]["segment"]["specificity"],
        "twin_sensitivity": results["twin"]["stream"]["sensitivity"],
        "twin_specificity": results["twin"]["stream"]["specificity"],
        "twin_false_alarms_per_hour": results["twin"]["stream"]["false_alarms_per_hour"],
        "twin_latency_s": results["twin"]["stream"]["latency_s"],
        "twin_segment_accuracy": results["twin"]["segment"]["accuracy"],
        "synops_spiking": approx_ops["synaptic_operations"],
        "effective_acs_spiking": approx_ops["effective_acs"],
        "effective_macs_spiking": approx_ops["effective_macs"],
        "synops_twin": results["twin"]["operations"]["synaptic_operations"],
        "twin_to_spiking_synops": synops_ratio,
        "twin_to_spiking_synops_after_input_layer": synops_ratio_after_input,
        "neuron_updates_approx": approx_ops["neuron_updates"],
        "neuron_updates_plain_lif": results["spiking@lif"]["operations"]["neuron_updates"],
        "neuron_update_saving": saving_same,
        "same_weights_plain_lif_segment_accuracy": acc["spiking@lif"],
        "same_weights_plain_lif_sensitivity": results["spiking@lif"]["stream"]["sensitivity"],
        "lif_trained_segment_accuracy": acc["spiking_lif"],
        "lif_trained_sensitivity": results["spiking_lif"]["stream"]["sensitivity"],
        "lif_trained_specificity": results["spiking_lif"]["stream"]["specificity"],
        "lif_trained_false_alarms_per_hour":
            results["spiking_lif"]["stream"]["false_alarms_per_hour"],
        "lif_trained_with_approx_segment_accuracy": acc["spiking_lif@approx"],
        "lif_trained_with_approx_sensitivity":
            results["spiking_lif@approx"]["stream"]["sensitivity"],
        "neuron_update_saving_lif_trained_weights": saving_lif_weights,
        "quick": cfg.quick,
        "elapsed_s": time.time() - t0,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        full = {"summary": summary, "config": asdict(cfg), "results": results,
                "stream": {"description": stream.description,
                           "duration_s": stream.duration_s,
                           "intervals_s": stream.intervals.tolist(),
                           "segments": stream.segment_names},
                "split": {"train": [segments.names[i] for i in train_idx],
                          "val": [segments.names[i] for i in val_idx],
                          "test": [segments.names[i] for i in test_idx]},
                "histories": histories}
        (out / "metrics.json").write_text(json.dumps(full, indent=2, default=float))
        plot_stream(out / "stream_probability.png", w_times, probas, stream, cfg, data_note)
        plot_training(out / "training.png", histories)
    return summary


def print_table(results: dict) -> None:
    rows = [("segment acc", lambda r: r["segment"]["accuracy"], "{:.3f}"),
            ("segment sens", lambda r: r["segment"]["sensitivity"], "{:.3f}"),
            ("segment spec", lambda r: r["segment"]["specificity"], "{:.3f}"),
            ("window acc", lambda r: r["window"]["accuracy"], "{:.3f}"),
            ("event sensitivity", lambda r: r["stream"]["sensitivity"], "{:.3f}"),
            ("window specificity", lambda r: r["stream"]["specificity"], "{:.4f}"),
            ("false alarms / h", lambda r: r["stream"]["false_alarms_per_hour"], "{:.2f}"),
            ("latency (s)", lambda r: r["stream"]["latency_s"], "{:.2f}"),
            ("effective MACs/win", lambda r: r["operations"]["effective_macs"], "{:,.0f}"),
            ("effective ACs/win", lambda r: r["operations"]["effective_acs"], "{:,.0f}"),
            ("dense ops/win", lambda r: r["operations"]["dense_ops"], "{:,.0f}"),
            ("neuron updates/win", lambda r: r["operations"]["neuron_updates"], "{:,.0f}"),
            ("updates skipped/win", lambda r: r["operations"]["neuron_updates_skipped"],
             "{:,.0f}"),
            ("activation sparsity", lambda r: r["operations"]["activation_sparsity"], "{:.3f}"),
            ("parameters", lambda r: r["n_params"], "{:,}")]
    names = list(results)
    width = max(len(n) for n in names) + 2
    print(f"{'':22s}" + "".join(f"{n:>{width}s}" for n in names))
    for label, get, fmt in rows:
        print(f"{label:22s}" + "".join(f"{fmt.format(get(results[n])):>{width}s}"
                                       for n in names))


def plot_stream(file: Path, times, probas, stream, cfg, data_note) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(probas), 1, figsize=(12, 2.2 * len(probas)), sharex=True)
    for ax, (name, p) in zip(np.atleast_1d(axes), probas.items()):
        for onset, offset in stream.intervals:
            ax.axvspan(onset / 60, offset / 60, color="tab:red", alpha=0.25, lw=0)
        ax.plot(times / 60, p, lw=0.8, color="k")
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
    parser.add_argument("--data", choices=["auto", "real", "synthetic"], default="auto",
                        help="real Bonn data, synthetic segments, or real when present")
    parser.add_argument("--path", type=Path, default=_BONN, help="folder of the Bonn data")
    parser.add_argument("--out", type=Path, default=Path("results") / "seizure_conformer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=None, help="override max_epochs")
    parser.add_argument("--segments-per-set", type=int, default=None,
                        help="override the segments used per set (all 100 in the full run)")
    args = parser.parse_args(argv)
    cfg = Config.quick_config() if args.quick else Config()
    cfg.seed, cfg.threads = args.seed, args.threads
    if args.epochs is not None:
        cfg.max_epochs = args.epochs
    if args.segments_per_set is not None:
        cfg.segments_per_set = args.segments_per_set
    if args.data == "auto" and not args.path.is_dir():
        print(f"Bonn data not found at {args.path}: falling back to SYNTHETIC segments.")
    summary = run(cfg, args.data, args.path, args.out)
    print(f"wrote {args.out / 'metrics.json'}, {args.out / 'stream_probability.png'}, "
          f"{args.out / 'training.png'}")
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    main()
