"""Online equals offline: a trained spiking velocity decoder over real loopback LSL, per backend.

An :class:`~bci.models.spiking.ibmi.SNNStreaming` is trained on the staged center-out reaching
session (trials 0-199 train, 200-239 validation; ``--model FILE.bci``: a trained network file
instead), written as a network file and exported to NIR with ``bci export --format nir``. The
test trials (240-285, the first ``--n-test-trials`` of them, at most ``--max-bins`` bins) are
written as a TrialData ``.mat`` file and, for each backend in turn:

1. ``bci play TEST.mat --reaching --name NAME --type Spikes --wait-s 60`` publishes them as an
   LSL stream (a subprocess, in real time: one bin every 50 ms; the player has no faster mode,
   its rate is the session's);
2. ``bci stream --source NAME --decoder snn.nir --backend B --outlet NAME-velocity --record DIR
   --max-bins N`` decodes every bin as it arrives (torch, the NumPy NIR simulator, snnTorch's NIR
   import where installed), streams ``vx, vy`` on an LSL outlet and records the session;
3. the recorded outputs (:func:`~bci.realtime.recording.read_outputs`) are compared with the
   offline decode of the same bins by the same backend (``run`` over the concatenated test
   bins, from rest, as the stream sees them: the state is carried across trials).

Per backend: R^2 (NeuroBench's) of the online and of the offline decode against the recorded
hand velocity, their difference, the largest absolute difference of the outputs, bins lost
(played minus decoded, and the stream's gap events), the recorded signal equal to the played
counts, synaptic operations per second of signal and the per-bin decode / end-to-end latency
(ms, p50 / p99) of the live session. Results go to ``--out``/online_decode.json, rewritten
after every backend, and a Markdown table is printed.

Usage::

    python benchmarks/online_decode.py --out results/online_decode

The whole test set is 3,595 bins: about 3 minutes of real time per backend.
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


def write_trialdata(fname: Path, data) -> Path:
    """Write reaching trials as a TrialData ``.mat`` file (what ``bci play --reaching`` reads)."""
    from scipy.io import savemat

    fields = ["M1_spikes", "vel", "bin_size", "target_direction"]
    trials = np.zeros((1, len(data.spikes)), dtype=[(f, object) for f in fields])
    for k, (counts, vel) in enumerate(zip(data.spikes, data.velocity, strict=True)):
        trials[0, k] = (counts.T, vel.T, 1.0 / data.sfreq,
                        float(data.trial_info["target_direction"][k]))
    savemat(fname, {"trial_data": trials})
    return fname


def _truncate(data, max_bins: int | None):
    """Return the first trials of ``data`` holding at most ``max_bins`` bins (the last cut)."""
    if max_bins is None or data.n_bins <= max_bins:
        return data
    spikes, velocity, left = [], [], max_bins
    for counts, vel in zip(data.spikes, data.velocity, strict=True):
        if left <= 0:
            break
        spikes.append(counts[:, :left])
        velocity.append(vel[:, :left])
        left -= spikes[-1].shape[1]
    out = data.subset(range(len(spikes)))
    out.spikes, out.velocity = spikes, velocity
    return out


def _offline_decoder(backend: str, nir_file: Path):
    """Build the backend's step decoder from the NIR file, as ``bci stream`` builds it."""
    if backend == "nir":
        from bci.models.nir_runtime import NIRStepDecoder

        return NIRStepDecoder(nir_file)
    if backend == "snntorch":
        from bci.models.snntorch_runtime import SnnTorchStepDecoder

        return SnnTorchStepDecoder(nir_file)
    from bci.hw.nir_export import load_nir
    from bci.models.spiking.stepping import TorchStepDecoder

    return TorchStepDecoder(load_nir(nir_file))


def _available_backends(requested: list[str]) -> tuple[list[str], dict]:
    skipped = {}
    if "snntorch" in requested:
        try:
            from bci.models.snntorch_runtime import _import_snntorch

            _import_snntorch()
        except ImportError as err:
            skipped["snntorch"] = f"not installed ({err})"
    return [b for b in requested if b not in skipped], skipped


