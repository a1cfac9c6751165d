"""Step-by-step runtimes of a streaming spiking velocity decoder: torch, NIR simulator, snnTorch.

An :class:`~bci.models.spiking.ibmi.SNNStreaming` is trained on the staged center-out reaching
session (trials 0-199 train, 200-239 validation, 240-285 test; ``--synthetic``: simulated
reaches instead), exported to NIR (:func:`bci.hw.nir_export.save_nir`), and each runtime decodes
the test trials one bin at a time, from rest at every trial's start:

- ``torch``: :class:`~bci.models.spiking.stepping.TorchStepDecoder` (the model's
  ``forward_sequence`` on one bin with the carried state, float32);
- ``nir``: :class:`~bci.models.nir_runtime.NIRStepDecoder`, the NIR file in our NumPy
  simulator (float64, no torch);
- ``snntorch``: :class:`~bci.models.snntorch_runtime.SnnTorchStepDecoder`, snnTorch's NIR
  import (where snnTorch >= 1.0 and nirtorch are installed).

Per runtime: R^2 (NeuroBench's) on the test trials, its difference from the torch model's
whole-sequence ``forward_sequence``, the synaptic operations actually performed (per bin and per
second of signal at 20 bins/s), the latency of one step (``step(counts)`` of one bin, batch 1)
p50 / p99 over ``--n-latency`` steps, on 1 and 2 threads (``torch.set_num_threads``; NumPy's
BLAS threads with ``threadpoolctl`` where installed), and the peak memory: the peak resident set
size (``VmHWM``) of a fresh Python process that builds the runtime's decoder from the files
(torch: the NIR file read back into the torch model; nir: the NIR file in the NumPy simulator,
which never imports torch; snntorch: snnTorch's NIR import) and steps ``--n-latency`` bins, one
thread, as ``benchmarks/edge_runtimes.py`` measures its runtimes. Results go to
``--out``/nir_runtime.json, rewritten after every runtime, and a Markdown table is printed.

Usage::

    python benchmarks/nir_runtime.py --out results/nir_runtime

On a shared machine absolute latencies are inflated (the load average is stored with the
results); runtimes are measured in the same run, one after the other.
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


def _data(synthetic: bool):
    from bci.data.reaching import load_center_out, make_reaching

    if synthetic:
        data = make_reaching(60, 24, sfreq=20.0, random_state=0)
        return data.subset(range(40)), data.subset(range(40, 48)), data.subset(range(48, 60))
    data = load_center_out()
    return data.subset(range(200)), data.subset(range(200, 240)), data.subset(range(240, 286))


def _decode_trials(decoder, test) -> list[np.ndarray]:
    outs = []
    for counts in test.spikes:
        decoder.reset()
        outs.append(decoder.run(counts))
    return outs


def _latency(decoder, test, n: int) -> tuple[float, float]:
    bins = np.concatenate(test.spikes, axis=1)
    decoder.reset()
    times = []
    for k in range(n):
        col = bins[:, k % bins.shape[1]]
        t0 = time.perf_counter()
        decoder.step(col)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


# VmHWM: the peak RSS of this process image (ru_maxrss would carry the parent's over exec)
_MEMORY_CODE = """
import sys, numpy as np
backend, nir_file, bins, n = sys.argv[1], sys.argv[2], np.load(sys.argv[3]), int(sys.argv[4])
if backend == "nir":
    from bci.models.nir_runtime import NIRStepDecoder
    decoder = NIRStepDecoder(nir_file)
elif backend == "snntorch":
    from bci.models.snntorch_runtime import SnnTorchStepDecoder
    decoder = SnnTorchStepDecoder(nir_file)
else:
    from bci.hw.nir_export import load_nir
    from bci.models.spiking.stepping import TorchStepDecoder
    decoder = TorchStepDecoder(load_nir(nir_file))
for k in range(n):
    decoder.step(bins[:, k % bins.shape[1]])
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(hwm.split()[1], "torch" in sys.modules)
"""


def _peak_memory(backend: str, nir_file: Path, bins: np.ndarray, n: int) -> dict:
    """Peak RSS (MiB) of a fresh process that builds ``backend``'s decoder and steps ``n`` bins."""
    np.save(nir_file.parent / "bins.npy", bins)
    out = subprocess.run([sys.executable, "-c", _MEMORY_CODE, backend, str(nir_file),
                          str(nir_file.parent / "bins.npy"), str(n)], capture_output=True,
                         text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                              "OPENBLAS_NUM_THREADS": "1"})
    rss_kib, torch_loaded = out.stdout.split()[-2:]
    return {"peak_rss_mib": round(int(rss_kib) / 1024, 1), "imports_torch": torch_loaded == "True"}


