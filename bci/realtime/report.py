"""Session summary (``summary.json``) and report (PNG figures + an MNE Report HTML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.latency import latency_stats
from .recording import SUMMARY, read_events, read_header, read_signal

__all__ = ["latency_stats", "make_session_report", "summarize"]


def summarize(loop: Any) -> dict:
    """Summarise a finished :class:`~bci.realtime.loop.OnlineLoop` run.

    Keys: ``samples_received``, ``samples_lost``, ``gaps``, ``decisions``,
    ``stimuli_fired``, ``stimuli_suppressed`` (and ``suppressed_by_reason``), ``latency_ms``
    keyed by stage (``acquire``, ``wait``, ``process``, ``decode``, ``act``, ``end_to_end``, plus
    ``stimulus`` from trigger sample to stimulus) with ``p50``, ``p95``, ``p99``, ``max``;
    ``faults`` (counts by kind, stream events included), ``windows_skipped``,
    ``stopped_reason``, ``duration_s`` (wall clock), ``group_delay_s`` of the processing;
    ``stimulator``: its ``name``, ``has_consumers_at_start`` and ``has_consumers_at_end``
    (whether a receiver was connected; None when the back-end cannot know, e.g. a serial
    line) and the stimuli ``sent_with_consumer``, ``sent_without_consumer`` (known lost) and
    ``delivery_unknown``; ``markers_sent_with_consumer`` (the stimuli known to have reached a
    connected receiver, None when the back-end cannot know); ``recording``: its
    ``directory``, ``samples_recorded``, ``samples_not_recorded`` and ``error`` (None, or why
    recording stopped, e.g. a full disk).
    """
    stream = loop.stream
    stream_faults: dict[str, int] = {}
    for event in stream.events:
        stream_faults[event.kind] = stream_faults.get(event.kind, 0) + 1
    latency = {stage: latency_stats(values) for stage, values in loop.latencies.items()}
    latency["stimulus"] = latency_stats(loop.stim_latency_ms)
    stim, delivery = loop.stimulator, loop.stim_delivery
    knows = stim is not None and delivery["unknown"] == 0 and (
        loop.consumers_at_start is not None or len(loop.stim_events) > 0)
    stimulator = None if stim is None else {
        "name": stim.name,
        "has_consumers_at_start": loop.consumers_at_start,
        "has_consumers_at_end": loop.consumers_at_end,
        "sent_with_consumer": delivery["with_consumer"],
        "sent_without_consumer": delivery["without_consumer"],
        "delivery_unknown": delivery["unknown"],
    }
    rec = loop.recorder
    recording = None if rec is None else {
        "directory": str(rec.directory),
        "samples_recorded": int(rec.n_samples),
        "samples_not_recorded": int(stream.n_written - rec.n_samples),
        "error": None if loop.recording_error is None else str(loop.recording_error),
    }
    return {
        "stream": stream.info.name,
        "n_chans": len(stream.ch_names),
        "sfreq": stream.sfreq,
        "samples_received": int(stream.n_written),
        "samples_lost": int(stream.n_lost),
        "gaps": int(stream.n_gaps),
        "decisions": len(loop.decisions),
        "windows_skipped": int(loop.n_skipped),
        "stimuli_fired": len(loop.stim_events),
        "stimuli_suppressed": int(loop.safety.n_suppressed),
        "markers_sent_with_consumer": delivery["with_consumer"] if knows else None,
        "stimulator": stimulator,
        "recording": recording,
        "suppressed_by_reason": dict(loop.safety.suppressed),
        "latency_ms": latency,
        "faults": {**stream_faults, **dict(loop.faults)},
        "stopped_reason": loop.stopped_reason,
        "duration_s": round(float(loop.wall_s), 3),
        "window_s": loop.window_s,
        "step_s": loop.step_s,
        "group_delay_s": loop.processing.group_delays,
        "safety": {"min_interval_s": loop.safety.min_interval_s,
                   "max_per_minute": loop.safety.max_per_minute,
                   "max_per_session": loop.safety.max_per_session,
                   "manual_stop": loop.safety.stop_reason or None},
    }


def make_session_report(directory: str | Path, *, html: bool = True) -> list[Path]:
    """Draw a recorded session: latency histograms, decisions and stimuli over time.

    Parameters
    ----------
    directory : str | Path
        Session folder (``bci stream --record DIR``).
    html : bool
        Also write ``report.html`` (an :class:`mne.Report` with the figures).

    Returns
    -------
    paths : list of Path
        The files written (``latency.png``, ``timeline.png``, ``report.html``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    directory = Path(directory)
    header = read_header(directory)
    events = read_events(directory)
    summary_path = directory / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    decisions = [e for e in events if e["kind"] == "decision"]
    stims = [e for e in events if e["kind"] == "stim"]
    suppressed = [e for e in events if e["kind"] == "suppressed"]
    faults = [e for e in events if e["kind"] not in ("decision", "stim", "suppressed",
                                                      "session_end", "output")]
    outputs = [e for e in events if e["kind"] == "output"]
    _, times, _ = read_signal(directory)
    t0 = float(times[0]) if times.size else 0.0
    written = []

    stages = ["acquire", "wait", "process", "decode", "act", "end_to_end"]
    fig, axes = plt.subplots(1, len(stages) + 1, figsize=(3.2 * (len(stages) + 1), 3.0))
    for ax, stage in zip(axes, stages, strict=False):
        values = [d["latency_ms"][stage] for d in decisions
                  if d.get("latency_ms", {}).get(stage) is not None]
        if values:
            ax.hist(values, bins=40, color="C0")
            ax.axvline(np.percentile(values, 99), color="C3", ls="--", label="p99")
            ax.legend(loc="upper right", fontsize=7)  # "best" is slow on long sessions
        ax.set(title=stage, xlabel="ms")
    stim_lat = [s["latency_ms"] for s in stims if s.get("latency_ms") is not None]
    if stim_lat:
        axes[-1].hist(stim_lat, bins=30, color="C2")
    axes[-1].set(title="sample -> stimulus", xlabel="ms")
    axes[0].set_ylabel("decisions")
    fig.suptitle(f"Latency, {header['info'].get('source', '')} "
                 f"({len(decisions)} decisions, {len(stims)} stimuli)")
    fig.tight_layout()
    path = directory / "latency.png"
    fig.savefig(path, dpi=100)
    written.append(path)
    figs = [fig]

    fig, ax = plt.subplots(figsize=(12, 3.5))
    if decisions:
        td = np.array([d["time"] for d in decisions], float) - t0
        score = [d.get("score") if d.get("score") is not None
                 else (max(d["proba"]) if d.get("proba") else np.nan) for d in decisions]
        ax.plot(td, np.asarray(score, float), lw=0.8, label="decision score")
    for s in stims:
        ax.axvline(s["time"] - t0, color="C2", lw=1.0, alpha=0.8)
    for s in suppressed:
        ax.axvline(s["time"] - t0, color="C7", lw=0.8, ls=":", alpha=0.8)
    for f in faults:
        if f.get("time") is not None:
            ax.axvline(f["time"] - t0, color="C3", lw=1.2, ls="--", alpha=0.8)
    ax.plot([], [], color="C2", label=f"stimulus ({len(stims)})")
    ax.plot([], [], color="C7", ls=":", label=f"suppressed ({len(suppressed)})")
    ax.plot([], [], color="C3", ls="--", label=f"fault ({len(faults)})")
    ax.set(xlabel="time since first sample (s)", ylabel="score",
           title="Decisions, stimuli and faults over time")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = directory / "timeline.png"
    fig.savefig(path, dpi=100)
    written.append(path)
    figs.append(fig)

    if outputs:  # a continuous decoder: its outputs, synaptic operations and step latency
        fig = _outputs_figure(plt, outputs, summary, t0)
        path = directory / "outputs.png"
        fig.savefig(path, dpi=100)
        written.append(path)
        figs.append(fig)

    if html:
        import mne

        report = mne.Report(title=f"bci session {directory.name}", verbose=False)
        report.add_html("<pre>" + json.dumps(summary, indent=2) + "</pre>", title="Summary")
        report.add_figure(figs[0], title="Latency")
        report.add_figure(figs[1], title="Timeline")
        if outputs:
            report.add_html(f"<p>{_continuous_line(summary, len(outputs))}</p>",
                            title="Continuous decoding")
            report.add_figure(figs[2], title="Outputs")
        path = directory / "report.html"
        report.save(path, overwrite=True, open_browser=False, verbose=False)
        written.append(path)
    for f in figs:
        plt.close(f)
    return written


def _continuous_line(summary: dict, n_outputs: int) -> str:
    """One line: bins decoded, synaptic operations per second, step latency p50/p99 (ms)."""
    lat = summary.get("latency_ms", {}).get("decode", {})
    synops = summary.get("synops_per_s")
    return (f"{n_outputs} bins decoded ({summary.get('backend', '?')}); synaptic operations "
            f"{'?' if synops is None else f'{synops:,.0f}'}/s; step latency p50 "
            f"{lat.get('p50', float('nan')):.3f} ms, p99 {lat.get('p99', float('nan')):.3f} ms")


def _outputs_figure(plt, outputs: list[dict], summary: dict, t0: float):
    """Each continuous output over time, titled with synaptic operations and latency."""
    names = list(outputs[0]["values"])
    t = np.array([e["time"] for e in outputs], float) - t0
    fig, ax = plt.subplots(figsize=(12, 3.5))
    for name in names:
        ax.plot(t, [e["values"][name] for e in outputs], lw=0.8, label=name)
    ax.set(xlabel="time since first sample (s)", ylabel="output",
           title=_continuous_line(summary, len(outputs)))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