def run_backend(backend: str, nir_file: Path, mat_file: Path, n_bins: int, out_dir: Path,
                timeout_s: float) -> dict:
    """Play the test bins, decode them live with ``backend``; return the session's summary."""
    from bci.cli import main as bci_main

    name = f"bci-online-{backend}-{os.getpid()}"
    record = out_dir / f"session-{backend}"
    player = subprocess.Popen(
        [sys.executable, "-m", "bci.cli", "play", str(mat_file), "--reaching", "--name", name,
         "--type", "Spikes", "--wait-s", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        code = bci_main(["stream", "--source", name, "--decoder", str(nir_file), "--backend",
                         backend, "--outlet", f"{name}-velocity", "--record", str(record),
                         "--max-bins", str(n_bins), "--timeout-s", str(timeout_s),
                         "--stimulator", "none"])
    finally:
        player.terminate()
        player.communicate(timeout=10)
    if code != 0:
        raise RuntimeError(f"bci stream --backend {backend} exited with {code}.")
    return json.loads((record / "summary.json").read_text())


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; return the results (also written to ``--out``/online_decode.json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for online_decode.json")
    parser.add_argument("--model", default=None, metavar="FILE.bci",
                        help="a trained SNNStreaming network file (default: train one)")
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--n-hidden", type=int, default=64)
    parser.add_argument("--n-train-trials", type=int, default=200,
                        help="train on trials 0..N-1 (validation: the next 40, at most 200-239)")
    parser.add_argument("--n-test-trials", type=int, default=46, help="of trials 240-285")
    parser.add_argument("--max-bins", type=int, default=None, help="play at most N test bins")
    parser.add_argument("--backends", default="torch,nir,snntorch")
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="bci stream's wait for the stream and for each bin (s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from bci.cli import main as bci_main
    from bci.data.reaching import load_center_out
    from bci.evaluation.ibmi_metrics import r2_neurobench
    from bci.models.decoder import load_network, save_network
    from bci.models.spiking.ibmi import SNNStreaming, fit_sequence_decoder
    from bci.realtime.recording import read_outputs, read_signal

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_center_out()
    test = _truncate(data.subset(range(240, 240 + args.n_test_trials)), args.max_bins)
    results = {"data": "center_out (staged)", "seed": args.seed, "argv": argv or sys.argv[1:],
               "n_test_trials": len(test.spikes), "n_test_bins": int(test.n_bins),
               "loadavg": list(os.getloadavg()), "backends": {}}
    t0 = time.perf_counter()
    if args.model is None:
        torch.manual_seed(args.seed)
        n_train = args.n_train_trials
        train = data.subset(range(n_train))
        val = data.subset(range(n_train, min(n_train + 40, 240)))
        model = SNNStreaming(data.n_chans, 2, sfreq=data.sfreq, n_hidden=args.n_hidden)
        fit_sequence_decoder(model, train, val=val, max_epochs=args.max_epochs,
                             random_state=args.seed, seed=args.seed)
        model_file = save_network(model.eval(), out_dir / "snn.bci")
        results.update(n_train_trials=n_train, max_epochs=args.max_epochs,
                       n_hidden=args.n_hidden, train_s=time.perf_counter() - t0)
    else:
        model_file = Path(args.model)
        model = load_network(model_file).eval()
    nir_file = out_dir / "snn.nir"
    if bci_main(["export", "--format", "nir", str(model_file), "--out", str(nir_file)]) != 0:
        raise RuntimeError("bci export --format nir failed.")
    with torch.no_grad():  # the trained model, per trial from rest (the offline benchmarks')
        per_trial = [model.forward_sequence(torch.as_tensor(c, dtype=torch.float32)[None])[0]
                     .double().numpy() for c in test.spikes]
    results["r2_model_per_trial"] = r2_neurobench(test.velocity, per_trial)
    mat_file = write_trialdata(out_dir / "test_trials.mat", test)
    counts = np.concatenate(test.spikes, axis=1)
    velocity = np.concatenate(test.velocity, axis=1)
    n_bins = counts.shape[1]
    backends, skipped = _available_backends(args.backends.split(","))
    results["skipped"] = skipped
    for backend in backends:
        summary = run_backend(backend, nir_file, mat_file, n_bins, out_dir, args.timeout_s)
        record = out_dir / f"session-{backend}"
        online, _, indices, names = read_outputs(record)
        signal, _, _ = read_signal(record)
        decoder = _offline_decoder(backend, nir_file)
        decoder.reset()
        offline = decoder.run(counts)
        n_online = online.shape[1] if online.size else 0
        same = n_online == n_bins
        r2_on = r2_neurobench([velocity[:, :n_online]], [online]) if n_online else float("nan")
        r2_off = r2_neurobench([velocity], [offline])
        lat = summary["latency_ms"]
        results["backends"][backend] = {
            "n_bins_played": n_bins, "n_bins_decoded": n_online,
            "bins_lost": n_bins - n_online,
            "indices_in_order": bool(np.array_equal(indices, np.arange(n_online))),
            "signal_equals_counts": bool(signal.shape == counts.shape
                                         and np.array_equal(signal, counts)),
            "stream_events": summary["stream_events"], "output_names": names,
            "r2_online": r2_on, "r2_offline": r2_off, "r2_abs_diff": abs(r2_on - r2_off),
            "max_abs_diff": float(np.abs(online - offline).max()) if same else float("nan"),
            "synops_per_s": summary["synops_per_s"],
            "synops_per_bin": summary["synops_per_bin"],
            "decode_ms": [lat["decode"]["p50"], lat["decode"]["p99"]],
            "end_to_end_ms": [lat["end_to_end"]["p50"], lat["end_to_end"]["p99"]],
            "wall_s": summary["wall_s"],
        }
        (out_dir / "online_decode.json").write_text(json.dumps(results, indent=2))
    lines = ["| backend | bins decoded / lost | R^2 online | R^2 offline | abs diff R^2 | "
             "max abs diff | synops / s | decode p50 / p99 ms | end-to-end p50 / p99 ms |",
             "|" + "---|" * 9]
    for name, row in results["backends"].items():
        lines.append(f"| {name} | {row['n_bins_decoded']} / {row['bins_lost']} | "
                     f"{row['r2_online']:.6f} | {row['r2_offline']:.6f} | "
                     f"{row['r2_abs_diff']:.1e} | {row['max_abs_diff']:.1e} | "
                     f"{row['synops_per_s']:,.0f} | "
                     "{:.3f} / {:.3f} | ".format(*row["decode_ms"])
                     + "{:.1f} / {:.1f} |".format(*row["end_to_end_ms"]))
    (out_dir / "online_decode.json").write_text(json.dumps(results, indent=2))
    (out_dir / "online_decode.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))  # noqa: T201 - a benchmark script's report
    print(f"{results['n_test_bins']} test bins of {results['n_test_trials']} trials; model "  # noqa: T201
          f"R^2 per trial from rest {results['r2_model_per_trial']:.4f}; skipped {skipped}")
    return results


if __name__ == "__main__":
    main()
