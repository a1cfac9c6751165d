"""Filtered SNN decoders of hand velocity for intracortical BMI (Zhou, Sun & Basu 2024).

Decodes 2-D hand velocity from binned M1 spike counts with the decoders of
:mod:`bci.models.spiking.ibmi` (SNN_Streaming, SNN_3D, their non-spiking ANN twin, a small GRU,
and a ridge-regression linear decoder) and :class:`bci.models.spiking.delays.DelaySNN` (the
streaming SNN with learnable synaptic delays, DCLS-style, on its input layer; ``DelaySNN`` with
64 hidden neurons and delays up to 6 bins, ``DelaySNN-128`` with 128, and
``DelaySNN-128-pruned`` / ``-pruned-50``: that one with the 40 % / 50 % smallest input weights
pruned after training, then fine-tuned for half the epochs, so that it costs fewer
operations; ``DelaySNN-128-pruned-60`` and ``DelaySNN-192-pruned-67`` on request), then
low-pass filters every decoder's output with a Bessel filter in three ways
(:class:`bci.models.spiking.output_filter.BesselFilter`): causal, block-bidirectional with
short blocks (low latency) and with long blocks (high accuracy); the high-accuracy variant
also with its cutoff tuned per output (``high_accuracy_per_output``: x and y each get the
cutoff that is best for them on validation). The Pareto front of R^2 (high accuracy, per
output) against synaptic operations per bin is printed and plotted (``pareto.png``).

Protocol: K-fold cross-validation over trials (``--folds``, trials shuffled with ``--seed``).
In each fold 15 % of the training trials are held out for early stopping and for choosing the
filter cutoff (grid ``CUTOFFS_HZ``, per decoder and filter mode, by validation R^2). R^2 is
NeuroBench's (mean over x and y of ``1 - SSE / (n var)`` over all test bins of the fold);
the table shows mean ± sd over folds. Operations (effective ACs / MACs, NeuroBench's
definitions: the first layer's MACs on the counts, the accumulates of the hidden spikes into the
read-out, a GRU's input, recurrent and gate products) and memory are counted on each fold's test
trials, every trial on its own from rest and over its real bins only (no zero padding), then
averaged over the folds.

Every (fold, decoder) result is written to ``OUT/folds/<decoder>_fold<k>.json`` as soon as it is
known; ``--resume`` reuses those files (same seed, epochs, folds and data) instead of training
again, and ``--only-folds`` runs a subset of the folds (the splits stay those of the full run),
so that a long run cut short can be finished later and merged.

Data: ``center_out_data.mat`` (real; one macaque, 84 M1 units, 50 ms bins;
:func:`bci.data.reaching.load_center_out` finds it in ``MNE_DATASETS_REACHING_PATH``, else
``$MNE_DATA/reaching``, or ``--path``) when present, else simulated reaches
(:func:`bci.data.reaching.make_reaching`); the JSON says which.

Usage::

    nice python recipes/ibmi_filtered_snn.py --out results/ibmi          # 5 folds, ~1 h (2 cores)
    python recipes/ibmi_filtered_snn.py --quick                          # about a minute
    python recipes/ibmi_filtered_snn.py --decoders DelaySNN GRUDecoder   # a subset

The last printed line is one JSON object with the final metrics. The first fold's networks
(every decoder, the ``DelaySNN`` variants included) are saved as ``OUT/<decoder>.bci`` network
files (:func:`bci.models.decoder.load_network`); the spiking ones export to neuromorphic
hardware with ``bci export --format nir OUT/SNNStreaming.bci --out snn.nir`` (a ``DelaySNN``'s
delays as ``nir.Delay`` nodes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bci.data.reaching import load_center_out, make_reaching
from bci.evaluation.ibmi_metrics import r2_neurobench
from bci.models.decoder import save_network
from bci.models.spiking.cost import OperationCounts, count_operations
from bci.models.spiking.delays import DelaySNN
from bci.models.spiking.ibmi import (
    IBMI_MODELS,
    fit_ridge,
    fit_sequence_decoder,
    predict_sequences,
)
from bci.models.spiking.output_filter import BesselFilter

DECODERS = ["SNNStreaming", "SNN3D", "ANNDecoder", "GRUDecoder", "LinearDecoder", "DelaySNN",
            "DelaySNN-128", "DelaySNN-128-pruned", "DelaySNN-128-pruned-50"]
#: More pruned variants, by name only (not in the default run).
MORE_DECODERS = ["DelaySNN-128-pruned-60", "DelaySNN-192-pruned-67"]
#: Name -> (class, constructor keywords) of each decoder.
BUILDERS = {**{name: (cls, {}) for name, cls in IBMI_MODELS.items()},
            "DelaySNN": (DelaySNN, dict(n_hidden=64, max_delay=6)),
            "DelaySNN-128": (DelaySNN, dict(n_hidden=128, max_delay=6)),
            "DelaySNN-128-pruned": (DelaySNN, dict(n_hidden=128, max_delay=6)),
            "DelaySNN-128-pruned-50": (DelaySNN, dict(n_hidden=128, max_delay=6)),
            "DelaySNN-128-pruned-60": (DelaySNN, dict(n_hidden=128, max_delay=6)),
            "DelaySNN-192-pruned-67": (DelaySNN, dict(n_hidden=192, max_delay=6))}
#: Fraction of input synapses pruned after training (then fine-tuned for half the epochs).
PRUNE = {"DelaySNN-128-pruned": 0.4, "DelaySNN-128-pruned-50": 0.5,
         "DelaySNN-128-pruned-60": 0.6, "DelaySNN-192-pruned-67": 0.67}
#: Window (bins) each decoder reads; streaming decoders carry a state instead.
N_TIMES = {"SNNStreaming": 1, "SNN3D": 4, "ANNDecoder": 4, "GRUDecoder": 1, "LinearDecoder": 3,
           "DelaySNN": 1, "DelaySNN-128": 1, "DelaySNN-128-pruned": 1,
           "DelaySNN-128-pruned-50": 1, "DelaySNN-128-pruned-60": 1, "DelaySNN-192-pruned-67": 1}
LR = {"SNNStreaming": 1e-2, "GRUDecoder": 1e-2, "SNN3D": 3e-3, "ANNDecoder": 3e-3,
      "DelaySNN": 1e-2, "DelaySNN-128": 1e-2, "DelaySNN-128-pruned": 1e-2,
      "DelaySNN-128-pruned-50": 1e-2, "DelaySNN-128-pruned-60": 1e-2,
      "DelaySNN-192-pruned-67": 1e-2}
CUTOFFS_HZ = [0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0]
#: Filter variants: name -> (mode, block size in bins).
FILTERS = {"causal": ("causal", 1), "block_low_latency": ("block_bidirectional", 2),
           "block_high_accuracy": ("block_bidirectional", 8),
           "high_accuracy_per_output": ("block_bidirectional", 8)}
#: Variants whose cutoff is tuned for each output separately.
PER_OUTPUT = {"high_accuracy_per_output"}
BESSEL_ORDER = 2
RIDGE_ALPHA = 10.0


def load(data: str, path: Path | None, seed: int):
    """Load the real center-out session, or simulate reaches (``--data``)."""
    if data in ("auto", "real"):
        try:
            return load_center_out(path)
        except FileNotFoundError as err:
            if data == "real":
                sys.exit(f"--data real: {err}")
            print(f"{err}\nFalling back to SIMULATED reaches.")
    return make_reaching(200, 48, sfreq=20.0, random_state=seed)


def train(name: str, train_set, val_set, epochs: int, seed: int):
    """Build and fit one decoder (ridge regression, or Lightning with early stopping)."""
    torch.manual_seed(seed)
    cls, kwargs = BUILDERS[name]
    model = cls(train_set.n_chans, 2, N_TIMES[name], sfreq=train_set.sfreq, **kwargs)
    if name == "LinearDecoder":
        fit_ridge(model, train_set, alpha=RIDGE_ALPHA)
    else:
        fit_sequence_decoder(model, train_set, val=val_set, max_epochs=epochs, lr=LR[name],
                             patience=max(3, epochs // 4), random_state=seed)
    if name in PRUNE:  # prune the smallest input weights, then fine-tune the rest
        model.fc_in.prune(PRUNE[name])
        fit_sequence_decoder(model, train_set, val=val_set, max_epochs=max(1, epochs // 2),
                             lr=LR[name] / 3, patience=max(3, epochs // 8), random_state=seed)
    return model


def tune_filter(mode: str, block: int, sfreq: float, val_pred, val_true):
    """Return the filter whose cutoff has the best validation R^2, for one filter variant."""
    best = None
    for cutoff in CUTOFFS_HZ:
        filt = BesselFilter(cutoff, sfreq, order=BESSEL_ORDER, mode=mode, block_size=block)
        score = r2_neurobench(val_true, filt.filter_trials(val_pred))
        if best is None or score > best[0]:
            best = (score, filt)
    return best[1]


class PerOutputFilter:
    """One :class:`BesselFilter` per output row (each with its own cutoff)."""

    def __init__(self, filters: list[BesselFilter]) -> None:
        self.filters = filters
        self.cutoff_hz = float(np.mean([f.cutoff_hz for f in filters]))
        self.cutoffs_hz = [f.cutoff_hz for f in filters]

    def filter_trials(self, trials: list[np.ndarray]) -> list[np.ndarray]:
        """Filter row ``j`` of every trial with filter ``j``."""
        return [np.vstack([f.filter(t[j:j + 1]) for j, f in enumerate(self.filters)])
                for t in trials]

    def buffering_s(self) -> float:
        """Worst-case wait for a block (seconds), the longest of the filters'."""
        return max(f.buffering_s() for f in self.filters)

    def ramp_lag_s(self) -> float:
        """Mean residual lag behind a ramp (seconds), averaged over the outputs."""
        return float(np.mean([f.ramp_lag_s() for f in self.filters]))


