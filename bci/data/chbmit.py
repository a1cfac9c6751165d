"""CHB-MIT Scalp EEG (PhysioNet ``chbmit`` 1.0.0): summary parser, EDF reader, MOABB dataset.

The CHB-MIT database (Shoeb 2009; Goldberger et al. 2000, PhysioNet) holds long scalp EEG
recordings of 23 paediatric patients with intractable seizures (24 cases: ``chb21`` is ``chb01``
recorded 1.5 years later), 256 Hz, mostly 23 bipolar channels of the 10-20 system, one-hour
(some two- or four-hour) EDF files, 198 annotated seizures in all. Seizure onsets and offsets
are given, per EDF file, in each case's summary file. PhysioNet publishes it as::

    chb01/chb01-summary.txt
    chb01/chb01_01.edf
    chb01/chb01_02.edf
    ...
    chb24/chb24-summary.txt

- :func:`read_chbmit_summary` and :func:`read_chbmit_channels` parse a summary file: the seizure
  intervals (seconds from the start of each file) and the channel list in force for each file.
- :func:`load_chbmit_subject` reads one case's EDF files as :class:`mne.io.Raw` objects carrying
  the seizures as ``"seizure"`` annotations; :func:`seizure_intervals` reads them back.
- :class:`CHBMIT` is the same as a MOABB dataset (``get_data`` gives
  ``{subject: {session: {run: Raw}}}``).
- :func:`split_files` holds out the last files with and without seizures of a case: a split by
  file for evaluation on continuous recordings.

Where the files are looked for, in this order: the ``path`` argument; the MNE config key
``MNE_DATASETS_CHBMIT_PATH``; ``MNE_DATA``; ``~/mne_data`` (environment variables or
``~/.mne/mne-python.json``, read with :func:`mne.get_config`, never written). Under that folder
a case is ``<folder>/chb01`` (a copy of the PhysioNet tree) or, the MNE/MOABB way,
``<folder>/MNE-chbmit-data/chb01``. Missing files are downloaded from PhysioNet into
``<folder>/MNE-chbmit-data/chbNN`` (with ``download=True``, the default, and internet access);
otherwise a :class:`FileNotFoundError` names the case, the folders searched and the fix.
"""

from __future__ import annotations

import logging
import numbers
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np
from moabb.datasets.base import BaseDataset
from moabb.datasets.preprocessing import FixedPipeline

from .._checks import check_fraction

__all__ = ["CHBMIT", "CHBMIT_SUBJECTS", "CHBMIT_URL", "SEIZURE_DESCRIPTION",
           "common_eeg_channels", "load_chbmit_subject", "read_chbmit_channels",
           "read_chbmit_summary", "seizure_intervals", "split_files"]

logger = logging.getLogger(__name__)

#: Where PhysioNet serves the database (one folder ``chbNN`` a case).
CHBMIT_URL = "https://physionet.org/files/chbmit/1.0.0/"
#: Case numbers (``chb01`` ... ``chb24``).
CHBMIT_SUBJECTS = tuple(range(1, 25))
#: Description of the seizure annotations.
SEIZURE_DESCRIPTION = "seizure"

_CONFIG_KEY = "MNE_DATASETS_CHBMIT_PATH"
_MNE_FOLDER = "MNE-chbmit-data"
_FIX = (
    "Pass path= (the folder that holds chbNN/, or MNE-chbmit-data/chbNN/), set the MNE config "
    f"key {_CONFIG_KEY} or MNE_DATA to it (environment variable or "
    f"mne.set_config('{_CONFIG_KEY}', path)), or download the case from {CHBMIT_URL} "
    "(download=True does it when this machine has internet access)."
)

