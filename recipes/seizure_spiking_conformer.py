r"""Seizure detection with the Spiking Conformer and its non-spiking twin (Gao et al. 2024).

Data, two modes (:mod:`bci.data.seizure_windows`):

- **Bonn** (``--data auto|real|synthetic``): sets Z, O, N, F, S (seizures) x 100 one-channel
  segments of 23.6 s at 173.61 Hz, found through ``MNE_DATASETS_BONN_PATH`` (else
  ``$MNE_DATA/bonn_epilepsy``, or ``--path``), else seeded synthetic segments (the output says
  which). ``prepare_bonn_windows`` splits **by segment**, stratified by set (60 % train, 10 %
  validation for early stopping, 30 % test), cuts windows (50 % overlap, units of 100 µV) and
  joins the test segments into one stream: **synthetic concatenations of real segments**, not
  continuous recordings. A segment's prediction is the mean probability of its windows.
- **CHB-MIT** (``--data chbmit --subject N [--path ROOT] [--files ...] [--download]``):
  ``prepare_chbmit_windows`` keeps the EEG channels common to a case's files, band-passes
  (0.5-40 Hz), resamples (128 Hz) and splits **by file**: the last 30 % of the seizure and of
  the seizure-free files are held out whole, as **real continuous recordings**; training
  windows (seizure windows, background subsampled to 4 per seizure window, 15 % validating)
  come from the training files only. Held-out accuracy: per window (balanced accuracy too).

Then:

1. Train :class:`~bci.models.spiking.conformer.SpikingConformer` (approximate neurons) and its
   twin (``spiking=False``: ReLU, softmax attention, same parameters) with
   :func:`~bci.models.training.train_model`, same seed and budget. The spiking models read the
   signal as delta spikes (``input_encoding="delta"``: a trainable threshold per channel, a
   signed event where the signal changes by more than it between samples) and are trained with
   a spike-rate penalty (``spike_penalty``), so that every layer accumulates; the twin reads
   the raw signal (``--input-encoding dense`` gives the spiking models the raw signal too, the
   configuration before spike encoding).
2. Held-out accuracy, sensitivity, specificity; sliding windows (``step_s``) over each held-out
   stream (``predict_stream``) and event metrics pooled over streams (``score_traces``;
   :mod:`bci.evaluation.seizure_metrics`: any-overlap, 2 consecutive positive windows, 10 s
   refractory merge, tolerance one window).
3. Operations per window, NeuroBench definitions (:func:`~bci.models.spiking.cost.count_operations`:
   effective ACs / MACs, dense operations, neuron updates, sparsity, memory; per second).
4. Approximate neuron: a third model trained with plain LIF neurons; each spiking model's
   weights also run with the other neuron (``with_neurons``: ``spiking@lif``,
   ``spiking_lif@approx``): updates saved on the same weights, change of accuracy and events.

Usage::

    nice python recipes/seizure_spiking_conformer.py --out results/seizure   # ~15-20 min
    python recipes/seizure_spiking_conformer.py --quick                    # about a minute
    nice python recipes/seizure_spiking_conformer.py --data chbmit --path ~/mne_data \
        --subject 1 --out results/seizure_chb01          # one case, real continuous recordings

Writes ``metrics.json``, ``stream_probability.png``, ``training.png`` and ``operations.png``
(effective synaptic operations per window, layer by layer) into ``--out``; the
last printed line is one JSON object with the final metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bci.data.datamodule import EEGDataModule
from bci.data.seizure import load_bonn, make_seizure_eeg, subsample_segments
from bci.data.seizure_windows import (
    CHBMIT_NOTE,
    SeizureWindows,
    prepare_bonn_windows,
    prepare_chbmit_windows,
)
from bci.evaluation.seizure_metrics import (
    StreamTrace,
    binary_scores,
    plot_traces,
    predict_stream,
    score_traces,
    segment_scores,
)
from bci.models.inference import predict_proba
from bci.models.spiking.conformer import SpikingConformer
from bci.models.spiking.cost import count_operations
from bci.models.training import plot_training_curves, train_model


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
    #: input coding and spike-rate penalty of the spiking models (the twin reads the signal)
    spiking_input: dict = field(default_factory=lambda: dict(
        input_encoding="delta", encoder_levels=1, encoder_threshold=0.5, spike_penalty=1.0))
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


def load_windows(cfg: Config, data: str, path: Path | None, subject: int | None,
                 files: Sequence[str] | None, download: bool) -> SeizureWindows:
    """Bonn segments (real, else synthetic) split by segment, or a CHB-MIT case by file."""
    if data == "chbmit":
        try:
            return prepare_chbmit_windows(
                subject, path, files=files, download=download, window_s=cfg.window_s,
                step_s=cfg.step_s, test_fraction=cfg.test_fraction,
                val_fraction=cfg.val_fraction, background_ratio=cfg.background_ratio,
                band_hz=cfg.band_hz, sfreq=cfg.chbmit_sfreq, random_state=cfg.seed)
        except FileNotFoundError as err:
            case = f"chb{subject:02d}"
            raise FileNotFoundError(
                f"--data chbmit: {err} With this recipe: pass --path ROOT (the folder holding "
                f"{case}/ or MNE-chbmit-data/{case}/), --files to use only the files present, "
                "or --download to fetch missing files from PhysioNet.") from err
    segments = None
    if data != "synthetic":
        try:
            segments = load_bonn(path)
        except FileNotFoundError as err:
            if data == "real":
                raise
            print(f"{err}\nFalling back to SYNTHETIC segments.")
    if segments is None:
        segments = make_seizure_eeg(5 * (cfg.segments_per_set or 20), n_times=4097,
                                    ictal_ratio=0.2, random_state=cfg.seed)
    elif cfg.segments_per_set is not None:
        segments = subsample_segments(segments, cfg.segments_per_set, random_state=cfg.seed)
    return prepare_bonn_windows(segments, cfg.window_s, random_state=cfg.seed)


def train(cfg: Config, data: SeizureWindows) -> tuple[dict, dict, dict]:
    """Train the approximate spiking, plain-LIF spiking and twin models; add neuron swaps."""
    models, results, histories = {}, {}, {}
    for name, spiking, approximate in (("spiking", True, True), ("spiking_lif", True, False),
                                       ("twin", False, True)):
        torch.manual_seed(cfg.seed)
        model = SpikingConformer(data.n_chans, 2, data.n_window, sfreq=data.sfreq,
                                 spiking=spiking, approximate=approximate, **cfg.model,
                                 **(cfg.spiking_input if spiking else {}))
        dm = EEGDataModule(data.X_train, data.y_train, X_val=data.X_val, y_val=data.y_val,
                           batch_size=cfg.batch_size, random_state=cfg.seed)
        t = time.time()
        res = train_model(model, dm, max_epochs=cfg.max_epochs, patience=cfg.patience,
                          lr=cfg.lr, seed=cfg.seed, n_threads=cfg.threads)
        models[name], histories[name] = res.model, res.history
        results[name] = {"train_s": time.time() - t, "epochs": res.n_epochs,
                         "best_epoch": res.best_epoch,
                         "n_params": sum(p.numel() for p in res.model.parameters())}
        if res.model.encoder is not None:  # the learnt delta thresholds (input units / sample)
            results[name]["encoder_thresholds"] = (
                res.model.encoder.thresholds.detach().abs().tolist())
        print(f"trained {name}: {res.n_epochs} epochs in {results[name]['train_s']:.0f} s")
    # the same trained weights with the other neuron
    for source, target, approximate in (("spiking", "spiking@lif", False),
                                        ("spiking_lif", "spiking_lif@approx", True)):
        models[target] = models[source].with_neurons(approximate=approximate)
        results[target] = {"n_params": results[source]["n_params"], "weights_of": source}
    return models, results, histories


def evaluate(cfg: Config, data: SeizureWindows, models: dict, results: dict
             ) -> list[StreamTrace]:
    """Held-out windows/segments, events on the held-out streams, operations (into results)."""
    traces = []
    for rec in data.recordings:
        traces.append(predict_stream(models, rec, window_s=cfg.window_s, step_s=cfg.step_s))
        print(f"{'recording' if data.source == 'chbmit' else 'stream'}: {rec.description}; "
              f"{rec.duration_s / 60:.1f} min, {len(rec.intervals)} seizures, "
              f"{len(traces[-1].times)} windows")
    for name, model in models.items():
        r = results[name]
        scores = score_traces(traces, name, threshold=cfg.threshold,
                              min_consecutive=cfg.min_consecutive,
                              merge_gap_s=cfg.merge_gap_s, tolerance_s=cfg.window_s)
        if data.X_test is not None:  # Bonn: held-out windows, and segments
            p_test = predict_proba(model, data.X_test)[:, 1]
            r["window"] = binary_scores(p_test >= cfg.threshold, data.y_test)
            r["segment"] = segment_scores(p_test, data.test_owner, data.segment_ictal,
                                          threshold=cfg.threshold)
        else:  # the held-out recordings' sliding windows (raw decisions)
            r["window"] = scores.window
        r["stream"] = scores.pooled.as_dict()
        if len(data.recordings) > 1:
            r["recordings"] = {rec.name: m.as_dict() for rec, m
                               in zip(data.recordings, scores.recordings, strict=True)}
        r["operations"] = count_operations(
            model, torch.as_tensor(data.X_sample, dtype=torch.float32),
            sfreq=1.0 / cfg.step_s).as_dict(derived=True)
    return traces


def summarise(cfg: Config, data: SeizureWindows, results: dict, elapsed_s: float) -> dict:
    """Print the comparison and return the one-line summary (JSON-serialisable)."""
    u = data.unit  # "segment" (Bonn) or "window" (CHB-MIT)
    ops = {name: r["operations"] for name, r in results.items()}
    saving_same = 1.0 - ops["spiking"]["neuron_updates"] / ops["spiking@lif"]["neuron_updates"]
    saving_lif_weights = 1.0 - (ops["spiking_lif@approx"]["neuron_updates"]
                                / ops["spiking_lif"]["neuron_updates"])
    approx_ops, twin_synops = ops["spiking"], ops["twin"]["synaptic_operations"]
    synops_ratio = twin_synops / max(approx_ops["synaptic_operations"], 1e-12)
    # the first (temporal) convolution: MACs on the raw signal, or ACs of the input events
    first_spiking = approx_ops["synaptic_operations_by_layer"]["conv_time"]
    first_twin = ops["twin"]["synaptic_operations_by_layer"]["conv_time"]
    synops_ratio_after_input = ((twin_synops - first_twin)
                                / max(approx_ops["synaptic_operations"] - first_spiking, 1e-12))
    print_table(results, u)
    acc = {name: r[u]["accuracy"] for name, r in results.items()}
    print(f"approximate neuron, approximate-trained weights: {100 * saving_same:.1f} % fewer "
          f"neuron updates than plain LIF on the same weights; {u} accuracy "
          f"{acc['spiking']:.3f} (approximate) vs {acc['spiking@lif']:.3f} (plain LIF)")
    print(f"approximate neuron, LIF-trained weights: {100 * saving_lif_weights:.1f} % fewer "
          f"neuron updates; {u} accuracy {acc['spiking_lif@approx']:.3f} (approximate) vs "
          f"{acc['spiking_lif']:.3f} (plain LIF)")
    print(f"twin / spiking synaptic operations: {synops_ratio:.1f}x "
          f"({synops_ratio_after_input:.1f}x after the first layer; first layer "
          f"{first_spiking:,.0f} ({cfg.spiking_input.get('input_encoding', 'dense')} input) vs "
          f"{first_twin:,.0f} (twin, raw signal))")
    summary = {"data": data.description}
    if data.source == "chbmit":
        print(f"event metrics on {CHBMIT_NOTE}: {len(data.recordings)} held-out file(s), "
              f"{data.info['test_hours']:.2f} h, {data.info['n_test_seizures']} seizures")
        summary.update({"subject": data.info["subject"], "channels": data.info["channels"],
                        "sfreq": data.sfreq, "train_files": data.info["split"]["train"],
                        "test_files": data.info["split"]["test"],
                        **{k: data.info[k] for k in ("test_hours", "n_test_seizures")}})
    stream = {name: r["stream"] for name, r in results.items()}
    events = ("sensitivity", "specificity", "false_alarms_per_hour", "latency_s")
    summary.update({key: stream["spiking"][key] for key in events})
    summary.update({f"{u}_{key}": results["spiking"][u][key]
                    for key in ("accuracy", "sensitivity", "specificity")})
    if u == "window":
        summary["window_balanced_accuracy"] = results["spiking"][u]["balanced_accuracy"]
    summary.update({f"twin_{key}": stream["twin"][key] for key in events})
    summary.update({
        f"twin_{u}_accuracy": acc["twin"],
        "synops_spiking": approx_ops["synaptic_operations"],
        "effective_acs_spiking": approx_ops["effective_acs"],
        "effective_macs_spiking": approx_ops["effective_macs"],
        "synops_twin": twin_synops,
        "twin_to_spiking_synops": synops_ratio,
        "twin_to_spiking_synops_after_input_layer": synops_ratio_after_input,
        "first_layer_synops_spiking": first_spiking,
        "first_layer_synops_twin": first_twin,
        "input_encoding": cfg.spiking_input.get("input_encoding", "dense"),
        "encoder_thresholds": results["spiking"].get("encoder_thresholds"),
        "neuron_updates_approx": approx_ops["neuron_updates"],
        "neuron_updates_plain_lif": ops["spiking@lif"]["neuron_updates"],
        "neuron_update_saving": saving_same,
        f"same_weights_plain_lif_{u}_accuracy": acc["spiking@lif"],
        "same_weights_plain_lif_sensitivity": stream["spiking@lif"]["sensitivity"],
        f"lif_trained_{u}_accuracy": acc["spiking_lif"],
        **{f"lif_trained_{key}": stream["spiking_lif"][key] for key in events[:3]},
        f"lif_trained_with_approx_{u}_accuracy": acc["spiking_lif@approx"],
        "lif_trained_with_approx_sensitivity": stream["spiking_lif@approx"]["sensitivity"],
        "neuron_update_saving_lif_trained_weights": saving_lif_weights,
        "quick": cfg.quick,
        "elapsed_s": elapsed_s,
    })
    return summary


TABLE = [  # label, result entry, key, format; segment rows for Bonn, balanced acc for CHB-MIT
    ("segment acc", "segment", "accuracy", "{:.3f}"),
    ("segment sens", "segment", "sensitivity", "{:.3f}"),
    ("segment spec", "segment", "specificity", "{:.3f}"),
    ("window acc", "window", "accuracy", "{:.3f}"),
    ("window balanced acc", "window", "balanced_accuracy", "{:.3f}"),
    ("event sensitivity", "stream", "sensitivity", "{:.3f}"),
    ("window specificity", "stream", "specificity", "{:.4f}"),
    ("false alarms / h", "stream", "false_alarms_per_hour", "{:.2f}"),
    ("latency (s)", "stream", "latency_s", "{:.2f}"),
    ("effective MACs/win", "operations", "effective_macs", "{:,.0f}"),
    ("effective ACs/win", "operations", "effective_acs", "{:,.0f}"),
    ("dense ops/win", "operations", "dense_ops", "{:,.0f}"),
    ("neuron updates/win", "operations", "neuron_updates", "{:,.0f}"),
    ("updates skipped/win", "operations", "neuron_updates_skipped", "{:,.0f}"),
    ("activation sparsity", "operations", "activation_sparsity", "{:.3f}"),
    ("parameters", None, "n_params", "{:,}")]


def print_table(results: dict, unit: str = "segment") -> None:
    """Print one column per model, one row per metric."""
    skip = "window balanced acc" if unit == "segment" else "segment"
    names = list(results)
    width = max(len(n) for n in names) + 2
    print(f"{'':22s}" + "".join(f"{n:>{width}s}" for n in names))
    for label, entry, key, fmt in TABLE:
        if not label.startswith(skip):
            print(f"{label:22s}" + "".join(
                f"{fmt.format((results[n][entry] if entry else results[n])[key]):>{width}s}"
                for n in names))


def plot_operations(results: dict):
    """Stacked bars: effective synaptic operations per window of each model, layer by layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ("twin", "spiking", "spiking_lif") if n in results]
    groups = {"first layer (temporal conv)": ("conv_time",), "spatial conv": ("conv_space",),
              "attention": ("attention",), "token conv": ("token_conv",), "MLP": ("mlp",),
              "read-out": ("final_layer",)}
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = [0.0] * len(names)
    for label, keys in groups.items():
        heights = [sum(v for k, v in results[n]["operations"]
                       ["synaptic_operations_by_layer"].items() if any(x in k for x in keys))
                   for n in names]
        ax.bar(names, heights, bottom=bottom, label=label)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for i, total in enumerate(bottom):
        ax.text(i, total, f"{total:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("effective synaptic operations per window")
    ax.set_title("Spiking conformer vs its twin (NeuroBench counts; spikes: ACs, else MACs)",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def run(cfg: Config, data: str = "auto", path: Path | None = None, out: Path | None = None,
        *, subject: int | None = None, files: Sequence[str] | None = None,
        download: bool = False) -> dict:
    """Train and evaluate the models; return the summary (files into ``out``, if given)."""
    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    windows = load_windows(cfg, data, path, subject, files, download)
    print(f"data: {windows.details}")
    models, results, histories = train(cfg, windows)
    traces = evaluate(cfg, windows, models, results)
    summary = summarise(cfg, windows, results, time.time() - t0)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        full = {"summary": summary, "config": asdict(cfg), "results": results,
                **windows.info, "histories": histories}
        (out / "metrics.json").write_text(json.dumps(full, indent=2, default=float))
        plot_traces(traces, threshold=cfg.threshold, min_consecutive=cfg.min_consecutive,
                    merge_gap_s=cfg.merge_gap_s,
                    title=f"Seizure probability per {cfg.window_s:g} s window (shaded: true "
                          f"seizures; orange: alarms); {windows.description}"
                    ).savefig(out / "stream_probability.png", dpi=110)
        plot_training_curves(histories, ylabel="cross-entropy").savefig(out / "training.png",
                                                                         dpi=110)
        plot_operations(results).savefig(out / "operations.png", dpi=110)
    return summary


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
                             "$MNE_DATA/bonn_epilepsy); CHB-MIT: folder holding chbNN/ or "
                             "MNE-chbmit-data/chbNN/ (default: MNE config)")
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
    parser.add_argument("--input-encoding", choices=["delta", "dense"], default="delta",
                        help="input of the spiking models: delta spikes (default) or the raw "
                             "signal (the configuration before spike encoding; no penalty)")
    parser.add_argument("--spike-penalty", type=float, default=None,
                        help="override the spike-rate penalty of the spiking models")
    parser.add_argument("--encoder-threshold", type=float, default=None,
                        help="override the initial delta threshold (input units per sample)")
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
    if args.input_encoding == "dense":
        cfg.spiking_input = {}
    if args.spike_penalty is not None:
        cfg.spiking_input["spike_penalty"] = args.spike_penalty
    if args.encoder_threshold is not None:
        if args.input_encoding == "dense":
            parser.error("--encoder-threshold applies to --input-encoding delta only.")
        cfg.spiking_input["encoder_threshold"] = args.encoder_threshold
    try:
        summary = run(cfg, args.data, args.path, args.out, subject=args.subject,
                      files=args.files, download=args.download)
    except FileNotFoundError as err:  # missing data: the message says how to fix it
        sys.exit(f"error: {err}")
    print(f"wrote {args.out / 'metrics.json'}, {args.out / 'stream_probability.png'}, "
          f"{args.out / 'training.png'}, {args.out / 'operations.png'}")
    print(json.dumps(summary, default=float))
    return summary


if __name__ == "__main__":
    main()