def tune_filter_per_output(mode: str, block: int, sfreq: float, val_pred, val_true
                           ) -> PerOutputFilter:
    """Tune the cutoff of each output separately (validation R^2 of that output)."""
    filters = []
    for j in range(val_true[0].shape[0]):
        row = [t[j:j + 1] for t in val_true]
        filters.append(tune_filter(mode, block, sfreq, [p[j:j + 1] for p in val_pred], row))
    return PerOutputFilter(filters)


def combine_counts(counts: list[OperationCounts], weights: list[float] | None = None
                   ) -> OperationCounts:
    """Weighted mean of per-prediction counts (weights: predictions behind each, by default).

    Byte counts (parameters, state) are the largest of the parts (they are the same network's);
    ``n_predictions`` is the total.
    """
    w = np.asarray([c.n_predictions for c in counts] if weights is None else weights, float)
    w = w / w.sum()

    def mean(attr: str) -> float:
        return float(sum(wi * getattr(c, attr) for wi, c in zip(w, counts, strict=True)))

    layers = {name for c in counts for name in c.synaptic_operations_by_layer}
    return OperationCounts(
        effective_macs=mean("effective_macs"), effective_acs=mean("effective_acs"),
        dense_ops=mean("dense_ops"), neuron_updates=mean("neuron_updates"),
        activation_sparsity=mean("activation_sparsity"),
        param_bytes=max(c.param_bytes for c in counts),
        state_bytes=max(c.state_bytes for c in counts), sfreq=counts[0].sfreq,
        n_predictions=int(sum(c.n_predictions for c in counts)),
        neuron_updates_skipped=mean("neuron_updates_skipped"),
        synaptic_operations_by_layer={
            name: float(sum(wi * c.synaptic_operations_by_layer.get(name, 0.0)
                            for wi, c in zip(w, counts, strict=True))) for name in layers})