# Summary-file lines (whitespace and case tolerant).
_RE_FILE = re.compile(r"file\s+name\s*:\s*(\S+)", re.I)
_RE_FILE_TIME = re.compile(r"file\s+(start|end)\s+time\s*:\s*(\d{1,2}):(\d{2}):(\d{2})", re.I)
_RE_N_SEIZURES = re.compile(r"number\s+of\s+seizures\s+in\s+file\s*:\s*(\d+)", re.I)
_RE_SEIZURE = re.compile(
    r"seizure(?:\s+(\d+))?\s+(start|end)\s+time\s*:\s*(\d+(?:\.\d*)?)\s*(?:seconds|secs?|s)?",
    re.I,
)
_RE_CHANNEL = re.compile(r"channel\s+(\d+)\s*:\s*(.*)", re.I)
_RE_CHANNEL_SECTION = re.compile(r"channels\s+(in\s+edf\s+files|changed)\s*:?", re.I)
_RE_SFREQ = re.compile(r"data\s+sampling\s+rate\s*:\s*(\d+(?:\.\d*)?)\s*hz", re.I)
# Key words that make a line one of the above; such a line that does not parse is an error.
_KEYED = re.compile(r"(file\s|number\s+of\s+seizures|seizure\s|channel|data\s+sampling)", re.I)
# Dummy channels of the EDF files: "-" or "." (MNE renames repeats "--0", "--1", ...).
_RE_DUMMY = re.compile(r"[-.](?:-\d+)?")


@dataclass
class _FileEntry:
    """One ``File Name:`` block of a summary file."""

    name: str
    index: int  # position among the summary's files
    line: int
    channels: list[str]
    start_time_s: float | None = None
    end_time_s: float | None = None
    n_seizures: int | None = None
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)


def _malformed(path: Path, lineno: int, line: str, expected: str) -> ValueError:
    return ValueError(
        f"Malformed line {lineno} of the CHB-MIT summary {path}: {line!r}; expected {expected}. "
        "Fix the line (the summary files of PhysioNet chbmit 1.0.0 use this format) or "
        "re-download the file."
    )


def _check_entry(path: Path, entry: _FileEntry) -> None:
    """Check that a file block lists as many valid seizures as it declares."""
    if len(entry.starts) != len(entry.ends):
        raise ValueError(
            f"CHB-MIT summary {path}, file {entry.name} (line {entry.line}): "
            f"{len(entry.starts)} seizure start time(s) but {len(entry.ends)} end time(s); "
            "each seizure needs a 'Seizure Start Time' and a 'Seizure End Time' line."
        )
    if entry.n_seizures is not None and entry.n_seizures != len(entry.starts):
        raise ValueError(
            f"CHB-MIT summary {path}, file {entry.name} (line {entry.line}): "
            f"'Number of Seizures in File: {entry.n_seizures}' but {len(entry.starts)} "
            "seizure(s) listed; fix the count or the seizure lines."
        )
    for onset, offset in zip(entry.starts, entry.ends, strict=False):
        if offset <= onset:
            raise ValueError(
                f"CHB-MIT summary {path}, file {entry.name}: seizure end {offset} s is not "
                f"after its start {onset} s; the seizure lines are out of order or mistyped."
            )


