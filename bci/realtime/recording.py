"""Crash-safe session recording: every sample and event appended to disk as it arrives.

A session folder holds

- ``header.json``: channel names, sampling rate, unit, layout (written once, atomically);
- ``signal.f32``: the samples, float32, interleaved ``(n_samples, n_chans)`` row after row;
- ``timestamps.f64``: one float64 source timestamp (s) per sample;
- ``events.jsonl``: one JSON object a line (``kind``, ``time`` (s), ``index``,
  ``description``, details): decisions, stimuli, suppressed stimuli, stream faults;
- ``summary.json`` when the session ends (see :func:`bci.realtime.report.summarize`);
- ``summary.reserve`` while the session runs: disk space held back for the summary (removed
  when the summary is written).

Every write goes straight to the operating system, so a crash loses nothing already received;
a half-written last sample or line is ignored when reading back (:func:`read_session`). When a
write fails (a full disk, a removed drive), the files are cut back to the last whole sample and
line, so ``signal.f32`` and ``timestamps.f64`` always hold the same number of samples, and
:class:`RecordingError` is raised; the reserved space then lets the summary be written.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_positive, check_type, ensure_int
from .._config import writable_dir
from .._logging import logger as _root_logger

logger = _root_logger.getChild("realtime.recording")

HEADER, SIGNAL, TIMES, EVENTS, SUMMARY = ("header.json", "signal.f32", "timestamps.f64",
                                         "events.jsonl", "summary.json")
RESERVE = "summary.reserve"

_os_write = os.write  # the one OS-level write of this module (tests inject a full disk here)


class RecordingError(OSError):
    """A recording could not be written (disk full, drive removed...); nothing was torn."""


def check_session_dir(directory: str | os.PathLike) -> Path:
    """Check, before any work, that a new session can be recorded in ``directory``.

    Creates the folder if needed and writes a probe file (see :func:`bci._config.writable_dir`).

    Raises
    ------
    FileExistsError
        The folder already holds a recording (recordings are never overwritten).
    OSError
        The folder cannot be created or written to (a path under a file, a read-only or full
        file system...), with the folder, the reason and the fix in the message.
    """
    check_type(directory, (str, os.PathLike), "directory")
    directory = Path(directory)
    if (directory / SIGNAL).exists():
        raise FileExistsError(f"{directory} already holds a recording; choose a new "
                              "folder (recordings are never overwritten).")
    return writable_dir(directory, "session folder")


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


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (the OS may take a write in parts)."""
    view = memoryview(data)
    while view:
        n = _os_write(fd, view)
        view = view[n:]


