"""NumPy runtime vs scikit-learn pipeline: per-window latency, file size, parity.

For each configuration and pipeline a decoder is trained with ``bci.train_decoder`` (the
scikit-learn/pyRiemann pipeline, saved as a skops decoder file), exported with ``bci export
--format numpy`` (:func:`bci.hw.numpy_export.export_numpy`), and both files are loaded back with
``bci.load_decoder``. On the raw windows cut at the cues of the training subject, one window at a
time (batch 1) with BLAS/OpenMP limited to ``--threads`` threads, it measures:

- ``estimator_ms``: ``decoder.estimator.predict_proba`` on the preprocessed window: the part the
  runtime replaces (covariance, tangent space or distances, classifier);
- ``decoder_ms``: ``decoder.predict_proba`` on the raw window, what the live loop calls (MNE's IIR
  band-pass or filter bank, the amplitude check, then the estimator);
- ``load_ms``: ``bci.load_decoder`` of each file;
- file sizes, and the largest difference between the two decoders' probabilities.

Latencies are p50/p99 over ``--n-windows`` calls after ``--warmup`` calls, in milliseconds; the
two decoders take turns on each window (alternating which goes first), so the load of other
processes on a shared machine falls on both alike. Beside the wall-clock times (``*_ms``) the CPU
time of the calling thread is recorded (``*_cpu_ms``): it leaves out the time the thread waited
for a core, so on a busy machine its p99 shows the cost of the code, the wall-clock p99 the cost
of the code plus preemption by other processes.

Configurations (``--configs``):

- ``kalunga``: Kalunga2016 subject 1 (8 channels, 256 Hz, SSVEP, filter bank of 3 bands);
  pipelines ``SSVEP_TS+LR``, ``SSVEP_MDM``, ``SSVEP_TS+SVM``;
- ``physionet``: PhysionetMI subject 1 hand runs (64 channels, 160 Hz, 3-s windows); pipelines
  ``TS+LR``, ``MDM``, ``FgMDM``, ``CSP+LDA``;
- ``synthetic``: bci's SyntheticMotorImagery subject 1 (no download; for tests); ``TS+LR``.

``--pipelines`` keeps only the named pipelines. The machine's load average is stored with the
results: on a shared machine the absolute numbers are inflated, the ratios less so.

Usage::

    python benchmarks/numpy_runtime.py --out results/numpy_runtime
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIGS = {
    "kalunga": {"dataset": "Kalunga2016", "paradigm": "SSVEP", "subject": 1,
                "dataset_params": {},
                "pipelines": ["SSVEP_TS+LR", "SSVEP_MDM", "SSVEP_TS+SVM"]},
    "physionet": {"dataset": "PhysionetMI", "paradigm": "LeftRightImagery", "subject": 1,
                  "dataset_params": {"feet_runs": []},
                  "pipelines": ["TS+LR", "MDM", "FgMDM", "CSP+LDA"]},
    "synthetic": {"dataset": "SyntheticMotorImagery", "paradigm": "LeftRightImagery",
                  "subject": 1, "dataset_params": {}, "pipelines": ["TS+LR"]},
}


def cue_windows(dataset, decoder, subject: int) -> np.ndarray:
    """Raw windows (volts) at the cues of the decoder's classes that fit inside their run."""
    import mne

    windows = []
    start = int(round(decoder.tmin * decoder.sfreq))
    for runs in dataset.get_data(subjects=[subject])[subject].values():
        for raw in runs.values():
            events, event_id = mne.events_from_annotations(raw, verbose=False)
            names = {v: k for k, v in event_id.items()}
            data = raw.get_data(picks=decoder.ch_names)
            for onset, _, code in events:
                stop = onset + start + decoder.n_times
                if names[code] in decoder.classes and stop <= data.shape[1]:
                    windows.append(data[:, onset + start:stop])
    return np.stack(windows)


def time_calls(fns: dict, windows: np.ndarray, n_windows: int, warmup: int
               ) -> tuple[dict, dict]:
    """Time each of ``fns`` on one window at a time, interleaved, after a warm-up.

    The functions take turns on the same window (their order alternating from window to window),
    so load from other processes on a shared machine falls on both alike.

    Returns
    -------
    wall, cpu : dict of str to list of float
        Per function, the wall-clock durations (s) and the CPU time of this thread (s): the
        latter leaves out the time the thread waited for a core (preemption by other processes).
    """
    names = list(fns)
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for i in range(warmup + n_windows):
        x = windows[i % len(windows)][None]
        for name in names if i % 2 == 0 else names[::-1]:
            c0, t0 = time.thread_time(), time.perf_counter()
            fns[name](x)
            t1, c1 = time.perf_counter(), time.thread_time()
            if i >= warmup:
                wall[name].append(t1 - t0)
                cpu[name].append(c1 - c0)
    return wall, cpu