def _parse_summary(path: str | os.PathLike) -> tuple[list[_FileEntry], float | None]:
    """Parse a ``chbNN-summary.txt``: its file blocks in order and the sampling rate (Hz)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No CHB-MIT summary file at {path}. Each case folder chbNN/ holds a "
            f"chbNN-summary.txt; copy it from {CHBMIT_URL}chbNN/ next to the EDF files."
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    entries: list[_FileEntry] = []
    channels: list[str] = []
    sfreq = None
    current: _FileEntry | None = None
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or set(line) <= {"*", "=", "-"}:
            continue
        if m := _RE_CHANNEL_SECTION.fullmatch(line):
            channels = []  # a new list: the files listed so far keep theirs
        elif m := _RE_CHANNEL.fullmatch(line):
            channels.append(m.group(2).strip())
        elif m := _RE_FILE.fullmatch(line):
            if current is not None:
                _check_entry(path, current)
            if any(e.name == m.group(1) for e in entries):
                raise ValueError(
                    f"CHB-MIT summary {path} lists {m.group(1)} twice (line {lineno}); "
                    "remove the duplicate block."
                )
            current = _FileEntry(name=m.group(1), index=len(entries), line=lineno,
                                 channels=channels)
            entries.append(current)
        elif m := _RE_SFREQ.fullmatch(line):
            sfreq = float(m.group(1))
        elif (m := _RE_FILE_TIME.fullmatch(line)) or (m := _RE_N_SEIZURES.fullmatch(line)) \
                or (m := _RE_SEIZURE.fullmatch(line)):
            if current is None:
                raise ValueError(
                    f"Line {lineno} of the CHB-MIT summary {path} ({line!r}) comes before any "
                    "'File Name:' line; every file property must follow its file's name."
                )
            if m.re is _RE_FILE_TIME:
                # Clock times; those after midnight keep counting (24:01:21), as written.
                seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))
                if m.group(1).lower() == "start":
                    current.start_time_s = float(seconds)
                else:
                    current.end_time_s = float(seconds)
            elif m.re is _RE_N_SEIZURES:
                current.n_seizures = int(m.group(1))
            else:
                (current.starts if m.group(2).lower() == "start" else current.ends).append(
                    float(m.group(3)))
        elif _KEYED.match(line):
            expected = {
                "file": "'File Name: chb01_03.edf' or 'File Start Time: 13:43:04'",
                "numb": "'Number of Seizures in File: 1'",
                "seiz": "'Seizure Start Time: 2996 seconds' (or 'Seizure 1 Start Time: ...')",
                "chan": "'Channel 1: FP1-F7' or 'Channels changed:'",
                "data": "'Data Sampling Rate: 256 Hz'",
            }[line[:4].lower()]
            raise _malformed(path, lineno, line, expected)
        else:
            logger.warning("Ignoring unrecognised line %d of %s: %r", lineno, path, line)
    if current is not None:
        _check_entry(path, current)
    if not entries:
        raise ValueError(
            f"CHB-MIT summary {path} lists no file ('File Name: chbNN_MM.edf' lines); is it a "
            "chbNN-summary.txt from PhysioNet chbmit?"
        )
    return entries, sfreq


def read_chbmit_summary(path: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    r"""Read the seizure intervals of every file listed in a CHB-MIT summary file.

    Understands both spellings of the seizure lines (``Seizure Start Time: 2996 seconds`` and
    ``Seizure 1 Start Time: 2996 seconds``), and skips the other lines of the format
    (sampling rate, channel lists, ``File Start Time`` / ``File End Time``).

    Parameters
    ----------
    path : str | os.PathLike
        A ``chbNN-summary.txt`` file.

    Returns
    -------
    seizures : dict of str to list of (float, float)
        For each EDF file name listed (``"chb01_03.edf"``), in the summary's order, its seizures
        as ``(onset_s, offset_s)`` in seconds from the start of that file; an empty list for a
        file without seizures.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a line of the format cannot be parsed, a file declares a different number of
        seizures than it lists, a seizure ends before it starts, or no file is listed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "chb01-summary.txt"
    >>> _ = f.write_text("File Name: chb01_03.edf\nNumber of Seizures in File: 1\n"
    ...                  "Seizure Start Time: 2996 seconds\nSeizure End Time: 3036 seconds\n")
    >>> read_chbmit_summary(f)
    {'chb01_03.edf': [(2996.0, 3036.0)]}
    """
    entries, _ = _parse_summary(path)
    return {e.name: list(zip(e.starts, e.ends, strict=False)) for e in entries}


def read_chbmit_channels(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read the channel list in force for every file listed in a CHB-MIT summary file.

    A summary starts with ``Channels in EDF Files:`` and may change the list later
    (``Channels changed:``); each file gets the last list given before its ``File Name:`` line.

    Parameters
    ----------
    path : str | os.PathLike
        A ``chbNN-summary.txt`` file.

    Returns
    -------
    channels : dict of str to list of str
        For each EDF file name listed, the channel labels as the summary writes them (bipolar
        derivations such as ``"FP1-F7"``; dummy channels ``"-"``; repeats such as ``"T8-P8"``
        kept). An empty list when the summary gives no list before that file. The
        :class:`mne.io.Raw` read from the file names repeats ``"T8-P8-0"``, ``"T8-P8-1"``
        (see :func:`load_chbmit_subject`).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_chbmit_summary`.
    """
    entries, _ = _parse_summary(path)
    return {e.name: list(e.channels) for e in entries}