def count_on_trials(model, data) -> OperationCounts:
    """Operations per real bin: each trial run on its own from rest, its real bins only.

    (Counting on zero-padded trials would average over the padding too, where a spiking
    network's input layer does nothing but a GRU still runs its recurrent products.)
    """
    return combine_counts([count_operations(model, torch.as_tensor(s[None], dtype=torch.float32))
                           for s in data.spikes])


def fold_path(out: Path, name: str, fold: int) -> Path:
    """Where the result of one (decoder, fold) is written (``fold`` 1-based)."""
    return out / "folds" / f"{name}_fold{fold}.json"


def run_fold(name: str, k: int, data, fit_set, val_set, test_set, args) -> dict:
    """Train and evaluate one decoder on one fold (``k`` 0-based); returns its record."""
    t0 = time.time()
    model = train(name, fit_set, val_set, args.epochs, args.seed + k)
    pred, val_pred = predict_sequences(model, test_set), predict_sequences(model, val_set)
    rec = {"decoder": name, "fold": k + 1, "folds": args.folds, "seed": args.seed,
           "epochs": args.epochs, "data": data.kind, "n_test_trials": test_set.n_trials,
           "scores": {"raw": r2_neurobench(test_set.velocity, pred)},
           "val_scores": {"raw": r2_neurobench(val_set.velocity, val_pred)}, "cutoffs": {},
           "lag_s": {}, "buffering_s": {}}
    filtered = {}
    for variant, (mode, block) in FILTERS.items():
        tune = tune_filter_per_output if variant in PER_OUTPUT else tune_filter
        filt = tune(mode, block, data.sfreq, val_pred, val_set.velocity)
        filtered[variant] = filt.filter_trials(pred)
        rec["scores"][variant] = r2_neurobench(test_set.velocity, filtered[variant])
        rec["val_scores"][variant] = r2_neurobench(val_set.velocity,
                                                   filt.filter_trials(val_pred))
        rec["cutoffs"][variant] = getattr(filt, "cutoffs_hz", filt.cutoff_hz)
        rec["lag_s"][variant] = filt.ramp_lag_s()
        rec["buffering_s"][variant] = filt.buffering_s()
    rec["costs"] = count_on_trials(model, test_set).as_dict()
    if k == 0:  # the first fold's networks, readable by load_network and `bci export`
        save_network(model, args.out / f"{name}.bci",
                     info={"data": data.kind, "source": str(data.source), "fold": 1,
                           "r2_raw": float(rec["scores"]["raw"])})
        rec["examples"] = (test_set.velocity[:3], pred[:3],
                           filtered["block_high_accuracy"][:3])
    rec["seconds"] = round(time.time() - t0, 1)
    return rec