def run_pipeline(config: dict, pipeline: str, folder: Path, n_windows: int, warmup: int,
                 threads: int) -> dict:
    """Train, export, load and time one pipeline; return its row of results."""
    from threadpoolctl import threadpool_limits

    import bci
    from bci.data.loaders import get_dataset
    from bci.evaluation.latency import latency_stats
    from bci.hw.numpy_export import export_numpy

    decoder = bci.train_decoder(config["dataset"], config["paradigm"], pipeline,
                                subjects=[config["subject"]],
                                dataset_params=config["dataset_params"] or None)
    skops_path = decoder.save(folder / f"{pipeline}.bci")
    numpy_path = export_numpy(decoder, folder / f"{pipeline}-numpy.bci")
    t0 = time.perf_counter()
    sk = bci.load_decoder(skops_path)
    load_sk = time.perf_counter() - t0
    t0 = time.perf_counter()
    nu = bci.load_decoder(numpy_path)
    load_np = time.perf_counter() - t0
    dataset = get_dataset(config["dataset"], **config["dataset_params"])
    X = cue_windows(dataset, decoder, config["subject"])
    Xp = sk.preprocess(X)
    diff = float(np.max(np.abs(nu.predict_proba(X) - sk.predict_proba(X))))

    def stats(times):
        return latency_stats(times, percentiles=(50, 99), scale=1e3)

    row = {"pipeline": pipeline, "dataset": config["dataset"], "subject": config["subject"],
           "n_chans": sk.n_chans, "n_bands": max(len(sk.filters), 1), "sfreq": sk.sfreq,
           "n_times": sk.n_times, "steps": nu.estimator.steps, "n_windows": n_windows,
           "threads": threads, "max_abs_diff": diff,
           "file_bytes": {"sklearn": skops_path.stat().st_size,
                          "numpy": numpy_path.stat().st_size},
           "load_ms": {"sklearn": round(load_sk * 1e3, 2), "numpy": round(load_np * 1e3, 2)}}
    with threadpool_limits(threads):
        estimator, estimator_cpu = time_calls({"sklearn": sk.estimator.predict_proba,
                                               "numpy": nu.estimator.predict_proba}, Xp,
                                              n_windows, warmup)
        decoder, decoder_cpu = time_calls({"sklearn": sk.predict_proba,
                                           "numpy": nu.predict_proba}, X, n_windows, warmup)
    for key, values in (("estimator_ms", estimator), ("estimator_cpu_ms", estimator_cpu),
                        ("decoder_ms", decoder), ("decoder_cpu_ms", decoder_cpu)):
        row[key] = {name: stats(times) for name, times in values.items()}
    for key in ("estimator_ms", "estimator_cpu_ms", "decoder_ms", "decoder_cpu_ms"):
        row[key]["speedup_p50"] = round(row[key]["sklearn"]["p50"] / row[key]["numpy"]["p50"], 2)
    return row


def table(rows: list[dict]) -> str:
    """Markdown table of the results (wall-clock p50/p99; CPU-time p99 in brackets)."""
    lines = ["| pipeline | chans x bands | estimator p50 / p99 [CPU p99] ms: sklearn | numpy | "
             "speed-up | decoder p50 / p99 [CPU p99] ms: sklearn | numpy | file bytes: skops | "
             "numpy | max diff |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(r, key, runtime, digits):
        wall, cpu = r[key][runtime], r[key.replace("_ms", "_cpu_ms")][runtime]
        return f"{wall['p50']:.{digits}f} / {wall['p99']:.{digits}f} [{cpu['p99']:.{digits}f}]"

    for r in rows:
        lines.append(
            f"| {r['pipeline']} | {r['n_chans']} x {r['n_bands']} | "
            f"{cell(r, 'estimator_ms', 'sklearn', 2)} | {cell(r, 'estimator_ms', 'numpy', 2)} | "
            f"{r['estimator_ms']['speedup_p50']:.1f}x | "
            f"{cell(r, 'decoder_ms', 'sklearn', 1)} | {cell(r, 'decoder_ms', 'numpy', 1)} | "
            f"{r['file_bytes']['sklearn']:,} | {r['file_bytes']['numpy']:,} | "
            f"{r['max_abs_diff']:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark; return the rows (also written to ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS),
                        default=["kalunga", "physionet"])
    parser.add_argument("--pipelines", nargs="+", default=None,
                        help="keep only these pipelines (default: each config's)")
    parser.add_argument("--n-windows", type=int, default=500,
                        help="timed calls per pipeline and runtime (default 500)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads (default 1, the edge case)")
    parser.add_argument("--out", default="results/numpy_runtime")
    args = parser.parse_args(argv)
    if args.n_windows < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--n-windows and --threads must be >= 1, --warmup >= 0.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            config = CONFIGS[name]
            for pipeline in config["pipelines"]:
                if args.pipelines and pipeline not in args.pipelines:
                    continue
                row = run_pipeline(config, pipeline, Path(tmp), args.n_windows, args.warmup,
                                   args.threads)
                row["config"] = name
                rows.append(row)
    result = {"rows": rows, "loadavg_before": list(load_before),
              "loadavg_after": list(os.getloadavg()), "cpu_count": os.cpu_count()}
    (out / "numpy_runtime.json").write_text(json.dumps(result, indent=1))
    text = table(rows)
    (out / "numpy_runtime.md").write_text(text + "\n")
    print(text)
    print(f"Load average before/after: {load_before} / {result['loadavg_after']} "
          f"({os.cpu_count()} CPUs). Results in {out}.")
    return rows


if __name__ == "__main__":
    main()