def seizure_intervals(raw: mne.io.BaseRaw, description: str = SEIZURE_DESCRIPTION) -> np.ndarray:
    """Seizure intervals of a recording, from its annotations.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        A recording, e.g. from :func:`load_chbmit_subject` (cropping keeps it right: MNE
        clips the annotations).
    description : str
        Description of the seizure annotations (``"seizure"``).

    Returns
    -------
    intervals : ndarray, shape (n_seizures, 2)
        Onset and offset of each seizure in seconds from the first sample of ``raw``, sorted
        by onset (float64; ``(0, 2)`` when there is none). This is the ``intervals`` argument
        of :func:`bci.data.seizure.sliding_windows`.

    Examples
    --------
    >>> raw = mne.io.RawArray(np.zeros((1, 1000)), mne.create_info(1, 100.0, "eeg"),
    ...                       verbose=False)
    >>> _ = raw.set_annotations(mne.Annotations([2.0], [1.5], "seizure"))
    >>> seizure_intervals(raw)
    array([[2. , 3.5]])
    """
    if not isinstance(raw, mne.io.BaseRaw):
        raise TypeError(f"raw must be an mne.io.BaseRaw, got {type(raw).__name__}.")
    ann = raw.annotations
    keep = np.asarray(ann.description) == description
    # Raw annotations count from orig_time (the measurement date) or, without one, from the
    # raw's sample 0; either way first_time is where this raw starts on that axis.
    onset = np.asarray(ann.onset, dtype=float)[keep] - raw.first_time
    duration = np.asarray(ann.duration, dtype=float)[keep]
    order = np.argsort(onset, kind="stable")
    return np.column_stack([onset[order], onset[order] + duration[order]]).reshape(-1, 2)


def _check_subject(subject) -> int:
    if isinstance(subject, bool) or not isinstance(subject, numbers.Integral):
        raise TypeError(
            f"subject must be an int case number in 1..24 (chb01..chb24), got "
            f"{type(subject).__name__} {subject!r}."
        )
    if int(subject) not in CHBMIT_SUBJECTS:
        raise ValueError(f"subject must be a CHB-MIT case number in 1..24, got {subject}.")
    return int(subject)


def _case(subject: int) -> str:
    return f"chb{subject:02d}"


def _data_root(path: str | os.PathLike | None) -> Path:
    """Return the folder to search: ``path``, else MNE_DATASETS_CHBMIT_PATH, MNE_DATA, ~/mne_data.

    See :func:`bci._config.dataset_path` (no sub-folder: MNE_DATA itself is searched).
    """
    from .._config import dataset_path

    return dataset_path("CHBMIT", None, path)


def _candidates(subject: int, root: Path) -> list[Path]:
    return [root / _case(subject), root / _MNE_FOLDER / _case(subject)]


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests  # comes with pooch (MOABB's downloader)

    return (requests.exceptions.RequestException, ConnectionError, TimeoutError)


def _download(subject: int, folder: Path, names: Sequence[str], force_update: bool) -> None:
    """Download ``names`` of case ``subject`` from PhysioNet into ``folder`` (with pooch)."""
    import pooch

    for name in names:
        url = f"{CHBMIT_URL}{_case(subject)}/{name}"
        if (folder / name).is_file() and not force_update:
            continue
        logger.info("Downloading %s to %s", url, folder)
        if force_update and (folder / name).is_file():
            (folder / name).unlink()
        try:
            pooch.retrieve(url, known_hash=None, fname=name, path=str(folder), progressbar=False)
        except _network_errors() as err:
            raise FileNotFoundError(
                f"CHB-MIT case {_case(subject)} (subject {subject}): {name} is not in {folder} "
                f"and could not be downloaded from {url} ({type(err).__name__}: {err}). {_FIX}"
            ) from err


