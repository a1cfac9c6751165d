"""Crash-safe session recording: every sample and event appended to disk as it arrives.

A session folder holds

- ``header.json``: channel names, sampling rate, unit, layout (written once, atomically);
- ``signal.f32``: the samples, float32, interleaved ``(n_samples, n_chans)`` row after row;
- ``timestamps.f64``: one float64 source timestamp (s) per sample;
- ``events.jsonl``: one JSON object a line (``kind``, ``time`` (s), ``index``,
  ``description``, details): decisions, stimuli, suppressed stimuli, stream faults;
- ``summary.json`` when the session ends (see :func:`bci.realtime.report.summarize`).

Every write is flushed at once, so a crash loses nothing already received; a half-written last
sample or line is ignored when reading back (:func:`read_session`).
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._logging import logger as _root_logger

logger = _root_logger.getChild("realtime.recording")

HEADER, SIGNAL, TIMES, EVENTS, SUMMARY = ("header.json", "signal.f32", "timestamps.f64",
                                         "events.jsonl", "summary.json")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class Recorder:
    """Append a session's samples and events to a folder, flushing every write.

    Parameters
    ----------
    directory : str | Path
        Session folder; created. Refuses a folder that already holds a recording (nothing is
        ever overwritten).
    ch_names : sequence of str
        Channels, in the row order of the chunks.
    sfreq : float
        Sampling rate (Hz).
    unit : str
        Unit of the samples (``"V"`` for MNE data in volts).
    info : dict | None
        Extra facts stored in ``header.json`` (source name, decoder file...).
    """

    def __init__(self, directory: str | Path, ch_names: Sequence[str], sfreq: float, *,
                 unit: str = "V", info: dict | None = None) -> None:
        self.directory = Path(directory)
        if (self.directory / SIGNAL).exists():
            raise FileExistsError(f"{self.directory} already holds a recording; choose a new "
                                  "folder (recordings are never overwritten).")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ch_names = list(ch_names)
        self.sfreq = float(sfreq)
        header = {"format": "bci-session", "version": 1, "ch_names": self.ch_names,
                  "sfreq": self.sfreq, "unit": unit, "dtype": "float32",
                  "layout": "interleaved (n_samples, n_chans), little-endian",
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "info": _jsonable(info or {})}
        tmp = self.directory / (HEADER + ".part")
        tmp.write_text(json.dumps(header, indent=2))
        tmp.replace(self.directory / HEADER)
        self._signal = open(self.directory / SIGNAL, "ab")  # noqa: SIM115 (closed in close())
        self._times = open(self.directory / TIMES, "ab")  # noqa: SIM115
        self._events = open(self.directory / EVENTS, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()
        self.n_samples = 0
        self.n_events = 0
        self.closed = False

    def write_chunk(self, data: np.ndarray, timestamps: np.ndarray, first_index: int = -1
                    ) -> None:
        """Append samples ``(n_chans, n_new)`` and their timestamps; flushed at once.

        ``first_index`` (the stream's absolute index of the first sample) is checked against
        the samples already written, so a skipped or repeated chunk is caught.
        """
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[0] != len(self.ch_names):
            raise ValueError(f"chunk must be ({len(self.ch_names)}, n_new), got {data.shape}.")
        if first_index >= 0 and first_index != self.n_samples:
            raise RuntimeError(f"Recorder got a chunk starting at sample {first_index} after "
                               f"{self.n_samples} samples; chunks must arrive in order.")
        with self._lock:
            if self.closed:
                raise RuntimeError(f"The recorder of {self.directory} is closed.")
            self._signal.write(np.ascontiguousarray(data.T, dtype="<f4").tobytes())
            self._times.write(np.ascontiguousarray(timestamps, dtype="<f8").tobytes())
            self._signal.flush()
            self._times.flush()
            self.n_samples += data.shape[1]

    def write_event(self, kind: str, time: float, *, index: int | None = None,
                    description: str = "", **details) -> None:
        """Append one event line (flushed): ``kind``, source ``time`` (s), sample ``index``."""
        line = json.dumps(_jsonable({"kind": kind, "time": time, "index": index,
                                     "description": description or kind, **details}))
        with self._lock:
            if self.closed:
                raise RuntimeError(f"The recorder of {self.directory} is closed.")
            self._events.write(line + "\n")
            self._events.flush()
            self.n_events += 1

    def write_summary(self, summary: dict) -> Path:
        """Write ``summary.json`` (atomically)."""
        path = self.directory / SUMMARY
        tmp = path.with_name(SUMMARY + ".part")
        tmp.write_text(json.dumps(_jsonable(summary), indent=2))
        tmp.replace(path)
        return path

    def close(self) -> None:
        """Close the files (idempotent)."""
        with self._lock:
            if not self.closed:
                for f in (self._signal, self._times, self._events):
                    f.close()
                self.closed = True

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_header(directory: str | Path) -> dict:
    """The ``header.json`` of a session folder (``FileNotFoundError`` if it is none)."""
    path = Path(directory) / HEADER
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a bci session folder (no {HEADER}); "
                                "record one with `bci stream --record DIR`.")
    return json.loads(path.read_text())


def read_events(directory: str | Path) -> list[dict]:
    """Every complete event line of a session (a torn last line is skipped)."""
    path = Path(directory) / EVENTS
    events = []
    if not path.is_file():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("Skipping a torn line of %s (the session was cut short).", path)
    return events


def read_signal(directory: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Samples ``(n_chans, n_samples)`` float32, their timestamps and the header.

    Only whole samples present in both files are returned.
    """
    directory = Path(directory)
    header = read_header(directory)
    n_chans = len(header["ch_names"])
    raw = np.fromfile(directory / SIGNAL, dtype="<f4")
    times = np.fromfile(directory / TIMES, dtype="<f8")
    n = min(raw.size // n_chans, times.size)
    return raw[:n * n_chans].reshape(n, n_chans).T, times[:n], header


def read_session(directory: str | Path):
    """Read a recorded session back as an MNE Raw with its events as annotations.

    Parameters
    ----------
    directory : str | Path
        Session folder written by :class:`Recorder`.

    Returns
    -------
    raw : mne.io.RawArray
        The samples in the recorded unit (channels typed as in the header, ``eeg`` by
        default), with annotations ``"<kind>/<description>"`` at each event's time relative
        to the first sample (events outside the recording are clipped to its ends). The
        per-sample source timestamps are returned by :func:`read_signal`.
    """
    import mne

    data, times, header = read_signal(directory)
    info = mne.create_info(header["ch_names"], header["sfreq"],
                           ch_types=header.get("info", {}).get("ch_types", "eeg"))
    raw = mne.io.RawArray(data.astype(np.float64), info, verbose=False)
    events = read_events(directory)
    if events and times.size:
        onsets, durations, descriptions = [], [], []
        for ev in events:
            t = ev.get("time")
            if t is None:
                continue
            onset = float(t) - float(times[0])
            if not 0 <= onset <= raw.times[-1] + 1.0 / header["sfreq"]:
                onset = float(np.clip(onset, 0, raw.times[-1]))
            onsets.append(onset)
            durations.append(0.0)
            descriptions.append(f"{ev['kind']}/{ev.get('description', '')}"[:200])
        raw.set_annotations(mne.Annotations(onsets, durations, descriptions))
    return raw