def load_fold(path: Path, args, data) -> dict | None:
    """Return the record an earlier run wrote with the same settings, else None."""
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    same = (rec.get("folds"), rec.get("seed"), rec.get("epochs"), rec.get("data")) == \
        (args.folds, args.seed, args.epochs, data.kind)
    return rec if same else None


def run(args) -> dict:
    """Cross-validate every decoder and filter variant; returns scores, costs and examples."""
    data = load(args.data, args.path, args.seed)
    print(f"data: {data.kind} ({data.source}), {data.n_trials} trials, {data.n_chans} units, "
          f"{1e3 / data.sfreq:.0f} ms bins, {data.n_bins} bins", flush=True)
    rng = np.random.default_rng(args.seed)
    folds = np.array_split(rng.permutation(data.n_trials), args.folds)
    variants = ["raw", *FILTERS]
    decoders = args.decoders
    scores = {d: {v: [] for v in variants} for d in decoders}
    cutoffs = {d: {v: [] for v in FILTERS} for d in decoders}
    done = {d: [] for d in decoders}
    val_scores = {d: [] for d in decoders}  # validation R^2 (PARETO_VARIANT), to choose by
    fold_costs = {d: [] for d in decoders}
    raw_costs = {d: [] for d in decoders}
    latency, examples = {}, {}
    (args.out / "folds").mkdir(parents=True, exist_ok=True)
    for k, test_idx in enumerate(folds):
        train_idx = np.setdiff1d(np.arange(data.n_trials), test_idx)
        train_idx = rng.permutation(train_idx)  # drawn for every fold: the splits stay fixed
        if k + 1 not in args.only_folds:
            continue
        n_val = max(1, int(round(0.15 * train_idx.size)))
        val_set, fit_set = data.subset(train_idx[:n_val]), data.subset(train_idx[n_val:])
        test_set = data.subset(test_idx)
        for name in decoders:
            path = fold_path(args.out, name, k + 1)
            rec = load_fold(path, args, data) if args.resume else None
            resumed = rec is not None
            if rec is None:
                rec = run_fold(name, k, data, fit_set, val_set, test_set, args)
                if "examples" in rec:
                    examples[name] = rec.pop("examples")
                path.write_text(json.dumps(rec, indent=1))
            done[name].append(k + 1)
            for variant in variants:
                scores[name][variant].append(rec["scores"][variant])
            for variant in FILTERS:
                cutoffs[name][variant].append(rec["cutoffs"][variant])
                latency.setdefault(variant, {"buffering_s": rec["buffering_s"][variant],
                                             "lag_s": []})
                latency[variant]["lag_s"].append(rec["lag_s"][variant])
            val_scores[name].append(rec.get("val_scores", {}).get(PARETO_VARIANT))
            fold_costs[name].append(OperationCounts(**rec["costs"]))
            raw_costs[name].append(rec["costs"])
            how = f"resumed from {path}" if resumed else f"{rec['seconds']:.0f} s"
            print(f"fold {k + 1}/{args.folds} {name:13s} R2 raw {rec['scores']['raw']:.3f}"
                  f" | high-acc {rec['scores']['block_high_accuracy']:.3f}"
                  f" | per output {rec['scores']['high_accuracy_per_output']:.3f}"
                  f" | {fold_costs[name][-1].synaptic_operations:,.0f} ops/bin ({how})",
                  flush=True)
    costs = {n: combine_counts(c, [1.0] * len(c)) for n, c in fold_costs.items() if c}
    return dict(data=data, scores=scores, cutoffs=cutoffs, costs=costs, latency=latency,
                examples=examples, done=done, fold_costs=raw_costs, val_scores=val_scores)