class Recorder:
    """Append a session's samples and events to a folder, each write straight to disk.

    Parameters
    ----------
    directory : str | Path
        Session folder; created. Refuses a folder that already holds a recording (nothing is
        ever overwritten) and a place that cannot be written (checked with a probe file).
    ch_names : sequence of str
        Channels, in the row order of the chunks.
    sfreq : float
        Sampling rate (Hz, finite, > 0).
    unit : str
        Unit of the samples (``"V"`` for MNE data in volts).
    info : dict | None
        Extra facts stored in ``header.json`` (source name, decoder file...).
    reserve_bytes : int
        Disk space (bytes) held back in ``summary.reserve`` for the end of the session: when
        the disk fills up, it is released to write the last events and ``summary.json``.

    Attributes
    ----------
    n_samples : int
        Samples written (whole samples, in both data files).
    n_events : int
        Event lines written.
    error : RecordingError | None
        The first write that failed; later samples are refused (:meth:`write_chunk` raises),
        so the data files keep the samples up to the failure, whole and consistent.
    """

    def __init__(self, directory: str | Path, ch_names: Sequence[str], sfreq: float, *,
                 unit: str = "V", info: dict | None = None,
                 reserve_bytes: int = 256 * 1024) -> None:
        self.ch_names = [check_type(c, str, "each channel name") for c in ch_names]
        self.sfreq = check_positive(sfreq, "sfreq", unit="Hz")
        self.reserve_bytes = ensure_int(reserve_bytes, "reserve_bytes", minimum=0,
                                        what="bytes")
        self.directory = check_session_dir(directory)
        header = {"format": "bci-session", "version": 1, "ch_names": self.ch_names,
                  "sfreq": self.sfreq, "unit": unit, "dtype": "float32",
                  "layout": "interleaved (n_samples, n_chans), little-endian",
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "info": _jsonable(info or {})}
        self._fds: dict[str, int] = {}
        try:
            self._write_atomic(HEADER, json.dumps(header, indent=2))
            if self.reserve_bytes:
                self._write_atomic(RESERVE, "\0" * self.reserve_bytes)
            for name in (SIGNAL, TIMES, EVENTS):
                self._fds[name] = os.open(self.directory / name,
                                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as err:
            self._close_fds()
            raise RecordingError(
                f"Cannot start a recording in {self.directory}: {err.strerror or err}. Choose "
                f"a folder on a writable disk with free space (at least {self.reserve_bytes} "
                "bytes are held back for the summary)."
            ) from err
        self._lock = threading.Lock()
        self._offsets = {SIGNAL: 0, TIMES: 0, EVENTS: 0}
        self.n_samples = 0
        self.n_events = 0
        self.error: RecordingError | None = None
        self.closed = False

    # ------------------------------------------------------------------ writing
    def _write_atomic(self, name: str, text: str) -> Path:
        path = self.directory / name
        tmp = path.with_name(name + ".part")
        try:
            tmp.write_text(text)
            tmp.replace(path)
        except OSError:
            tmp.unlink(missing_ok=True)  # never leave an empty or torn .part behind
            raise
        return path

    def _fail(self, err: OSError, what: str) -> RecordingError:
        error = RecordingError(
            f"Recording to {self.directory} stopped: {what} failed ({err.strerror or err}); "
            f"the files hold the {self.n_samples} samples and {self.n_events} events written "
            "before, whole. Free disk space (or use another disk) for the next session."
        )
        error.__cause__ = err
        if self.error is None:
            self.error = error
            logger.error("%s", error)
        return error

    def _append(self, parts: dict[str, bytes]) -> None:
        """Append to several files, all or nothing: on an error cut them back and raise."""
        try:
            for name, data in parts.items():
                _write_all(self._fds[name], data)
        except OSError as err:
            for name in parts:
                try:
                    os.ftruncate(self._fds[name], self._offsets[name])
                except OSError as again:  # pragma: no cover (ftruncate to shrink)
                    logger.error("Could not cut %s back to %d bytes: %s", name,
                                 self._offsets[name], again)
            raise self._fail(err, "writing " + " and ".join(parts)) from err
        for name, data in parts.items():
            self._offsets[name] += len(data)

    def write_chunk(self, data: np.ndarray, timestamps: np.ndarray, first_index: int = -1
                    ) -> None:
        """Append samples ``(n_chans, n_new)`` and their timestamps, straight to disk.

        ``first_index`` (the stream's absolute index of the first sample) is checked against
        the samples already written, so a skipped or repeated chunk is caught.

        Raises
        ------
        RecordingError
            The write failed (disk full...), now or before: both data files hold the samples
            written before it, whole, and no later sample is accepted.
        """
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[0] != len(self.ch_names):
            raise ValueError(f"chunk must be ({len(self.ch_names)}, n_new), got {data.shape}.")
        timestamps = np.asarray(timestamps)
        if timestamps.shape != (data.shape[1],):
            raise ValueError(f"timestamps must be ({data.shape[1]},) for this chunk, got "
                             f"{timestamps.shape}.")
        if first_index >= 0 and first_index != self.n_samples:
            raise RuntimeError(f"Recorder got a chunk starting at sample {first_index} after "
                               f"{self.n_samples} samples; chunks must arrive in order.")
        with self._lock:
            self._check_open()
            if self.error is not None:
                raise self.error
            self._append({SIGNAL: np.ascontiguousarray(data.T, dtype="<f4").tobytes(),
                          TIMES: np.ascontiguousarray(timestamps, dtype="<f8").tobytes()})
            self.n_samples += data.shape[1]

    def write_event(self, kind: str, time: float, *, index: int | None = None,
                    description: str = "", **details) -> None:
        """Append one event line: ``kind``, source ``time`` (s), sample ``index``.

        Events are still accepted after a failed sample write (the session's last events
        say why it stopped).

        Raises
        ------
        RecordingError
            The line could not be written (it is then absent, not torn).
        """
        line = json.dumps(_jsonable({"kind": kind, "time": time, "index": index,
                                     "description": description or kind, **details}))
        with self._lock:
            self._check_open()
            self._append({EVENTS: (line + "\n").encode("utf-8")})
            self.n_events += 1

    def write_summary(self, summary: dict) -> Path:
        """Write ``summary.json`` (atomically), using the space held back for it.

        Raises
        ------
        RecordingError
            It could not be written (no torn or empty file is left behind).
        """
        self.release_reserve()
        try:
            return self._write_atomic(SUMMARY, json.dumps(_jsonable(summary), indent=2))
        except OSError as err:
            raise RecordingError(
                f"{SUMMARY} could not be written to {self.directory} "
                f"({err.strerror or err}); free disk space. The data files are complete up "
                f"to sample {self.n_samples}."
            ) from err

    def release_reserve(self) -> None:
        """Free the disk space held back for the end of the session (idempotent)."""
        (self.directory / RESERVE).unlink(missing_ok=True)

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"The recorder of {self.directory} is closed.")

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def close(self) -> None:
        """Close the files and release the reserved space (idempotent)."""
        with self._lock:
            if not self.closed:
                self._close_fds()
                self.release_reserve()
                self.closed = True

    def __enter__(self) -> Recorder:
        """Return the recorder."""
        return self

    def __exit__(self, *exc) -> None:
        """Close the recorder."""
        self.close()


