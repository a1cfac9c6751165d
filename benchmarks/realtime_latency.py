"""Closed-loop latency on loopback LSL: samples lost, end-to-end latency, transport floor.

For each configuration a real recording is published over LSL **by another process** (``bci
play --loop``, as a device would), and in this process:

1. **Transport floor** (``--floor-s`` seconds): a bare poll loop (pylsl ``pull_chunk(timeout=0)``
   into a preallocated buffer, 0.5 ms sleep when empty) measures, for every sample, its
   arrival time minus its LSL timestamp: pylsl push -> pull on this machine, nothing else.
2. **Closed loop** (``--duration`` seconds): ``Stream`` (acquisition thread) -> ``OnlineLoop``
   with a TS+LR decoder on 0.5-s windows every 0.1 s -> a policy that requests a stimulus at
   every decision -> ``SafetyGate`` (limits off for the benchmark) -> ``LSLMarkerStimulator``
   (a real LSL marker). End-to-end latency = the marker's LSL timestamp minus the LSL
   timestamp of the window's last sample. It splits into acquisition (transport + the
   device's chunking), wait (from the sample's arrival to the loop taking it up: wake-up, or
   queueing behind a decoder slower than the step), the decoder's own time, and the loop
   overhead (processing, window extraction, policy, safety, marker push, bookkeeping) =
   end-to-end - acquisition - wait - decode.

The first second of each phase is a warm-up (connection backlog) and is left out. The loop
limits BLAS to one thread (``OnlineLoop(blas_threads=1)``, its default).

Configurations (``--configs``), files under ``--data`` (default: the folder that holds
``MNE_DATA``, where the staged recordings sit beside ``mne_data/``):

- ``64x1000``: 64 magnetometers of the KIT/Yokogawa MEG test recording of mne-python
  (``meg_ieeg/mne-python/.../test_bin_raw.fif``, recorded at 1,000 Hz; 2 s long, so it loops);
- ``8x256``: the 8 EEG channels of Kalunga2016 (SSVEP exoskeleton) subject 1 run 1 as MOABB
  stores it under ``MNE_DATA`` (``mne_data/MNE-ssvepexo-data/...``), recorded at 256 Hz (the
  nearest real 8-channel recording to 250 Hz that is staged);
- ``273x1200``: the 273 MEG channels (CTF axial gradiometers, MNE type ``mag``) of the CTF
  whole-head test recording of mne-testing-data (``meg_ieeg/mne-testing-data/CTF/...``,
  recorded at 1,200 Hz; 2 s long, so it loops), published as a plain multichannel stream.

Any other recording: ``--file PATH`` (a file :func:`mne.io.read_raw` reads) with ``--picks``
(an MNE channel type or comma-separated names, default ``data``) and ``--channels N`` (the
first N of those; all by default), and ``--unit-factor`` (samples are multiplied by it before
the decoder: 1e15 for tesla -> fT, 1e6 for volts -> µV); its configuration is named
``<channels>x<rate>``.

The decoder is fitted on windows of the same recording with alternating labels: its accuracy is
meaningless, its cost (filtering, 64x64 covariance, tangent space, logistic regression) real.
The load average of the (shared) machine is printed and stored with the results.

Usage::

    python benchmarks/realtime_latency.py --duration-s 300 --floor-s 60 \
        --out results/realtime_latency

LSL stays on this machine: a loopback-only ``lsl_api.cfg`` is written and ``LSLAPICFG`` set
before the first pylsl call (this script only; real sessions keep the user's configuration).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mne
import numpy as np
from threadpoolctl import threadpool_limits

import bci
from bci.evaluation.latency import latency_stats
from bci.models.decoder import Decoder
from bci.realtime.events import StimRequest
from bci.realtime.loop import OnlineLoop
from bci.realtime.lsl import use_loopback_config  # imports no pylsl: LSLAPICFG is set first
from bci.realtime.policies import Policy
from bci.realtime.safety import SafetyGate
from bci.realtime.stream import Stream

#: file (relative to ``--data``), channels and unit of each configuration
CONFIGS = {
    "64x1000": {"file": "meg_ieeg/mne-python/mne/io/kit/tests/data/test_bin_raw.fif",
                "picks": "mag", "n_chans": 64, "unit_factor": 1e15},
    "8x256": {"file": "mne_data/MNE-ssvepexo-data/zenodo/2392979/subject01_run1_raw.fif",
              "picks": "eeg", "n_chans": 8, "unit_factor": 1e6},
    "273x1200": {"file": "meg_ieeg/mne-testing-data/CTF/testdata_ctf_short_discontinuous.ds_raw"
                         ".fif", "picks": "mag", "n_chans": 273, "unit_factor": 1e15},
}


class EveryDecision(Policy):
    """Request a stimulus at every decision (the benchmark's load)."""

    def update(self, decision):
        """Return a stimulus request triggered by the window's last sample."""
        return StimRequest(reason="benchmark", t_trigger=decision.t_end)


def _load(file: Path, config: dict) -> mne.io.BaseRaw:
    raw = mne.io.read_raw(file, preload=True, verbose=False)
    picks = config["picks"]
    raw.pick(picks.split(",") if "," in picks else picks)
    if config["n_chans"] is not None:
        if config["n_chans"] > len(raw.ch_names):
            raise SystemExit(f"{file} has {len(raw.ch_names)} channels of picks {picks!r}, "
                             f"fewer than the {config['n_chans']} asked (--channels).")
        raw.pick(raw.ch_names[:config["n_chans"]])
    return raw


def _decoder(raw, unit_factor: float, window_s: float = 0.5):
    """Fit a TS+LR decoder on ``window_s`` windows of ``raw`` (alternating labels)."""
    sfreq = raw.info["sfreq"]
    dec = Decoder(estimator=bci.get_pipeline("TS+LR"), ch_names=raw.ch_names, sfreq=sfreq,
                  tmin=0.0, tmax=window_s, classes=["a", "b"], filters=[(8.0, 30.0)],
                  unit_factor=unit_factor, info={"pipeline": "TS+LR", "purpose": "benchmark"})
    data = raw.get_data()
    n = dec.n_times
    starts = np.linspace(0, data.shape[1] - n, 20).astype(int)
    X = np.stack([data[:, s:s + n] for s in starts])
    # one BLAS thread, as the loop: on busy cores two threads spin against each other (the
    # Riemannian mean of 273-channel covariances took minutes instead of seconds)
    with threadpool_limits(limits=1, user_api="blas"):
        dec.estimator.fit(dec.preprocess(X), np.arange(len(X)) % 2)
    return dec


def _floor(name: str, seconds: float) -> np.ndarray:
    """Per-sample arrival minus LSL timestamp (ms) with a bare poll loop."""
    from bci.realtime.lsl import LSLSource, local_clock

    source = LSLSource(name, timeout_s=20.0)
    lat = []
    warmup = local_clock() + 1.0
    while local_clock() < warmup:  # drain the connection backlog
        source.pull()
        time.sleep(0.0005)
    end = local_clock() + seconds
    try:
        while local_clock() < end:
            _, ts = source.pull()
            if len(ts):
                lat.append(local_clock() - ts)
            else:
                time.sleep(0.0005)
    finally:
        source.close()
    return np.concatenate(lat) * 1e3 if lat else np.empty(0)


def _pct(values) -> dict:
    return latency_stats(values, percentiles=(50, 99), decimals=3)


def run_config(key: str, duration_s: float, floor_s: float, out: Path, data: Path,
               config: dict | None = None) -> dict:
    """Measure one configuration: transport floor, then the closed loop (see the docstring).

    ``config`` (file, picks, n_chans, unit_factor) replaces ``CONFIGS[key]`` (``--file``).
    """
    from bci.hw.lsl_marker import LSLMarkerStimulator  # pylsl: after LSLAPICFG is set
    from bci.realtime.lsl import LSLSource

    config = CONFIGS[key] if config is None else config
    raw = _load(data / config["file"], config)
    fif = out / f"{key}_raw.fif"
    raw.save(fif, overwrite=True, verbose=False)
    decoder = _decoder(raw, config["unit_factor"])
    name = f"bci-bench-{key}-{os.getpid()}"
    player = subprocess.Popen([sys.executable, "-m", "bci.cli", "play", str(fif), "--name", name,
                               "--loop"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    load_before = os.getloadavg()
    try:
        floor = _floor(name, floor_s)
        stream = Stream(LSLSource(name, timeout_s=20.0), threaded=True, buffer_s=30.0)
        stim = LSLMarkerStimulator(f"{name}-stim")
        safety = SafetyGate(min_interval_s=0.0, max_per_minute=None, max_per_session=None)
        loop = OnlineLoop(stream, decoder, step_s=0.1, policy=EveryDecision(), safety=safety,
                          stimulator=stim, decode_timeout_s=None)
        n_before = stream.n_written
        summary = loop.run(duration_s)
    finally:
        player.terminate()
        player.communicate(timeout=10)  # also closes its pipes
    load_after = os.getloadavg()
    t0 = loop.decisions[0].t_end + 1.0 if loop.decisions else 0.0  # 1-s warm-up left out
    trig = np.array([e.t_trigger for e in loop.stim_events])
    marker_ts = np.array(stim.timestamps)
    e2e = ((marker_ts - trig) * 1e3)[trig >= t0]
    keep = np.array([d.t_end >= t0 for d in loop.decisions], bool)
    lat = {k: np.array(v)[keep] for k, v in loop.latencies.items()}
    overhead = lat["end_to_end"] - lat["acquire"] - lat["wait"] - lat["decode"]
    received = summary["samples_received"]
    expected = round(summary["duration_s"] * raw.info["sfreq"]) + n_before
    result = {
        "config": key, "file": config["file"],
        "n_chans": len(raw.ch_names), "sfreq": raw.info["sfreq"],
        "duration_s": summary["duration_s"], "floor_s": floor_s,
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in load_after], "n_cores": os.cpu_count(),
        "samples_received": received, "samples_expected_from_wall_clock": expected,
        "samples_lost": summary["samples_lost"], "gaps": summary["gaps"],
        "decisions": summary["decisions"], "windows_skipped": summary["windows_skipped"],
        "stimuli": len(e2e),
        "transport_floor_ms": _pct(floor),
        "end_to_end_ms": _pct(e2e),
        "acquire_ms": _pct(lat["acquire"]), "wait_ms": _pct(lat["wait"]),
        "process_ms": _pct(lat["process"]),
        "decode_ms": _pct(lat["decode"]), "act_ms": _pct(lat["act"]),
        "loop_overhead_ms": _pct(overhead),
        "faults": summary["faults"], "stopped_reason": summary["stopped_reason"],
    }
    f99, d99, e99 = (result["transport_floor_ms"]["p99"], result["decode_ms"]["p99"],
                     result["end_to_end_ms"]["p99"])
    result["goal_overhead_p99_below_5ms"] = bool(result["loop_overhead_ms"]["p99"] is not None
                                                 and result["loop_overhead_ms"]["p99"] < 5.0)
    result["goal_e2e_p99_within_2x_floor_plus_decoder"] = bool(
        None not in (f99, d99, e99) and e99 <= 2 * f99 + d99)
    return result


def _table(results: list[dict]) -> str:
    """Markdown table of the results, one row a configuration."""
    rows = ["| config | load (1/5 min) | lost / received | floor p50 / p99 | end-to-end p50 / "
            "p99 | acquire p50 / p99 | wait p50 / p99 | decode p50 / p99 | loop overhead p50 / "
            "p99 | goals (overhead, e2e) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        pp = {k: f"{v['p50']} / {v['p99']}" for k, v in r.items() if k.endswith("_ms")}
        rows.append(
            f"| {r['n_chans']} ch @ {r['sfreq']:g} Hz, {r['duration_s']:.0f} s | "
            f"{r['loadavg_before'][0]}/{r['loadavg_before'][1]} -> {r['loadavg_after'][0]} | "
            f"{r['samples_lost']} / {r['samples_received']} | {pp['transport_floor_ms']} | "
            f"{pp['end_to_end_ms']} | {pp['acquire_ms']} | {pp['wait_ms']} | "
            f"{pp['decode_ms']} | {pp['loop_overhead_ms']} | "
            f"{'yes' if r['goal_overhead_p99_below_5ms'] else 'NO'}, "
            f"{'yes' if r['goal_e2e_p99_within_2x_floor_plus_decoder'] else 'NO'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark from the command line (``argv``); returns one result a config."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="64x1000,8x256")
    parser.add_argument("--duration-s", "--duration", dest="duration", type=float, default=300.0,
                        help="loop seconds per config")
    parser.add_argument("--floor-s", "--floor", dest="floor", type=float, default=60.0,
                        help="transport-floor seconds")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the recordings (default: the folder holding MNE_DATA)")
    parser.add_argument("--out", type=Path, default=Path("results") / "realtime_latency")
    parser.add_argument("--file", type=Path, default=None,
                        help="measure this recording instead of --configs (any file MNE reads)")
    parser.add_argument("--picks", default="data",
                        help="with --file: MNE channel type or comma-separated names")
    parser.add_argument("--channels", type=int, default=None,
                        help="with --file: keep the first N picked channels (default: all)")
    parser.add_argument("--unit-factor", type=float, default=1.0,
                        help="with --file: factor from the file's unit to the decoder's")
    args = parser.parse_args(argv)
    data = args.data
    if data is None:
        data = Path(mne.get_config("MNE_DATA", str(Path.home() / "mne_data"))).expanduser().parent
    # keep a loopback config given by the caller (tests), refuse a network one
    lsl_config = os.environ.get("LSLAPICFG")
    if not lsl_config or not Path(lsl_config).is_file() \
            or "ResolveScope = machine" not in Path(lsl_config).read_text():
        use_loopback_config()  # LSL stays on this machine (before the first pylsl call)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"os.getloadavg() at start: {os.getloadavg()} on {os.cpu_count()} cores", flush=True)
    if args.channels is not None and args.channels < 1:
        raise SystemExit(f"--channels must be an int >= 1, got {args.channels}.")
    if not np.isfinite(args.unit_factor) or args.unit_factor <= 0:
        raise SystemExit(f"--unit-factor must be a finite number > 0, got {args.unit_factor}.")
    if args.file is not None:
        if not args.file.exists():
            raise SystemExit(f"{args.file} is missing: give a recording MNE reads (--file).")
        config = {"file": str(args.file.resolve()), "picks": args.picks,
                  "n_chans": args.channels, "unit_factor": args.unit_factor}
        info = _load(args.file, config).info
        runs = [(f"{len(info.ch_names)}x{info['sfreq']:g}", config)]
    else:
        runs = []
        for key in args.configs.split(","):
            key = key.strip()
            if key not in CONFIGS:
                raise SystemExit(f"Unknown config {key!r}; choose from {sorted(CONFIGS)}.")
            if not (data / CONFIGS[key]["file"]).is_file():
                raise SystemExit(f"{data / CONFIGS[key]['file']} is missing: pass --data (the "
                                 "folder holding mne_data/ and meg_ieeg/) or set MNE_DATA.")
            runs.append((key, CONFIGS[key]))
    results = []
    try:
        for key, config in runs:
            print(f"[{key}] floor {args.floor:g} s + loop {args.duration:g} s ...", flush=True)
            result = run_config(key, args.duration, args.floor, out, data, config)
            print(json.dumps(result, indent=1), flush=True)
            results.append(result)
            # written as it goes: a run cut short keeps the configurations measured
            (out / "latency.json").write_text(json.dumps(results, indent=2))
    finally:
        for key, _ in runs:
            (out / f"{key}_raw.fif").unlink(missing_ok=True)
    table = _table(results)
    print("\n" + table)
    print(f"\nos.getloadavg() at end: {os.getloadavg()}")
    (out / "latency.md").write_text(table + "\n")
    return results


if __name__ == "__main__":
    main()