def report(res: dict, args) -> dict:
    """Print the tables; returns the JSON summary."""
    data, costs, done = res["data"], res["costs"], res["done"]
    scores = {n: per for n, per in res["scores"].items() if done[n]}
    variants = list(next(iter(scores.values())))
    print(f"\nR^2 (NeuroBench definition), mean ± sd over the folds run "
          f"({', '.join(f'{n}: {d}' for n, d in done.items())}), "
          f"{data.kind} data ({data.source}); Bessel order {BESSEL_ORDER}")
    header = f"{'decoder':14s}" + "".join(f"{v:>26s}" for v in variants) + f"{'gain':>8s}"
    print(header)
    print("-" * len(header))
    for name, per in scores.items():
        cells = "".join(f"{np.mean(per[v]):>19.3f} ± {np.std(per[v]):.3f}" for v in variants)
        gain = np.mean(per["block_high_accuracy"]) / np.mean(per["raw"]) - 1
        print(f"{name:14s}{cells}{100 * gain:>+7.1f}%")
    print("\nadded latency of the filters (tuned cutoffs, mean over folds and decoders): lag of "
          "the output behind a ramp, plus the wait for a block (mean / worst case)")
    for variant, lat in res["latency"].items():
        lag, buf = np.mean(lat["lag_s"]), lat["buffering_s"]
        print(f"  {variant:22s} lag {1e3 * lag:6.1f} ms + buffering {1e3 * buf / 2:5.1f} / "
              f"{1e3 * buf:5.1f} ms = {1e3 * (lag + buf / 2):6.1f} ms mean, "
              f"{1e3 * (lag + buf):6.1f} ms worst")
    pareto = pareto_front(scores, costs)
    print(f"\nPareto front, R^2 ({PARETO_VARIANT}) against synaptic operations per bin:")
    for name in pareto:
        print(f"  {name:14s} R^2 {np.mean(scores[name][PARETO_VARIANT]):.3f}  "
              f"{costs[name].synaptic_operations:,.0f} ops / bin")
    print("\ncost per prediction (one per real bin; NeuroBench definitions), mean over folds")
    print(f"{'decoder':14s}{'eff. ACs':>10s}{'eff. MACs':>11s}{'dense':>9s}{'neuron upd.':>12s}"
          f"{'act. sparsity':>14s}{'params B':>10s}{'state B':>9s}")
    for name, c in costs.items():
        print(f"{name:14s}{c.effective_acs:>10.0f}{c.effective_macs:>11.0f}{c.dense_ops:>9.0f}"
              f"{c.neuron_updates:>12.0f}{c.activation_sparsity:>14.3f}{c.param_bytes:>10d}"
              f"{c.state_bytes:>9d}")
    return {
        "data": data.kind, "source": data.source, "folds": args.folds, "quick": args.quick,
        "seed": args.seed, "epochs": args.epochs, "folds_done": done,
        "r2_by_fold": {n: {v: [round(float(x), 4) for x in per[v]] for v in variants}
                       for n, per in scores.items()},
        "synaptic_operations_by_fold": {n: [round(OperationCounts(**r).synaptic_operations, 1)
                                            for r in res["fold_costs"][n]]
                                        for n in costs},
        "r2": {n: {v: round(float(np.mean(per[v])), 4) for v in variants}
               for n, per in scores.items()},
        # validation R^2 (early stopping and cutoffs were chosen on it: optimistic, alike for
        # every decoder); None where a resumed fold was written before it was recorded
        "val_r2": {n: None if None in v else round(float(np.mean(v)), 4)
                   for n, v in res["val_scores"].items() if done[n]},
        "r2_sd": {n: {v: round(float(np.std(per[v])), 4) for v in variants}
                  for n, per in scores.items()},
        "cutoff_hz": {n: {v: np.median(np.asarray(c, dtype=float), axis=0).tolist()
                          for v, c in per.items()}
                      for n, per in res["cutoffs"].items() if done[n]},
        "synaptic_operations": {n: round(c.synaptic_operations, 1) for n, c in costs.items()},
        "pareto": pareto,
        "effective_acs": {n: round(c.effective_acs, 1) for n, c in costs.items()},
        "effective_macs": {n: round(c.effective_macs, 1) for n, c in costs.items()},
        "dense_ops": {n: round(c.dense_ops, 1) for n, c in costs.items()},
        "ops_per_second": {n: {k: round(v, 1) for k, v in c.per_second().items()}
                           for n, c in costs.items()},
        "neuron_updates": {n: round(c.neuron_updates, 1) for n, c in costs.items()},
        "activation_sparsity": {n: None if np.isnan(c.activation_sparsity)
                                else round(c.activation_sparsity, 4) for n, c in costs.items()},
        "memory_bytes": {n: {"params": c.param_bytes, "state": c.state_bytes}
                         for n, c in costs.items()},
        "filter_latency_s": {v: {"lag": round(float(np.mean(lat["lag_s"])), 4),
                                 "buffering_max": lat["buffering_s"],
                                 "mean": round(float(np.mean(lat["lag_s"]))
                                               + lat["buffering_s"] / 2, 4)}
                             for v, lat in res["latency"].items()},
    }