def _threads(n: int):
    import contextlib

    import torch

    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; return the results (also written to ``--out``/nir_runtime.json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for nir_runtime.json")
    parser.add_argument("--synthetic", action="store_true",
                        help="simulated reaches instead of the staged session (tests)")
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--n-hidden", type=int, default=64)
    parser.add_argument("--n-latency", type=int, default=2000, help="steps timed per runtime")
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    args = parser.parse_args(argv)

    import torch

    from bci.evaluation.ibmi_metrics import r2_neurobench
    from bci.hw.nir_export import save_nir
    from bci.models.nir_runtime import NIRStepDecoder
    from bci.models.spiking.ibmi import SNNStreaming, fit_sequence_decoder
    from bci.models.spiking.stepping import TorchStepDecoder

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, val, test = _data(args.synthetic)
    torch.manual_seed(0)
    model = SNNStreaming(train.n_chans, 2, sfreq=train.sfreq, n_hidden=args.n_hidden)
    t0 = time.perf_counter()
    fit_sequence_decoder(model, train, val=val, max_epochs=args.max_epochs, random_state=0,
                         seed=0)
    model.eval()
    nir_file = out_dir / "snn.nir"
    save_nir(model, nir_file)
    with torch.no_grad():
        reference = [model.forward_sequence(torch.as_tensor(c, dtype=torch.float32)[None])[0]
                     .double().numpy() for c in test.spikes]
    results = {
        "data": "synthetic" if args.synthetic else "center_out (staged)",
        "n_test_bins": int(test.n_bins), "n_chans": int(train.n_chans),
        "sfreq": float(train.sfreq), "n_hidden": args.n_hidden,
        "train_s": time.perf_counter() - t0, "nir_file_bytes": nir_file.stat().st_size,
        "r2_model": r2_neurobench(test.velocity, reference),
        "loadavg": list(os.getloadavg()), "runtimes": {},
    }
    decoders = {"torch": lambda: TorchStepDecoder(model),
                "nir": lambda: NIRStepDecoder(nir_file)}
    try:
        from bci.models.snntorch_runtime import SnnTorchStepDecoder, _import_snntorch

        _import_snntorch()
        decoders["snntorch"] = lambda: SnnTorchStepDecoder(nir_file)
    except ImportError as err:
        results["snntorch"] = f"not installed ({err})"
    threads = [int(t) for t in args.threads.split(",")]
    for name, make in decoders.items():
        decoder = make()
        pred = _decode_trials(decoder, test)
        row = {
            "r2": r2_neurobench(test.velocity, pred),
            "max_abs_diff_vs_model": float(max(np.abs(p - r).max()
                                               for p, r in zip(pred, reference, strict=True))),
        }
        # synaptic operations over all test trials, per bin and per second of signal
        total_ops = 0.0
        for counts in test.spikes:
            decoder.reset()
            decoder.run(counts)
            total_ops += decoder.synops
        row["synops_per_bin"] = total_ops / test.n_bins
        row["synops_per_s"] = total_ops / (test.n_bins / test.sfreq)
        for n in threads:
            with _threads(n):
                row[f"latency_ms_{n}_threads"] = _latency(decoder, test, args.n_latency)
        row.update(_peak_memory(name, nir_file, np.concatenate(test.spikes, axis=1),
                                args.n_latency))
        results["runtimes"][name] = row
        (out_dir / "nir_runtime.json").write_text(json.dumps(results, indent=2))
    header = ("| runtime | R^2 | max abs diff vs model | synops / s | "
              + " | ".join(f"step p50 / p99 ms, {n} thread{'s' * (n > 1)}" for n in threads)
              + " | peak RSS MiB |")
    lines = [header, "|" + "---|" * (5 + len(threads))]
    for name, row in results["runtimes"].items():
        lat = " | ".join("{:.4f} / {:.4f}".format(*row[f"latency_ms_{n}_threads"])
                         for n in threads)
        lines.append(f"| {name} | {row['r2']:.4f} | {row['max_abs_diff_vs_model']:.1e} | "
                     f"{row['synops_per_s']:,.0f} | {lat} | {row['peak_rss_mib']:.1f} |")
    print("\n".join(lines))  # noqa: T201 - a benchmark script's report
    print(f"model R^2 {results['r2_model']:.4f}; NIR file {results['nir_file_bytes']} bytes; "  # noqa: T201
          f"load average {results['loadavg']}")
    (out_dir / "nir_runtime.md").write_text("\n".join(lines) + "\n")
    return results


if __name__ == "__main__":
    main()
