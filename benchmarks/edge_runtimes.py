"""Edge runtimes of a network decoder: torch eager vs ONNX Runtime float32 vs ONNX Runtime int8.

For each dataset, a network (``--model``, default EEGNeX, with the registered training settings
``bci.pipelines.registry.DEEP_SETTINGS``) is trained on the training folds of a within-session
cross-validation (stratified ``--folds``, shuffled, seed 42, per subject and session, as MOABB's
WithinSessionEvaluation), exported with :func:`bci.hw.onnx_export.export_onnx` in float32 and in
static int8 (QDQ, calibrated on that fold's training windows), and the three runtimes predict
the held-out windows:

- **accuracy** of each runtime over all held-out windows (and the largest difference of
  probabilities between torch and ONNX Runtime float32);
- **latency** per window at batch 1 on 1 and 2 threads (``torch.set_num_threads``; ONNX
  Runtime ``intra_op_num_threads``), p50 and p99 over ``--n-latency`` calls, of what
  :meth:`bci.models.decoder.Decoder.predict_proba` calls after the band-pass: the classifier's
  ``predict_proba`` (input checks, scaling, network, softmax). ``torch forward`` is the bare
  ``softmax(model(x))`` under ``torch.no_grad()`` on a scaled window, the floor of torch eager;
- **peak memory**: the peak resident set size (``VmHWM``) of a fresh Python process that
  loads the decoder file and predicts ``--n-latency`` windows one at a time (torch: the decoder
  file; ONNX: the exported files, which never import torch);
- **file size** of the decoder file and of the exported files.

Latency, memory and size are measured on the first fold's model of each dataset. Data:
Kalunga2016 (SSVEP, 4 classes, 8 channels at 256 Hz, 2-s windows), PhysionetMI subject 1
(LeftRightImagery, 64 channels at 160 Hz, 3-s windows), staged under ``MNE_DATA``.

Usage::

    python benchmarks/edge_runtimes.py --out results/edge_runtimes

The machine's load average is stored with the results: on a shared machine latencies are
inflated (the ratio of runtimes measured in the same seconds is the robust number).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RUNTIMES = ("torch", "onnx_fp32", "onnx_int8")
DATASETS = {
    "Kalunga2016": {"paradigm": "SSVEP", "paradigm_params": {"n_classes": 4},
                    "dataset_params": {}, "subjects": list(range(1, 12))},
    "PhysionetMI": {"paradigm": "LeftRightImagery", "paradigm_params": {},
                    "dataset_params": {"feet_runs": []}, "subjects": [1]},
}


def _subjects(text: str) -> list[int]:
    from bci.cli import _subjects as parse

    return parse(text)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="EEGNeX", help="registered network (default EEGNeX)")
    parser.add_argument("--datasets", default="Kalunga2016,PhysionetMI",
                        help="comma-separated, of " + ", ".join(DATASETS))
    parser.add_argument("--kalunga-subjects", type=_subjects, default=None,
                        help="Kalunga2016 subjects (default 1-11)")
    parser.add_argument("--folds", type=int, default=5, help="within-session folds (default 5)")
    parser.add_argument("--max-folds", type=int, default=None,
                        help="stop after this many folds per dataset (quick runs)")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="training epochs (default: the registered setting)")
    parser.add_argument("--n-latency", type=int, default=300,
                        help="calls per latency measurement (default 300)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--int8-variants", default="minmax",
                        help="int8 quantisations to compare, comma-separated: a calibration "
                             "method (minmax, entropy, percentile), '+first' / '+last' to keep "
                             "the first / last weighted node in float32, '+more' to calibrate "
                             "also on the other staged subjects' windows (PhysionetMI 2-5), "
                             "e.g. minmax,entropy,minmax+first; the first is the table's int8")
    parser.add_argument("--out", default="results/edge_runtimes", help="output folder")
    return parser.parse_args(argv)


def _variant(spec: str) -> dict:
    """``"minmax+first+more"`` -> export_onnx keywords and whether to add other subjects."""
    method, *flags = spec.split("+")
    if method not in ("minmax", "entropy", "percentile"):
        raise SystemExit(f"Unknown int8 calibration {method!r} in {spec!r}: use minmax, "
                         "entropy or percentile.")
    unknown = [f for f in flags if f not in ("first", "last", "more")]
    if unknown:
        raise SystemExit(f"Unknown int8 variant flag(s) {unknown} in {spec!r}: use +first, "
                         "+last, +more.")
    return {"int8_calibration": method,
            "int8_keep_float": [f for f in flags if f in ("first", "last")],
            "more": "more" in flags}


def _folds(y, meta, n_folds: int):
    """(train, test) index pairs: stratified folds per subject and session."""
    from sklearn.model_selection import StratifiedKFold

    groups = meta["subject"].astype(str) + "/" + meta["session"].astype(str)
    for group in groups.unique():
        idx = np.flatnonzero((groups == group).to_numpy())
        cv = StratifiedKFold(n_folds, shuffle=True, random_state=42)
        for train, test in cv.split(idx, y[idx]):
            yield group, idx[train], idx[test]


def _percentiles(times_s: list[float]) -> dict:
    ms = np.asarray(times_s) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 4),
            "p99": round(float(np.percentile(ms, 99)), 4)}


def _latency(fn, n: int) -> dict:
    for _ in range(min(20, n)):  # warm-up
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return _percentiles(times)


# VmHWM: the peak RSS of this process image (ru_maxrss would carry the parent's over exec)
_MEMORY_CODE = """
import sys, numpy as np
import bci
d = bci.load_decoder(sys.argv[1])
x = np.load(sys.argv[2])
for i in range(int(sys.argv[3])):
    d.estimator.predict_proba(x[i % len(x)][None])
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(hwm.split()[1], "torch" in sys.modules)
"""


def _peak_memory(path: Path, windows: np.ndarray, n: int, tmp: Path) -> dict:
    """Peak RSS (MiB) of a fresh process that loads ``path`` and predicts ``n`` windows."""
    np.save(tmp / "windows.npy", windows)
    out = subprocess.run([sys.executable, "-c", _MEMORY_CODE, str(path),
                          str(tmp / "windows.npy"), str(n)], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rss_kib, torch_loaded = out.stdout.split()[-2:]
    return {"peak_rss_mib": round(int(rss_kib) / 1024, 1), "imports_torch": torch_loaded == "True"}


def _measure_runtimes(decoder, files: dict, X_test: np.ndarray, args, tmp: Path) -> dict:
    """Latency (batch 1; 1 and 2 threads), peak memory and file size of each runtime."""
    import torch

    from bci.models.classifier import scale_epochs
    from bci.models.decoder import load_decoder

    clf = decoder.estimator
    runtimes = {"torch": clf, "onnx_fp32": load_decoder(files["onnx_fp32"]).estimator,
                "onnx_int8": load_decoder(files["onnx_int8"]).estimator}
    window = X_test[:1]
    scaled = torch.as_tensor(scale_epochs(window, clf.scaling, clf.scale_mean_, clf.scale_std_))
    model = clf.model_.eval()
    result: dict = {name: {"latency_ms": {}} for name in (*RUNTIMES, "torch_forward")}
    threads_before = torch.get_num_threads()
    try:
        for n_threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(n_threads)
            clf.n_threads = None  # the process's torch threads, no switch per call
            for name in ("onnx_fp32", "onnx_int8"):
                runtimes[name].set_threads(n_threads)
            # interleave the runtimes so that they share the machine's load alike
            for name in RUNTIMES:
                est = runtimes[name]
                result[name]["latency_ms"][str(n_threads)] = _latency(
                    lambda est=est: est.predict_proba(window), args.n_latency)

            def forward():
                with torch.no_grad():
                    torch.softmax(model(scaled), 1)

            result["torch_forward"]["latency_ms"][str(n_threads)] = _latency(
                forward, args.n_latency)
    finally:
        torch.set_num_threads(threads_before)
    for name in RUNTIMES:
        result[name]["file_bytes"] = files[name].stat().st_size
        result[name].update(_peak_memory(files[name], X_test, args.n_latency, tmp))
    return result


def _variant_latency(files: dict, variants: dict, X_test: np.ndarray, args) -> dict:
    """p50 / p99 ms at batch 1, one thread, of each int8 variant (interleaved per variant)."""
    from bci.models.decoder import load_decoder

    window = X_test[:1]
    out = {}
    for vname in variants:
        est = load_decoder(files[f"int8:{vname}"]).estimator
        est.set_threads(1)
        out[vname] = _latency(lambda est=est: est.predict_proba(window), args.n_latency)
    return out


def _write_progress(args, name: str, folds: list, correct: dict, variant_stats: dict,
                    n_test: int) -> None:
    """Write the running totals of ``name`` after a fold, so a run cut short leaves numbers."""
    path = Path(args.out) / "edge_runtimes.partial.json"
    progress = json.loads(path.read_text()) if path.exists() else {}
    progress[name] = {
        "n_folds": len(folds), "n_test_windows": n_test,
        "accuracy": {r: round(c / n_test, 4) for r, c in correct.items()},
        "int8_variants": {v: {"accuracy": round(st["correct"] / n_test, 4),
                              "windows_changed_vs_torch": st["changed_vs_torch"],
                              "proba_abs_diff_vs_torch_mean": float(
                                  np.mean(np.concatenate(st["abs_diff"])))}
                          for v, st in variant_stats.items()},
        "folds": folds, "loadavg": list(os.getloadavg())}
    path.write_text(json.dumps(progress, indent=1))


def run_dataset(name: str, args, tmp: Path) -> dict:
    """Train, export and evaluate on one dataset; returns its results."""
    from bci.data.loaders import load_data
    from bci.hw.onnx_export import export_onnx
    from bci.models.classifier import DeepClassifier
    from bci.models.decoder import Decoder, load_decoder
    from bci.pipelines.registry import DEEP_SETTINGS

    spec = DATASETS[name]
    subjects = spec["subjects"]
    if name == "Kalunga2016" and args.kalunga_subjects:
        subjects = args.kalunga_subjects
    X, y, meta = load_data(name, spec["paradigm"], subjects,
                           paradigm_params=spec["paradigm_params"],
                           dataset_params=spec["dataset_params"])
    variants = {v: _variant(v) for v in args.int8_variants.split(",")}
    extra = None
    if any(v["more"] for v in variants.values()):
        if name != "PhysionetMI":
            raise SystemExit("+more calibrates on PhysionetMI subjects 2-5; use it on "
                             "PhysionetMI only.")
        extra = load_data(name, spec["paradigm"], [2, 3, 4, 5],
                          paradigm_params=spec["paradigm_params"],
                          dataset_params=spec["dataset_params"])[0]
    variant_stats = {v: {"correct": 0, "changed_vs_torch": 0, "abs_diff": [],
                         "file_bytes": None} for v in variants}
    settings = dict(DEEP_SETTINGS)
    if args.max_epochs:
        settings["max_epochs"] = args.max_epochs
    correct = {r: 0 for r in RUNTIMES}
    n_test, max_diff, folds, measured = 0, 0.0, [], None
    for i, (group, train, test) in enumerate(_folds(y, meta, args.folds)):
        if args.max_folds is not None and i >= args.max_folds:
            break
        start = time.perf_counter()
        clf = DeepClassifier(args.model, **settings, n_threads=1).fit(X[train], y[train])
        decoder = Decoder(clf, [f"ch{c}" for c in range(X.shape[1])], 100.0, 0.0,
                          (X.shape[2] - 1) / 100.0, [str(c) for c in clf.classes_])
        files = {"torch": decoder.save(tmp / f"{name}-{i}.bci"),
                 "onnx_fp32": export_onnx(decoder, tmp / f"{name}-{i}-onnx.bci")}
        for k, (vname, v) in enumerate(variants.items()):
            calib = X[train] if not v["more"] else np.concatenate([X[train], extra])
            files[f"int8:{vname}"] = export_onnx(
                decoder, tmp / f"{name}-{i}-int8-{k}.bci", int8=True, calibration=calib,
                int8_calibration=v["int8_calibration"], int8_keep_float=v["int8_keep_float"])
        files["onnx_int8"] = files[f"int8:{next(iter(variants))}"]
        proba = {"torch": clf.predict_proba(X[test])}
        for runtime in ("onnx_fp32", *(f"int8:{v}" for v in variants)):
            proba[runtime] = load_decoder(files[runtime]).estimator.predict_proba(X[test])
        proba["onnx_int8"] = proba[f"int8:{next(iter(variants))}"]
        torch_pred = proba["torch"].argmax(1)
        for vname in variants:
            pred = proba[f"int8:{vname}"].argmax(1)
            variant_stats[vname]["correct"] += int(np.sum(clf.classes_[pred] == y[test]))
            variant_stats[vname]["changed_vs_torch"] += int(np.sum(pred != torch_pred))
            variant_stats[vname]["abs_diff"].append(
                np.abs(proba[f"int8:{vname}"] - proba["torch"]).ravel())
            if variant_stats[vname]["file_bytes"] is None:  # the first fold's, as the table's
                variant_stats[vname]["file_bytes"] = files[f"int8:{vname}"].stat().st_size
        fold = {"group": group, "n_train": len(train), "n_test": len(test)}
        for runtime in RUNTIMES:
            hits = int(np.sum(clf.classes_[proba[runtime].argmax(1)] == y[test]))
            correct[runtime] += hits
            fold[f"accuracy_{runtime}"] = hits / len(test)
        diff = float(np.abs(proba["onnx_fp32"] - proba["torch"]).max())
        max_diff = max(max_diff, diff)
        fold["seconds"] = round(time.perf_counter() - start, 1)
        folds.append(fold)
        n_test += len(test)
        print(f"  {name} fold {i} ({group}): " + ", ".join(
            f"{r} {fold[f'accuracy_{r}']:.3f}" for r in RUNTIMES) + f" ({fold['seconds']} s)",
            flush=True)
        _write_progress(args, name, folds, correct, variant_stats, n_test)
        if measured is None:
            measured = _measure_runtimes(decoder, files, X[test], args, tmp)
            if len(variants) > 1:
                measured["int8_variant_latency_ms"] = _variant_latency(files, variants,
                                                                       X[test], args)
    runtimes = measured
    variant_latency = runtimes.pop("int8_variant_latency_ms", {})
    torch_correct = correct["torch"]
    int8_variants = {
        vname: {"accuracy": round(st["correct"] / n_test, 4),
                "change_points": round(100 * (st["correct"] - torch_correct) / n_test, 2),
                "windows_changed_vs_torch": st["changed_vs_torch"],
                "proba_abs_diff_vs_torch": {
                    "mean": float(np.mean(np.concatenate(st["abs_diff"]))),
                    "max": float(np.max(np.concatenate(st["abs_diff"])))},
                "latency_ms_1_thread": variant_latency.get(vname),
                "file_bytes": st["file_bytes"]}
        for vname, st in variant_stats.items()}
    for runtime in RUNTIMES:
        runtimes[runtime]["accuracy"] = round(correct[runtime] / n_test, 4)
    return {"paradigm": spec["paradigm"], "subjects": subjects, "n_chans": int(X.shape[1]),
            "n_times": int(X.shape[2]), "n_classes": int(len(np.unique(y))),
            "n_test_windows": n_test, "n_folds": len(folds),
            "max_abs_diff_fp32_vs_torch": max_diff, "runtimes": runtimes, "folds": folds,
            "int8_variants": int8_variants}


def format_table(results: dict) -> str:
    """Markdown table of a run's results."""
    threads = results["config"]["threads"].split(",")
    head = ["dataset", "runtime"] + [f"p50 / p99 ms ({t} thr)" for t in threads] + [
        "peak RSS MiB", "file kB", "accuracy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results["datasets"].items():
        for runtime in (*RUNTIMES, "torch_forward"):
            r = res["runtimes"][runtime]
            cells = [name, runtime.replace("_", " ")]
            cells += [f"{r['latency_ms'][t]['p50']:.3f} / {r['latency_ms'][t]['p99']:.3f}"
                      for t in threads]
            cells += [str(r.get("peak_rss_mib", "")), f"{r['file_bytes'] / 1e3:.1f}"
                      if "file_bytes" in r else "",
                      f"{r['accuracy']:.4f}" if "accuracy" in r else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    """Run the benchmark; print a table, write ``edge_runtimes.json``; return the results."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.datasets.split(",")
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise SystemExit(f"Unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}.")
    for spec in args.int8_variants.split(","):  # refused before any training
        _variant(spec)
    results = {"config": {k: v for k, v in vars(args).items()},
               "loadavg_before": list(os.getloadavg()), "cpu_count": os.cpu_count(),
               "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="bci-edge-") as tmp:
        for name in names:
            print(f"{name}: training {args.model} per fold ...", flush=True)
            results["datasets"][name] = run_dataset(name, args, Path(tmp))
    results["loadavg_after"] = list(os.getloadavg())
    results["peak_rss_this_process_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    for res in results["datasets"].values():
        rt = res["runtimes"]
        res["speedup_int8_vs_torch"] = {
            t: round(rt["torch"]["latency_ms"][t]["p50"] / rt["onnx_int8"]["latency_ms"][t]["p50"],
                     2) for t in rt["torch"]["latency_ms"]}
        res["accuracy_change_int8_points"] = round(
            100 * (rt["onnx_int8"]["accuracy"] - rt["torch"]["accuracy"]), 2)
    (out / "edge_runtimes.json").write_text(json.dumps(results, indent=1))
    table = format_table(results)
    (out / "edge_runtimes.md").write_text(table + "\n")
    print()
    print(table)
    for name, res in results["datasets"].items():
        print(f"{name}: int8 vs torch p50 speed-up {res['speedup_int8_vs_torch']}, accuracy "
              f"change {res['accuracy_change_int8_points']:+.2f} points over "
              f"{res['n_test_windows']} windows; max |p_onnx - p_torch| "
              f"{res['max_abs_diff_fp32_vs_torch']:.2g}")
    for name, res in results["datasets"].items():
        if len(res["int8_variants"]) > 1:
            print(f"{name} int8 variants (accuracy, change in points, windows whose decision "
                  "changed vs torch, p50 ms 1 thread, file size):")
            for vname, v in res["int8_variants"].items():
                lat = v["latency_ms_1_thread"]
                diff = v["proba_abs_diff_vs_torch"]
                print(f"  {vname}: {v['accuracy']:.4f} ({v['change_points']:+.2f}), "
                      f"{v['windows_changed_vs_torch']} changed, |p - p_torch| mean "
                      f"{diff['mean']:.4f} max {diff['max']:.4f}, "
                      f"{lat['p50'] if lat else float('nan'):.3f} ms, "
                      f"{v['file_bytes'] / 1e3:.1f} kB")
    print(f"load average before {results['loadavg_before']}, after "
          f"{results['loadavg_after']}; wrote {out / 'edge_runtimes.json'}")
    return results


if __name__ == "__main__":
    main()