#: The filter variant the Pareto front and its plot use.
PARETO_VARIANT = "high_accuracy_per_output"


def pareto_front(scores: dict, costs: dict) -> list[str]:
    """Return the decoders no other beats on both R^2 and operations, cheapest first."""
    points = {n: (costs[n].synaptic_operations, float(np.mean(scores[n][PARETO_VARIANT])))
              for n in scores if n in costs}
    front = [n for n, (ops, r2) in points.items()
             if not any(o <= ops and r >= r2 and (o, r) != (ops, r2)
                        for m, (o, r) in points.items() if m != n)]
    return sorted(front, key=lambda n: points[n][0])


def plot_pareto(res: dict, out: Path) -> Path:
    """R^2 (high accuracy, per output; raw as open markers) against operations per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, costs = res["scores"], res["costs"]
    front = pareto_front(scores, costs)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in costs:
        ops = costs[name].synaptic_operations
        r2 = np.mean(scores[name][PARETO_VARIANT])
        ax.scatter(ops, r2, s=40, zorder=3,
                   color="tab:red" if name in front else "tab:blue")
        ax.scatter(ops, np.mean(scores[name]["raw"]), s=25, facecolors="none",
                   edgecolors="grey", zorder=2)
        ax.annotate(name, (ops, r2), textcoords="offset points", xytext=(4, 4), fontsize=8)
    xs = [costs[n].synaptic_operations for n in front]
    ax.plot(xs, [np.mean(scores[n][PARETO_VARIANT]) for n in front], "r--", lw=1,
            label="Pareto front (filtered)")
    if "GRUDecoder" in costs:
        ax.axvline(costs["GRUDecoder"].synaptic_operations / 3, color="k", ls=":", lw=1,
                   label="1/3 of the GRU's operations")
        ax.axhline(np.mean(scores["GRUDecoder"][PARETO_VARIANT]), color="grey", ls=":",
                   lw=1, label="GRU R^2 (filtered)")
    ax.set_xscale("log")
    ax.set_xlabel("effective synaptic operations per bin (ACs + MACs, NeuroBench)")
    ax.set_ylabel("R^2 (block Bessel, cutoff per output)")
    folds = sorted({len(d) for d in res["done"].values() if d})
    ax.set_title(f"R^2 vs operations, {res['data'].kind} data, mean over "
                 f"{'/'.join(map(str, folds))} folds (open: unfiltered)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "pareto.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(res: dict, out: Path) -> list[Path]:
    """Plot three test trials of each decoder (true, decoded, filtered)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = res["data"]
    paths = []
    for name, (true, pred, filt) in res["examples"].items():
        fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
        offset = 0
        for t, p, f in zip(true, pred, filt, strict=True):
            time_s = (offset + np.arange(t.shape[1])) / data.sfreq
            for ax, comp in zip(axes, range(2), strict=True):
                ax.plot(time_s, t[comp], "k", lw=1.5, label="true" if offset == 0 else None)
                ax.plot(time_s, p[comp], color="tab:orange", lw=1,
                        label="decoded" if offset == 0 else None)
                ax.plot(time_s, f[comp], color="tab:blue", lw=1.2,
                        label="decoded + Bessel (high-accuracy)" if offset == 0 else None)
            offset += t.shape[1] + 5
        for ax, comp in zip(axes, "xy", strict=True):
            ax.set_ylabel(f"v_{comp} ({data.velocity_unit.split(' ')[0]})")
        axes[0].legend(loc="upper right", fontsize=8)
        axes[0].set_title(f"{name}: three test trials (fold 1), {data.kind} data")
        axes[1].set_xlabel("time (s, trials concatenated)")
        fig.tight_layout()
        path = out / f"velocity_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> dict:
    """Run the recipe from the command line (``argv``); returns the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 folds, 5 epochs: a smoke run of about a minute")
    parser.add_argument("--data", choices=["auto", "real", "simulated"], default="auto")
    parser.add_argument("--path", type=Path, default=None,
                        help="center_out_data.mat or its folder (default: "
                             "MNE_DATASETS_REACHING_PATH, else $MNE_DATA/reaching)")
    parser.add_argument("--folds", type=int, default=None, help="default 5 (2 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="default 40 (5 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decoders", nargs="+", choices=DECODERS + MORE_DECODERS,
                        default=DECODERS,
                        help="decoders to run (default: all but the more pruned variants)")
    parser.add_argument("--only-folds", type=int, nargs="+", default=None, metavar="K",
                        help="run only these folds (1-based; the splits stay those of the "
                             "full run)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse OUT/folds/<decoder>_fold<k>.json written by an earlier run "
                             "with the same seed, epochs, folds and data")
    parser.add_argument("--out", type=Path, default=Path("results/ibmi_filtered_snn"))
    args = parser.parse_args(argv)
    args.folds = args.folds or (2 if args.quick else 5)
    if args.folds < 2:
        parser.error(f"--folds must be >= 2 (train and test trials), got {args.folds}.")
    args.only_folds = sorted(set(args.only_folds or range(1, args.folds + 1)))
    if not all(1 <= k <= args.folds for k in args.only_folds):
        parser.error(f"--only-folds must lie in 1..{args.folds} (--folds), got "
                     f"{args.only_folds}.")
    args.epochs = args.epochs or (5 if args.quick else 40)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    res = run(args)
    summary = report(res, args)
    paths = [*plot(res, args.out), plot_pareto(res, args.out)]
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {len(paths)} figures, metrics.json, folds/*.json and the first fold's "
          f"networks (*.bci) to "
          f"{args.out} ({time.time() - t0:.0f} s)")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