def read_header(directory: str | Path) -> dict:
    """Read the ``header.json`` of a session folder (``FileNotFoundError`` if it is none)."""
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
    """Read the samples ``(n_chans, n_samples)`` float32, their timestamps and the header.

    Only whole samples present in both files are returned.
    """
    directory = Path(directory)
    header = read_header(directory)
    n_chans = len(header["ch_names"])
    raw = np.fromfile(directory / SIGNAL, dtype="<f4")
    times = np.fromfile(directory / TIMES, dtype="<f8")
    n = min(raw.size // n_chans, times.size)
    return raw[:n * n_chans].reshape(n, n_chans).T, times[:n], header


def read_outputs(directory: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read the continuous outputs of a session (``"output"`` events of a continuous decoder).

    Returns
    -------
    values : ndarray, shape (n_outputs, n_bins)
        One column per decoded sample, in order.
    timestamps : ndarray, shape (n_bins,)
        The decoded samples' timestamps (s).
    indices : ndarray of int, shape (n_bins,)
        Their indices in the recorded signal.
    names : list of str
        The outputs' names (e.g. ``["vx", "vy"]``).
    """
    read_header(directory)
    events = [e for e in read_events(directory) if e.get("kind") == "output"]
    if not events:
        return np.zeros((0, 0)), np.zeros(0), np.zeros(0, dtype=int), []
    names = list(events[0]["values"])
    values = np.array([[e["values"][n] for n in names] for e in events]).T
    return (values, np.array([e["time"] for e in events], dtype=float),
            np.array([e["index"] for e in events], dtype=int), names)


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
        default), with annotations ``"<kind>/<description>"`` on each event's sample: the
        sample index it records (decisions, stimuli, stream faults), else the last sample
        stamped at or before its time (events outside the recording are clipped to its ends),
        so that lost samples and clock jumps do not shift later annotations. The per-sample
        source timestamps are returned by :func:`read_signal`.
    """
    import mne

    data, times, header = read_signal(directory)
    info = mne.create_info(header["ch_names"], header["sfreq"],
                           ch_types=header.get("info", {}).get("ch_types", "eeg"))
    raw = mne.io.RawArray(data.astype(np.float64), info, verbose=False)
    events = read_events(directory)
    if events and times.size:
        n, sfreq = len(times), float(header["sfreq"])
        monotonic = bool(np.all(np.diff(times) >= 0))
        onsets, durations, descriptions = [], [], []
        for ev in events:
            t, index = ev.get("time"), ev.get("index")
            if isinstance(index, int) and 0 <= index < n:
                # the sample the event belongs to: exact across lost samples and clock jumps
                onset = index / sfreq
            elif t is None:
                continue
            elif monotonic:  # the recorded sample stamped last at or before the event
                pos = int(np.searchsorted(times, float(t), side="right")) - 1
                onset = min(max(pos, 0), n - 1) / sfreq
            else:
                onset = float(np.clip(float(t) - float(times[0]), 0, raw.times[-1]))
            onsets.append(onset)
            durations.append(0.0)
            descriptions.append(f"{ev['kind']}/{ev.get('description', '')}"[:200])
        raw.set_annotations(mne.Annotations(onsets, durations, descriptions))
    return raw


@dataclass
class SessionStimuli:
    """The stimuli of a recorded session (:func:`read_stimuli`).

    Attributes
    ----------
    t_trigger : ndarray, shape (n_stimuli,)
        Time of the window end that triggered each stimulus (s).
    t_fired : ndarray, shape (n_stimuli,)
        Time each stimulus was delivered: just after the stimulator returned, e.g. after the
        LSL marker was sent (s).
    span_s : tuple of float
        Times of the first and the last recorded sample (s).
    clock_offset_s : float
        Session-clock time of time 0 of these times: subtracted from the recorded times (0
        unless an index channel maps them to a replayed signal).
    """

    t_trigger: np.ndarray
    t_fired: np.ndarray
    span_s: tuple[float, float]
    clock_offset_s: float


def read_stimuli(directory: str | Path, *, index_channel: str | None = None) -> SessionStimuli:
    """Read the stimuli of a session, on the clock of the replayed signal when there is one.

    A session fed by a replayed file (``bci play``) can carry a channel holding each sample's
    index in that file; times are then seconds from the file's sample 0, comparable with
    annotations of the file and with an offline replay
    (:func:`bci.realtime.session.replay_offline`). The session-clock time of sample 0 is the
    median of ``timestamp - index / sfreq`` over the recorded samples (robust to jitter and
    to lost samples).

    Parameters
    ----------
    directory : str | Path
        Session folder written by :class:`Recorder`.
    index_channel : str | None
        Name of the recorded channel that carries the replayed file's sample index; None keeps
        the session's clock (the source timestamps, e.g. LSL time).

    Returns
    -------
    stimuli : SessionStimuli

    Raises
    ------
    ValueError
        If ``index_channel`` is not a recorded channel, or the session holds no sample.
    """
    directory = Path(directory)
    signal, times, header = read_signal(directory)
    if times.size == 0:
        raise ValueError(f"The session {directory} holds no sample: there is no clock to put "
                         "its stimuli on.")
    if index_channel is None:
        offset, span = 0.0, (float(times[0]), float(times[-1]))
    else:
        check_type(index_channel, str, "index_channel")
        if index_channel not in header["ch_names"]:
            raise ValueError(f"index_channel={index_channel!r} is not a channel of the session "
                             f"{directory}; it has {header['ch_names']}.")
        sfreq = float(header["sfreq"])
        index = signal[header["ch_names"].index(index_channel)].astype(np.int64)
        offset = float(np.median(times - index / sfreq))
        span = (index[0] / sfreq, index[-1] / sfreq)
    stims = [e for e in read_events(directory) if e["kind"] == "stim"]
    return SessionStimuli(t_trigger=np.array([e["t_trigger"] for e in stims]) - offset,
                          t_fired=np.array([e["time"] for e in stims]) - offset,
                          span_s=span, clock_offset_s=offset)
