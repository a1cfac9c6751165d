"""Recorded sessions as standard files: BIDS (mne-bids), EDF+ or FIF (``bci session-export``).

A session folder (``bci stream --record DIR``, :mod:`bci.realtime.recording`) is read, never
modified, and written as

- **BIDS** (:func:`export_session_bids`, needs ``bci[bids]``): the EEG (BrainVision, float32,
  as mne-bids converts an in-memory recording), ``channels.tsv``, ``events.tsv`` with every
  decision, stimulus, suppressed stimulus and stream fault (``trial_type`` is
  ``"<kind>/<description>"``, e.g. ``decision/left_hand``, ``stim/code 1``,
  ``suppressed/min_interval``; extra columns ``kind``, ``lsl_time``, ``score``, ``proba``,
  ``latency_ms``, ``reason``), and the EEG sidecar (``*_eeg.json``) with the session's
  provenance under ``BciSession``: decoder file (and its SHA-256), policy, stimulator,
  source, the LSL time of the first sample and the summary; a new dataset's
  ``dataset_description.json`` names bci in ``GeneratedBy``;
- **EDF+** or **FIF** (:func:`export_session`): the EEG with the same events as annotations.

Event onsets are their samples (``index / sfreq`` from the first recorded sample, as
:func:`~bci.realtime.recording.read_session` places them), so lost samples and clock jumps do
not shift them; EDF stores samples as 16-bit integers (resolution: the physical range / 65535),
BrainVision and FIF as float32 (exact for the float32 recording).

A session still being written (its recorder holds ``summary.reserve``; ``summary.json`` is
written when the session ends) is refused, as is a folder that is not a session.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._checks import check_bool, check_option, check_type
from .._logging import logger as _root_logger
from .recording import (
    HEADER,
    RESERVE,
    SIGNAL,
    SUMMARY,
    read_events,
    read_header,
    read_session,
    read_signal,
)

logger = _root_logger.getChild("realtime.session_export")

PIP_LINE = "pip install 'bci[bids]'"

#: Event fields written as extra columns of events.tsv / annotation extras.
EVENT_COLUMNS = ("kind", "lsl_time", "score", "proba", "latency_ms", "reason")


def check_session_complete(directory: str | os.PathLike, *,
                           allow_incomplete: bool = False) -> Path:
    """Check that ``directory`` holds a finished recorded session; return it as a Path.

    Parameters
    ----------
    directory : str | Path
        Session folder (``bci stream --record DIR``).
    allow_incomplete : bool
        Accept a session without ``summary.json`` (one whose recording process crashed):
        everything recorded up to then is exported.

    Raises
    ------
    FileNotFoundError
        The folder does not exist, or is not a session (no ``header.json`` or samples).
    ValueError
        ``header.json`` is not a bci session header.
    RuntimeError
        The session is still being written (``summary.reserve`` present, no
        ``summary.json``), unless ``allow_incomplete``.
    """
    check_type(directory, (str, os.PathLike), "directory")
    allow_incomplete = check_bool(allow_incomplete, "allow_incomplete")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"No session folder {directory} (it does not exist or is not "
                                "a folder); give the DIR of `bci stream --record DIR`.")
    if not (directory / HEADER).is_file() or not (directory / SIGNAL).is_file():
        raise FileNotFoundError(f"{directory} is not a bci session folder (no {HEADER} and "
                                f"{SIGNAL}); give the DIR of `bci stream --record DIR`.")
    header = read_header(directory)
    if not isinstance(header, dict) or header.get("format") != "bci-session":
        raise ValueError(f"{directory / HEADER} is not a bci session header (format "
                         f"{header.get('format') if isinstance(header, dict) else None!r}, "
                         "expected 'bci-session').")
    if not (directory / SUMMARY).is_file() and not allow_incomplete:
        why = ("it is still being written (its recorder holds " + RESERVE + ")"
               if (directory / RESERVE).exists() else "it has no " + SUMMARY)
        raise RuntimeError(
            f"The session {directory} is not finished: {why}. Export it once `bci stream` "
            "has ended (it writes summary.json); if the recording process crashed, export "
            "what was recorded with --allow-incomplete (allow_incomplete=True).")
    return directory


def _check_outside(path: Path, directory: Path, what: str) -> None:
    """Refuse to write ``path`` inside the session folder (it is never modified)."""
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return
    raise ValueError(f"{what} {path} is inside the session folder {directory}, which is never "
                     "modified; write it elsewhere.")


def _event_extras(ev: dict) -> dict[str, Any]:
    """Return the extra columns of one event (None where they do not apply)."""
    latency = ev.get("latency_ms")
    if isinstance(latency, dict):  # a decision: its end-to-end latency
        latency = latency.get("end_to_end")
    proba = ev.get("proba")
    return {"kind": ev.get("kind"),
            "lsl_time": ev.get("time"),
            "score": ev.get("score"),
            "proba": None if proba is None else json.dumps(proba),
            "latency_ms": latency,
            "reason": ev.get("reason", ev.get("request"))}


def _event_onsets(events: list[dict], times: np.ndarray, sfreq: float, raw_times: np.ndarray
                  ) -> tuple[list[float], list[str], list[dict]]:
    """Onsets (s), descriptions and extras of the events, placed as ``read_session`` does.

    The event's recorded sample index when valid, else the last sample stamped at or before
    its time (clipped to the recording), else its time from the first sample.
    """
    n = times.size
    monotonic = bool(np.all(np.diff(times) >= 0))
    onsets, descriptions, extras = [], [], []
    if n == 0:
        return onsets, descriptions, extras
    for ev in events:
        t, index = ev.get("time"), ev.get("index")
        if isinstance(index, int) and 0 <= index < n:
            onset = index / sfreq
        elif t is None:
            continue
        elif monotonic:
            pos = int(np.searchsorted(times, float(t), side="right")) - 1
            onset = min(max(pos, 0), n - 1) / sfreq
        else:
            onset = float(np.clip(float(t) - float(times[0]), 0, raw_times[-1]))
        onsets.append(onset)
        descriptions.append(f"{ev['kind']}/{ev.get('description', '')}"[:200])
        extras.append(_event_extras(ev))
    return onsets, descriptions, extras


def session_raw(directory: str | os.PathLike, *, allow_incomplete: bool = False):
    """Read a finished session as an MNE Raw: samples, events as annotations, date.

    Annotations are those of :func:`~bci.realtime.recording.read_session`
    (``"<kind>/<description>"`` on each event's sample), with the extra fields of
    :data:`EVENT_COLUMNS` as annotation extras; the measurement date is the session's
    creation time (UTC).

    Returns
    -------
    raw : mne.io.RawArray
    provenance : dict
        What the BIDS sidecar records (see :func:`export_session_bids`).
    """
    import mne

    directory = check_session_complete(directory, allow_incomplete=allow_incomplete)
    header = read_header(directory)
    raw = read_session(directory)
    data_times = read_signal(directory)[1]
    onsets, descriptions, extras = _event_onsets(read_events(directory), data_times,
                                                 float(header["sfreq"]), raw.times)
    if sorted(descriptions) != sorted(raw.annotations.description):  # pragma: no cover
        raise RuntimeError("bci.realtime.session_export places events differently from "
                           "read_session; report this bug.")
    raw.set_annotations(mne.Annotations(onsets, np.zeros(len(onsets)), descriptions,
                                        extras=extras))
    created = header.get("created")
    if created:
        raw.set_meas_date(_dt.datetime.fromisoformat(created).astimezone(_dt.timezone.utc))
    times = data_times
    summary_path = directory / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    info = dict(header.get("info", {}))
    decoder = info.get("decoder")
    sha = {}
    if decoder and Path(decoder).is_file():  # which decoder file, exactly
        sha["DecoderSHA256"] = hashlib.sha256(Path(decoder).read_bytes()).hexdigest()
    provenance = {
        "SessionFolder": str(directory.resolve()),
        "Created": created,
        "Unit": header.get("unit"),
        "FirstSampleLSLTime": float(times[0]) if times.size else None,
        "Complete": summary is not None,
        **{k[:1].upper() + k[1:]: v for k, v in info.items()},
        **sha,
        "Summary": summary,
    }
    return raw, provenance


def export_session(directory: str | os.PathLike, out: str | os.PathLike, *,
                   fmt: Literal["edf", "fif"] = "fif", overwrite: bool = False,
                   allow_incomplete: bool = False) -> Path:
    """Write a recorded session as one EDF+ or FIF file, events as annotations.

    Parameters
    ----------
    directory : str | Path
        Finished session folder (never modified).
    out : str | Path
        File to write (``.edf``; ``.fif``, MNE's convention ``*_raw.fif``/``*_eeg.fif``).
    fmt : {"edf", "fif"}
        ``"edf"`` (EDF+, 16-bit: needs ``edfio``, ``bci[bids]``) or ``"fif"`` (float32).
        EDF data records are whole (MNE writes 1-s records): the last one is padded with
        the last sample's values and marked ``BAD_ACQ_SKIP`` by MNE, so the file may be up to
        one record longer than the session; the recorded samples and the events are
        unchanged.
    overwrite : bool
        Replace an existing ``out``.
    allow_incomplete : bool
        See :func:`check_session_complete`.

    Returns
    -------
    path : Path
    """
    check_option("format", fmt, ["edf", "fif"])
    check_type(out, (str, os.PathLike), "out")
    overwrite = check_bool(overwrite, "overwrite")
    out = Path(out)
    raw, _ = session_raw(directory, allow_incomplete=allow_incomplete)
    _check_outside(out, Path(directory), "The output file")
    if out.suffix.lower() != f".{fmt}":
        raise ValueError(f"The output file of format {fmt!r} must end in .{fmt}, got {out}.")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another file or pass overwrite=True "
                              "(--overwrite).")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "fif":
        raw.save(out, overwrite=overwrite, verbose=False)
    else:
        try:
            import edfio  # noqa: F401
        except ImportError as err:
            raise ImportError(f"EDF export needs edfio: {PIP_LINE}.") from err
        import warnings

        with warnings.catch_warnings():  # documented: EDF records are whole
            warnings.filterwarnings("ignore", message="EDF format requires equal-length",
                                    category=RuntimeWarning)
            raw.export(out, fmt="edf", overwrite=overwrite, verbose=False)
    logger.info("Exported %s to %s (%d samples, %d events).", directory, out, raw.n_times,
                len(raw.annotations))
    return out


def export_session_bids(directory: str | os.PathLike, bids_root: str | os.PathLike, *,
                        subject: str = "01", task: str = "bci", session: str | None = None,
                        run: str | None = None, line_freq: float | None = None,
                        overwrite: bool = False, allow_incomplete: bool = False):
    """Write a recorded session as BIDS EEG with mne-bids (``bci[bids]``).

    Parameters
    ----------
    directory : str | Path
        Finished session folder (never modified).
    bids_root : str | Path
        BIDS dataset root (created; other subjects/sessions in it are kept).
    subject, task, session, run : str
        BIDS entities (alphanumeric labels).
    line_freq : float | None
        Power-line frequency (Hz) for the sidecar's ``PowerLineFrequency``; ``n/a`` when
        None.
    overwrite : bool
        Replace this subject/session/task/run's files if they exist.
    allow_incomplete : bool
        See :func:`check_session_complete`.

    Returns
    -------
    bids_path : mne_bids.BIDSPath
        The EEG file written; :func:`mne_bids.read_raw_bids` reads it back with its events.
    """
    try:
        import mne_bids
        import pybv  # noqa: F401 (mne-bids writes BrainVision with it)
    except ImportError as err:
        raise ImportError(f"BIDS export needs mne-bids and pybv ({err.name} is missing): "
                          f"{PIP_LINE}.") from err
    check_type(bids_root, (str, os.PathLike), "bids_root")
    for name, value in (("subject", subject), ("task", task), ("session", session),
                        ("run", run)):
        check_type(value, (str, type(None)), name)
        if value is not None and (not value or not value.isalnum()):
            raise ValueError(f"The BIDS {name} must be a non-empty alphanumeric label, got "
                             f"{value!r} (e.g. {name}='01').")
    bids_root = Path(bids_root)
    raw, provenance = session_raw(directory, allow_incomplete=allow_incomplete)
    _check_outside(bids_root, Path(directory), "The BIDS root")
    if line_freq is not None:
        from .._checks import check_positive

        raw.info["line_freq"] = check_positive(line_freq, "line_freq", unit="Hz")
    bids_path = mne_bids.BIDSPath(subject=subject, session=session, task=task, run=run,
                                  datatype="eeg", root=bids_root)
    if not (bids_root / "dataset_description.json").is_file():  # a new dataset: say who made it
        from .. import __version__

        bids_root.mkdir(parents=True, exist_ok=True)
        mne_bids.make_dataset_description(
            path=bids_root, name="bci sessions", verbose=False,
            generated_by=[{"Name": "bci", "Version": __version__,
                           "Description": "bci session-export of `bci stream --record` "
                                          "sessions"}])
    descriptions = {
        "kind": "bci event kind: decision, stim, suppressed or a stream fault (gap, "
                "clock_jump, stall, lost, reconnected, nan, flat, fault, session_end)",
        "lsl_time": "time of the event on the session's source clock (LSL clock, s)",
        "score": "decision score of the policy",
        "proba": "decoder class probabilities (JSON list, in the decoder's class order)",
        "latency_ms": "decision: end-to-end latency; stimulus: trigger sample to "
                      "stimulus delivery (ms)",
        "reason": "stimulus request reason (also of suppressed stimuli)",
    }
    import warnings

    with warnings.catch_warnings():
        # an in-memory recording is converted to BrainVision: expected, not a user error
        warnings.filterwarnings("ignore", message=".*[Cc]onverting.*", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*No line frequency.*")
        try:
            mne_bids.write_raw_bids(raw, bids_path, format="BrainVision", allow_preload=True,
                                    overwrite=overwrite, extra_columns_descriptions=descriptions
                                    if raw.annotations.extras else None, verbose=False)
        except FileExistsError as err:
            raise FileExistsError(
                f"This recording is already in the BIDS dataset {bids_root} ({err}); give "
                "another subject/session/task/run, or replace it with overwrite=True "
                "(--overwrite).") from err
    sidecar = bids_path.copy().update(suffix="eeg", extension=".json")
    mne_bids.update_sidecar_json(sidecar, {
        "BciSession": provenance,
        "SoftwareFilters": "n/a",
        "RecordingType": "continuous",
    }, verbose=False)
    logger.info("Exported %s to BIDS %s (%d samples, %d events).", directory, bids_path.fpath,
                raw.n_times, len(raw.annotations))
    return bids_path