def _subject_files(subject: int, path: str | os.PathLike | None, files: Sequence[str] | None,
                   *, download: bool, force_update: bool = False,
                   seizure_files_only: bool = False
                   ) -> tuple[Path, list[_FileEntry], float | None]:
    """Find (downloading if allowed) a case's summary and the EDF files asked for.

    Returns the case folder, the summary blocks of the files asked for (summary order; only
    those with seizures if ``seizure_files_only``) and the summary's sampling rate.
    """
    subject = _check_subject(subject)
    root = _data_root(path)
    case = _case(subject)
    summary_name = f"{case}-summary.txt"
    candidates = _candidates(subject, root)
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is None:
        if not download:
            raise FileNotFoundError(
                f"CHB-MIT subject {subject}: no folder {case} under {root} (looked for "
                f"{' and '.join(str(c) for c in candidates)}). {_FIX}"
            )
        folder = candidates[1]
    summary = folder / summary_name
    if download and (force_update or not summary.is_file()):
        _download(subject, folder, [summary_name], force_update)
    if not summary.is_file():
        raise FileNotFoundError(
            f"CHB-MIT subject {subject}: the summary file {summary} is missing (it lists the "
            f"files and seizures of {case}). {_FIX}"
        )
    entries, sfreq = _parse_summary(summary)
    if files is not None:
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        wanted = [str(f) if str(f).lower().endswith(".edf") else f"{f}.edf" for f in files]
        listed = {e.name: e for e in entries}
        unknown = [w for w in wanted if w not in listed]
        if unknown:
            raise ValueError(
                f"CHB-MIT subject {subject}: {unknown} not listed in {summary}; it lists "
                f"{', '.join(listed)}."
            )
        entries = [e for e in entries if e.name in set(wanted)]
    if seizure_files_only:
        entries = [e for e in entries if e.starts]
    if download:
        _download(subject, folder, [e.name for e in entries], force_update)
    missing = [e.name for e in entries if not (folder / e.name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CHB-MIT subject {subject}: {len(missing)} EDF file(s) listed in {summary} are "
            f"not in {folder}: {', '.join(missing)}. Ask for the files present with files=, "
            f"or: {_FIX}"
        )
    return folder, entries, sfreq


def _channel_type(name: str) -> str:
    upper = name.upper()
    if _RE_DUMMY.fullmatch(name) or upper.startswith("VNS"):
        return "misc"
    if upper.startswith(("ECG", "EKG")):
        return "ecg"
    return "eeg"


def _read_run(fname: Path, entry: _FileEntry, sfreq: float | None, *, preload: bool
              ) -> mne.io.BaseRaw:
    """Read one EDF file, set channel types and the seizure annotations of its summary block."""
    with warnings.catch_warnings():
        # CHB-MIT repeats labels ("T8-P8", "-"); MNE numbers the repeats, which is documented.
        warnings.filterwarnings("ignore", message="Channel names are not unique")
        raw = mne.io.read_raw_edf(fname, preload=preload, verbose="error")
    if entry.channels and len(entry.channels) != len(raw.ch_names):
        logger.warning("%s has %d channels but its summary lists %d: %s", fname.name,
                       len(raw.ch_names), len(entry.channels), entry.channels)
    if sfreq is not None and not np.isclose(raw.info["sfreq"], sfreq):
        logger.warning("%s is sampled at %g Hz but its summary says %g Hz", fname.name,
                       raw.info["sfreq"], sfreq)
    types = {ch: _channel_type(ch) for ch in raw.ch_names}
    types = {ch: kind for ch, kind in types.items() if kind != "eeg"}
    if types:
        raw.set_channel_types(types, verbose="error")
    duration_s = raw.n_times / raw.info["sfreq"]
    for onset, offset in zip(entry.starts, entry.ends, strict=False):
        if offset > duration_s + 1.0 / raw.info["sfreq"]:
            logger.warning("%s: seizure %g-%g s ends after the recording (%g s)", fname.name,
                           onset, offset, duration_s)
    seizures = mne.Annotations(onset=np.asarray(entry.starts) + raw.first_time,
                               duration=np.asarray(entry.ends) - np.asarray(entry.starts),
                               description=[SEIZURE_DESCRIPTION] * len(entry.starts),
                               orig_time=raw.annotations.orig_time)
    raw.set_annotations(raw.annotations + seizures, verbose="error")
    return raw


def load_chbmit_subject(subject: int, path: str | os.PathLike | None = None,
                        files: Sequence[str] | None = None, *, download: bool = True,
                        preload: bool = False) -> list[mne.io.BaseRaw]:
    """Read the EDF files of one CHB-MIT case, with its seizures as annotations.

    Parameters
    ----------
    subject : int
        Case number, 1 to 24 (``chb01`` ... ``chb24``).
    path : str | os.PathLike | None
        Folder holding ``chbNN/`` or ``MNE-chbmit-data/chbNN/``; when None, the MNE config key
        ``MNE_DATASETS_CHBMIT_PATH``, then ``MNE_DATA``, then ``~/mne_data``.
    files : sequence of str | None
        EDF file names to read (``"chb01_03.edf"``, the ``.edf`` may be left out), all listed
        in the case's summary; None reads every file the summary lists.
    download : bool
        Download missing files (the summary first, then the EDF files asked for) from
        PhysioNet into ``<folder>/MNE-chbmit-data/chbNN/`` (or into an existing
        ``<folder>/chbNN/``). A case is 1 to 4 GB: use ``files`` to take a part.
    preload : bool
        Load the samples into memory now (an hour of 23 channels is 170 MB as float64).

    Returns
    -------
    raws : list of mne.io.Raw
        One per file, in the summary's order. Signals in volts; ``raw.filenames`` names the
        file. Channel names are the EDF labels (bipolar derivations, e.g. ``"FP1-F7"``, no
        montage); repeated labels are numbered by MNE (the two ``"T8-P8"`` of most cases become
        ``"T8-P8-0"`` and ``"T8-P8-1"``, dummy channels ``"-"`` become ``"--0"``, ``"--1"``...).
        Channel types: ``eeg``, except dummy channels (``"-"``, ``"."``) and ``VNS`` (``misc``)
        and ``ECG``/``EKG`` (``ecg``). Each seizure of the summary is an annotation
        ``"seizure"`` (onset and duration in seconds); see :func:`seizure_intervals`.

    Raises
    ------
    FileNotFoundError
        If the case folder, its summary or an EDF file is missing and cannot be downloaded
        (offline, or ``download=False``); the message names the subject, the paths searched
        and how to fix it.
    ValueError
        If ``subject`` is not in 1..24, ``files`` names a file the summary does not list, or
        the summary is malformed.
    """
    folder, entries, sfreq = _subject_files(subject, path, files, download=download)
    raws = []
    for entry in entries:
        logger.debug("Reading %s", folder / entry.name)
        raws.append(_read_run(folder / entry.name, entry, sfreq, preload=preload))
    return raws


def _run_name(index: int, file_name: str) -> str:
    """MOABB run name: index in the summary then the file stem, ``"2chb0103"``."""
    return f"{index}{re.sub(r'[^A-Za-z0-9]', '', Path(file_name).stem)}"


class CHBMIT(BaseDataset):
    """CHB-MIT Scalp EEG database (PhysioNet chbmit 1.0.0) as a MOABB dataset.

    24 cases (subjects 1..24 for ``chb01`` ... ``chb24``; ``chb21`` is the patient of
    ``chb01`` 1.5 years later), one session ``"0"`` each, one run per EDF file, named
    ``"<index><file stem>"`` where index is the file's position in the case's summary
    (``chb01_03.edf`` is run ``"2chb0103"``). Each run is the :class:`mne.io.Raw` of
    :func:`load_chbmit_subject`: 256 Hz, bipolar channel names as in the EDF file (repeats
    numbered by MNE: ``"T8-P8-0"``, ``"T8-P8-1"``), seizures as ``"seizure"`` annotations
    with their true durations.

    MOABB has no seizure paradigm, so use the dataset without one: ``get_data`` returns
    ``{subject: {"0": {run: Raw}}}`` unchanged (this dataset's default pipeline keeps the
    seizure annotations as they are, where MOABB's would cut every one to ``interval``).
    ``paradigm`` is ``"seizure"``, which no MOABB paradigm accepts; ``events`` and
    ``interval`` are informative only. To window a run for detection::

        from bci.data.seizure import sliding_windows
        raw = data[1]["0"]["2chb0103"]
        X, y, t = sliding_windows(raw.get_data(picks="eeg"), raw.info["sfreq"], 4.0, 1.0,
                                  seizure_intervals(raw))

    (``X``: ``(n_windows, n_chans, n_window_samples)``, ``y`` 1 for seizure windows, ``t``
    the window end in seconds); or :func:`mne.make_fixed_length_epochs` and label each epoch
    by its overlap with :func:`seizure_intervals`. The files of a case differ in channels
    where the summary says ``Channels changed``: pick a common set before stacking.

    Parameters
    ----------
    path : str | os.PathLike | None
        Folder holding ``chbNN/`` or ``MNE-chbmit-data/chbNN/``; None: the MNE config key
        ``MNE_DATASETS_CHBMIT_PATH``, then ``MNE_DATA``, then ``~/mne_data``. A ``path`` given
        to :meth:`data_path` wins.
    download : bool
        Download missing files from PhysioNet (see :func:`load_chbmit_subject`); when False,
        missing files raise :class:`FileNotFoundError`.
    seizure_files_only : bool
        Only the files with at least one seizure (7 of the 42 files of ``chb01``): much less
        to download and read, but no long seizure-free stretches for false-alarm rates.
    subjects : sequence of int | None
        Load only these cases (MOABB's ``selected_subjects``); all when None.

    Notes
    -----
    Data: Goldberger et al. (2000), PhysioBank, PhysioToolkit, and PhysioNet, Circulation 101,
    e215; recordings: Shoeb (2009), Application of machine learning to epileptic seizure
    onset detection and treatment, PhD thesis, MIT. Open Data Commons Attribution licence.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, download: bool = True,
                 seizure_files_only: bool = False, subjects: Sequence[int] | None = None):
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str, os.PathLike or None, got "
                            f"{type(path).__name__}.")
        self.path = path
        self.download = bool(download)
        self.seizure_files_only = bool(seizure_files_only)
        super().__init__(
            subjects=list(CHBMIT_SUBJECTS),
            sessions_per_subject=1,
            events={SEIZURE_DESCRIPTION: 1},
            code="CHB-MIT",
            interval=[0, 1],
            paradigm="seizure",
            doi="10.13026/C2K01R",
            selected_subjects=subjects,
        )

    def _create_process_pipeline(self):
        # MOABB's default step rebuilds annotations from events with the fixed `interval`
        # duration, which would cut every seizure to 1 s: keep the runs as read instead.
        return FixedPipeline([])

    def _entries(self, subject, path=None, force_update=False):
        return _subject_files(subject, self.path if path is None else path, None,
                              download=self.download, force_update=force_update,
                              seizure_files_only=self.seizure_files_only)

    def data_path(self, subject, path=None, force_update=False, update_path=None,
                  verbose=None) -> list[str]:
        """Local paths of a case's summary and EDF files, downloading missing ones if allowed.

        Parameters
        ----------
        subject : int
            Case number, 1 to 24.
        path : str | os.PathLike | None
            Folder to look in (overrides the dataset's ``path``); see the class docstring.
        force_update : bool
            Download again even when the files are present (needs ``download=True``).
        update_path, verbose
            Ignored (MOABB's signature); the MNE config is never written.

        Returns
        -------
        paths : list of str
            The summary file then the EDF files (summary order).

        Raises
        ------
        FileNotFoundError
            If files are missing and cannot be downloaded; names the subject, the paths and
            the fix.
        """
        if subject not in self.all_subjects:
            raise ValueError(f"subject must be one of {self.all_subjects} (CHB-MIT), got "
                             f"{subject!r}.")
        folder, entries, _ = self._entries(subject, path, force_update)
        return [str(folder / f"{_case(subject)}-summary.txt"),
                *(str(folder / e.name) for e in entries)]

    def _get_single_subject_data(self, subject):
        if subject not in self.all_subjects:
            raise ValueError(f"subject must be one of {self.all_subjects} (CHB-MIT), got "
                             f"{subject!r}.")
        folder, entries, sfreq = self._entries(subject)
        runs = {}
        for entry in entries:
            run = _run_name(entry.index, entry.name)
            logger.debug("Reading %s as run %s", folder / entry.name, run)
            runs[run] = _read_run(folder / entry.name, entry, sfreq, preload=False)
        return {"0": runs}


_RE_REPEAT = re.compile(r"-\d+$")  # MNE numbers repeated labels: "T8-P8-0", "T8-P8-1"


def common_eeg_channels(raws: Sequence[mne.io.BaseRaw]) -> list[str]:
    """EEG channels present in every recording, in the first one's order.

    The montage of a CHB-MIT case may change between files (the summary's ``Channels changed``
    lines); models need one channel set. Electrode names start with a letter, so a trailing
    ``-<digits>`` is MNE's numbering of a repeated label: of ``T8-P8-0`` and ``T8-P8-1`` (one
    derivation recorded twice) only the first is kept.

    Parameters
    ----------
    raws : sequence of mne.io.BaseRaw
        E.g. from :func:`load_chbmit_subject`.

    Returns
    -------
    channels : list of str

    Raises
    ------
    ValueError
        If no EEG channel is common to all recordings.
    """
    if not raws:
        raise ValueError("common_eeg_channels needs at least one recording.")
    per_file = [[ch for ch, kind in zip(r.ch_names, r.get_channel_types(), strict=True)
                 if kind == "eeg"] for r in raws]
    common = set(per_file[0]).intersection(*per_file[1:])
    channels = [ch for ch in per_file[0] if ch in common
                and not (_RE_REPEAT.search(ch) and not ch.endswith("-0"))]
    if not channels:
        listing = "; ".join(f"{Path(r.filenames[0]).name if r.filenames[0] else i}: "
                            f"{', '.join(c) or 'no EEG channel'}"
                            for i, (r, c) in enumerate(zip(raws, per_file, strict=True)))
        raise ValueError(
            f"No EEG channel is common to all {len(raws)} recordings ({listing}). Use files "
            "that share a montage (the summary's 'Channels changed' lines say where it "
            "changes), e.g. load_chbmit_subject(..., files=[...]) or the recipe's --files.")
    return channels


def split_files(intervals: Sequence[np.ndarray], *, test_fraction: float = 0.3,
                names: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """Split a case's files into training and held-out files, keeping whole recordings apart.

    The held-out files are the last ``test_fraction`` (rounded, at least one, and leaving at
    least one for training) of the files with seizures, in the given (the summary's) order,
    plus the last ``test_fraction`` (rounded, at least one) of the seizure-free files; the other
    files train. Test files are never seen in training: their continuous recordings score a
    detector as it would run.

    Parameters
    ----------
    intervals : sequence of array, shape (n_seizures, 2)
        Seizure onsets/offsets of each file (:func:`seizure_intervals`), in the case's order.
    test_fraction : float
        Fraction of the files held out, in (0, 1).
    names : sequence of str | None
        File names, for the error message.

    Returns
    -------
    train, test : list of int
        Positions in ``intervals``, increasing.

    Raises
    ------
    ValueError
        When fewer than 2 files hold seizures (one to train on, one held out).

    Examples
    --------
    >>> one, none = np.array([[1.0, 2.0]]), np.zeros((0, 2))
    >>> split_files([one, none, one, none, one])
    ([0, 1, 2], [3, 4])
    """
    test_fraction = check_fraction(test_fraction, "test_fraction", allow_zero=False)
    with_seizures = [i for i, iv in enumerate(intervals) if len(iv)]
    quiet = [i for i, iv in enumerate(intervals) if not len(iv)]
    if len(with_seizures) < 2:
        names = [str(n) for n in names] if names is not None else [
            f"#{i}" for i in range(len(intervals))]
        raise ValueError(
            f"A split by file needs at least 2 files with seizures (one to train on, one held "
            f"out); the {len(intervals)} file(s) given ({', '.join(names)}) have "
            f"{len(with_seizures)}. Use more files of the case (its summary lists which hold "
            "seizures).")
    n_seizure = min(len(with_seizures) - 1,
                    max(1, int(round(test_fraction * len(with_seizures)))))
    n_quiet = min(len(quiet), max(1, int(round(test_fraction * len(quiet)))))
    test = sorted(with_seizures[len(with_seizures) - n_seizure:]
                  + quiet[len(quiet) - n_quiet:])
    return [i for i in range(len(intervals)) if i not in test], test
