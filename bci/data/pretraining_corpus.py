"""Recordings for self-supervised pretraining: sources, subject selection and a prepared cache.

A *source* lists subjects and loads one subject's continuous runs on demand
(``load_subject(subject)`` -> ``[(session, run, raw), ...]``):

- :class:`MoabbRecordings`: every run of a MOABB dataset (``dataset.get_data(subjects=[s])``),
  e.g. Kalunga2016;
- :class:`EEGBCIRecordings`: PhysioNet EEG Motor Movement/Imagery (MOABB's ``PhysionetMI``) with
  every stored run, the eyes-open/closed baselines and executed movements included;
- :class:`RawRecordings`: any function returning a subject's ``Raw`` objects (synthetic data).

``subjects``/``exclude_subjects`` choose the subjects, so that leave-one-subject-out pretraining
never reads the held-out subject's signal for training. :class:`PretrainingCorpus` prepares every
chosen subject once (:func:`bci.data.pretraining.prepare_raw`: channel mapping, 0.5-45 Hz
band-pass, resampling, robust scaling) into float32 ``.npy`` files, one subject in memory at a
time, and lists the usable recordings: too-short ones, and runs identical to a held-out
subject's (Kalunga2016 stores one recording as subject 3 run 1 and subject 7 run 0), are left
out with a logged reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_type, ensure_int
from .._logging import logger
from .pretraining import (
    NEUROGPT_CHANNELS,
    ChunkSpec,
    RecordingTooShortError,
    map_channels,
    prepare_raw,
)

__all__ = ["EEGBCIRecordings", "MoabbRecordings", "PretrainingCorpus", "RawRecordings",
           "Recording", "channel_report", "fingerprint", "pretraining_source", "total_minutes"]

_SAFE = re.compile(r"[^A-Za-z0-9]+")


# --------------------------------------------------------------------------------------------
# sources of recordings
# --------------------------------------------------------------------------------------------
def _select_subjects(name: str, available: Sequence[int], subjects, exclude_subjects
                     ) -> list[int]:
    available = [int(s) for s in available]

    def check(values, what):
        if values is None:
            return None
        values = [ensure_int(s, f"{what} entry") for s in np.atleast_1d(values).tolist()]
        missing = [s for s in values if s not in available]
        if missing:
            raise ValueError(f"{what} {missing} not in {name}; it has subjects "
                             f"{available}.")
        return values

    chosen = check(subjects, "subjects")
    excluded = set(check(exclude_subjects, "exclude_subjects") or [])
    chosen = [s for s in (available if chosen is None else chosen) if s not in excluded]
    if not chosen:
        raise ValueError(f"No subject of {name} left to pretrain on (subjects={subjects}, "
                         f"exclude_subjects={exclude_subjects}).")
    return chosen


def _excluded(candidates, chosen: Sequence[int]) -> list[int]:
    """Subjects of ``candidates`` not in ``chosen`` (the held-out ones)."""
    if candidates is None:
        return []
    return [int(s) for s in np.atleast_1d(candidates).tolist() if int(s) not in chosen]


def fingerprint(raw) -> str:
    """Hash of a recording's EEG samples (float32), to find one recording stored twice.

    Parameters
    ----------
    raw : mne.io.BaseRaw

    Returns
    -------
    fingerprint : str
        16 hexadecimal digits of the SHA-256 of the EEG data.
    """
    import mne

    data = raw.get_data(picks=mne.pick_types(raw.info, eeg=True, exclude=[]))
    return hashlib.sha256(np.ascontiguousarray(data, dtype=np.float32).tobytes()).hexdigest()[:16]


class RawRecordings:
    """Recordings given by a function that loads one subject's runs (e.g. synthetic data).

    Parameters
    ----------
    name : str
        Name of the source (a folder name in the cache, the row of reports).
    subjects : sequence of int
        The source's subjects.
    load : callable
        ``load(subject)`` -> list of :class:`mne.io.BaseRaw`, the subject's runs; called only
        when the subject is prepared.
    exclude_subjects : sequence of int | None
        Subjects left out (e.g. the held-out subject of leave-one-subject-out); recordings of
        the other subjects identical to one of theirs are left out too
        (:class:`PretrainingCorpus`).
    """

    def __init__(self, name: str, subjects: Sequence[int],
                 load: Callable[[int], Sequence[Any]], *,
                 exclude_subjects: Sequence[int] | None = None) -> None:
        check_type(name, str, "name")
        if not callable(load):
            raise TypeError(f"load must be a function subject -> list of Raw, got {load!r}.")
        self.name = name
        self.subjects = _select_subjects(name, subjects, None, exclude_subjects)
        self.excluded = _excluded(exclude_subjects, self.subjects)
        self._load = load

    def load_subject(self, subject: int) -> list[tuple[str, str, Any]]:
        """Return ``(session, run, raw)`` for each run of ``subject``."""
        return [("0", str(i), raw) for i, raw in enumerate(self._load(subject))]


class MoabbRecordings:
    """Every run of the chosen subjects of a MOABB dataset, read with ``dataset.get_data``.

    Parameters
    ----------
    dataset : str | moabb.datasets.base.BaseDataset
        A name (:func:`bci.data.loaders.list_datasets`) or instance.
    subjects : sequence of int | None
        Subjects to use; all when None.
    exclude_subjects : sequence of int | None
        Subjects left out (the held-out subject of leave-one-subject-out pretraining).
    dataset_params : dict | None
        Parameters of a dataset given by name (:func:`bci.data.loaders.get_dataset`).
    """

    def __init__(self, dataset: Any, *, subjects: Sequence[int] | None = None,
                 exclude_subjects: Sequence[int] | None = None,
                 dataset_params: dict | None = None) -> None:
        from .loaders import get_dataset

        self.dataset = get_dataset(dataset, **(dataset_params or {}))
        self.name = type(self.dataset).__name__
        self.subjects = _select_subjects(self.name, self.dataset.subject_list, subjects,
                                         exclude_subjects)
        self.excluded = _excluded(exclude_subjects, self.subjects)

    def load_subject(self, subject: int) -> list[tuple[str, str, Any]]:
        """Return ``(session, run, raw)`` for each run of ``subject`` (MOABB's order)."""
        from .loaders import missing_data_as_file_not_found

        with missing_data_as_file_not_found(self.dataset, [subject]):
            data = self.dataset.get_data(subjects=[subject])[subject]
        return [(str(session), str(run), raw) for session, runs in data.items()
                for run, raw in runs.items()]


class EEGBCIRecordings:
    """PhysioNet EEG Motor Movement/Imagery (MOABB's ``PhysionetMI``), every run of a subject.

    MOABB's ``PhysionetMI`` reads only the task runs (and never the eyes-open/closed baselines
    1 and 2); this source reads every run through MNE's ``eegbci`` fetcher
    (:func:`mne.datasets.eegbci.load_data`, then :func:`mne.io.read_raw_edf` and
    :func:`mne.datasets.eegbci.standardize`, which turns the EDF names ``"Fc5."`` into
    ``"FC5"``).

    Parameters
    ----------
    subjects : sequence of int | None
        Subjects 1-109; None: every subject with at least one run stored locally.
    exclude_subjects : sequence of int | None
        Subjects left out (the held-out subject of leave-one-subject-out pretraining).
    runs : sequence of int | None
        Runs 1-14 to read (missing ones are downloaded by MNE where there is internet); None:
        the runs stored under the MNE data folder (``MNE_DATASETS_EEGBCI_PATH`` or
        ``MNE_DATA``), nothing downloaded.
    """

    name = "PhysionetMI"
    _ALL_SUBJECTS = tuple(range(1, 110))

    def __init__(self, *, subjects: Sequence[int] | None = None,
                 exclude_subjects: Sequence[int] | None = None,
                 runs: Sequence[int] | None = None) -> None:
        if runs is not None:
            runs = [ensure_int(r, "runs entry", minimum=1, maximum=14) for r in runs]
        self.runs = runs
        if subjects is None and runs is None:
            subjects = [s for s in self._ALL_SUBJECTS if self._local_runs(s)]
            if not subjects:
                raise FileNotFoundError(
                    f"No PhysioNet EEGBCI run is stored under {self._root()}; set "
                    "MNE_DATASETS_EEGBCI_PATH (or MNE_DATA) to the folder holding "
                    "MNE-eegbci-data, or name the subjects and runs to download.")
        self.subjects = _select_subjects(self.name, self._ALL_SUBJECTS, subjects,
                                         exclude_subjects)
        self.excluded = _excluded(exclude_subjects, self.subjects)

    @staticmethod
    def _root() -> Path:
        from .._config import dataset_path

        return dataset_path("EEGBCI")

    def _run_path(self, subject: int, run: int) -> Path:
        return (self._root() / "MNE-eegbci-data" / "files" / "eegmmidb" / "1.0.0"
                / f"S{subject:03d}" / f"S{subject:03d}R{run:02d}.edf")

    def _local_runs(self, subject: int) -> list[int]:
        return [r for r in range(1, 15) if self._run_path(subject, r).is_file()]

    def load_subject(self, subject: int) -> list[tuple[str, str, Any]]:
        """Return ``("0", run, raw)`` for each run of ``subject`` (runs in number order)."""
        import mne
        from mne.datasets import eegbci

        runs = self._local_runs(subject) if self.runs is None else self.runs
        if not runs:
            from .._config import config_help

            raise FileNotFoundError(
                f"PhysionetMI subject {subject}: no run stored under "
                f"{self._run_path(subject, 1).parent}; {config_help('EEGBCI')}.")
        paths = eegbci.load_data(subject, runs, path=str(self._root()), update_path=False,
                                 verbose=False)
        out = []
        for run, path in zip(runs, paths, strict=True):
            raw = mne.io.read_raw_edf(path, preload=False, verbose=False)
            eegbci.standardize(raw)
            out.append(("0", str(run), raw))
        return out


def pretraining_source(name: str, *, subjects: Sequence[int] | None = None,
                       exclude_subjects: Sequence[int] | None = None,
                       dataset_params: dict | None = None):
    """Return the pretraining source of a dataset name.

    ``"PhysionetMI"`` gives :class:`EEGBCIRecordings` (every stored run, baselines included);
    any other MOABB name a :class:`MoabbRecordings`.

    Parameters
    ----------
    name : str
        Dataset name.
    subjects, exclude_subjects : sequence of int | None
        Subject selection (see the source classes).
    dataset_params : dict | None
        ``runs`` for PhysionetMI; dataset parameters for a MOABB dataset.

    Returns
    -------
    source : EEGBCIRecordings | MoabbRecordings
    """
    check_type(name, str, "name")
    if name in ("PhysionetMI", "EEGBCI"):
        return EEGBCIRecordings(subjects=subjects, exclude_subjects=exclude_subjects,
                                **(dataset_params or {}))
    return MoabbRecordings(name, subjects=subjects, exclude_subjects=exclude_subjects,
                           dataset_params=dataset_params)


def channel_report(sources: Iterable[Any], channels: Sequence[str] = NEUROGPT_CHANNELS):
    """Report how each source's montage maps onto the model's channels.

    Loads the first run of each source's first subject only.

    Parameters
    ----------
    sources : iterable of source
        Recording sources (:func:`pretraining_source`, :class:`RawRecordings`...).
    channels : sequence of str
        The model's channels.

    Returns
    -------
    report : pandas.DataFrame
        One row per source: ``dataset``, ``n_eeg`` (recording EEG channels), ``n_present``,
        ``present`` (model channels filled, ``model=recording`` where the names differ),
        ``absent`` (model channels masked) and ``dropped`` (recording channels unused).
    """
    import mne
    import pandas as pd

    rows = []
    for source in sources:
        _, _, raw = source.load_subject(source.subjects[0])[0]
        eeg = mne.pick_types(raw.info, eeg=True, exclude="bads")
        m = map_channels([raw.ch_names[i] for i in eeg], channels)
        present = [c if c == r else f"{c}={r}" for c, r in m.present.items()]
        rows.append({"dataset": source.name, "n_eeg": len(m.ch_names),
                     "n_present": len(present), "present": ", ".join(present),
                     "absent": ", ".join(m.absent), "dropped": ", ".join(m.dropped)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# prepared corpus (cache of float32 recordings)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """One prepared recording in the cache.

    Attributes
    ----------
    source, subject, session, run
        Where it comes from.
    path : str
        Its ``.npy`` file, float32 ``(n_chans_model, n_times)``.
    n_times : int
        Samples at the model rate.
    mask : tuple of bool
        Model channels present.
    """

    source: str
    subject: int
    session: str
    run: str
    path: str
    n_times: int
    mask: tuple[bool, ...]

    def duration_s(self, sfreq: float) -> float:
        """Duration in seconds at the model rate ``sfreq``."""
        return self.n_times / sfreq



class PretrainingCorpus:
    """Recordings of several sources, prepared once into a cache folder, one subject at a time.

    Parameters
    ----------
    sources : sequence of source
        Where recordings come from (:func:`pretraining_source`, :class:`MoabbRecordings`,
        :class:`EEGBCIRecordings`, :class:`RawRecordings`).
    spec : ChunkSpec
        Rate, channels, filter and chunk geometry.
    cache_dir : str | os.PathLike
        Folder of the prepared float32 signals (``<cache_dir>/<source>/<spec key>/``);
        prepared subjects are reused by later runs with the same signal parameters (the
        folders of leave-one-subject-out folds are shared).

    Notes
    -----
    A recording shorter than one sample (``spec.sample_samples`` at the model rate) is skipped
    with a warning naming it and both lengths; :meth:`prepare` raises ``ValueError`` when no
    recording is left.
    """

    def __init__(self, sources: Sequence[Any], spec: ChunkSpec,
                 cache_dir: str | os.PathLike) -> None:
        check_type(spec, ChunkSpec, "spec")
        check_type(cache_dir, (str, os.PathLike), "cache_dir")
        sources = list(sources)
        if not sources:
            raise ValueError("sources is empty; give at least one source of recordings.")
        for s in sources:
            if not (hasattr(s, "name") and hasattr(s, "subjects") and hasattr(s, "load_subject")):
                raise TypeError(f"A source needs name, subjects and load_subject(subject); got "
                                f"{type(s).__name__}. Use pretraining_source(name).")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"Two sources share a name in {names}; each needs its own.")
        self.sources = sources
        self.spec = spec
        self.cache_dir = Path(cache_dir).expanduser()
        self.skipped: list[tuple[str, int, str, str, str]] = []
        self._held: dict[str, str] = {}

    def _folder(self, source) -> Path:
        return self.cache_dir / _SAFE.sub("_", source.name) / self.spec.key()

    def _prepare_subject(self, source, subject: int, folder: Path) -> dict:
        entries = []
        for session, run, raw in source.load_subject(subject):
            tag = f"sub-{subject:03d}_ses-{_SAFE.sub('', session)}_run-{_SAFE.sub('', run)}"
            entry = {"session": session, "run": run, "fingerprint": fingerprint(raw)}
            try:
                data, mask, _ = prepare_raw(raw, self.spec)
            except RecordingTooShortError as err:
                entry.update(file=None, n_times=0, mask=[], reason=str(err))
                entries.append(entry)
                continue
            finally:
                del raw
            entry.update(file=tag + ".npy", n_times=int(data.shape[1]), mask=mask.tolist())
            # saved even when too short for this geometry: another may use it; written under a
            # name of this process and renamed, so concurrent preparations never mix files
            tmp = folder / f"{tag}.{os.getpid()}.tmp.npy"
            np.save(tmp, data)
            os.replace(tmp, folder / entry["file"])
            entries.append(entry)
        return {"subject": subject, "recordings": entries}

    def _held_out_fingerprints(self) -> dict[str, str]:
        """Fingerprint -> "source subject s session run" of every excluded subject's runs.

        Read from ``<cache_dir>/<source>/fingerprints/`` or computed (the subject is loaded,
        hashed and released; nothing of it is prepared). An excluded subject whose files are
        not on this machine is passed over with a log message.
        """
        held: dict[str, str] = {}
        for source in self.sources:
            folder = self.cache_dir / _SAFE.sub("_", source.name) / "fingerprints"
            for subject in getattr(source, "excluded", []):
                path = folder / f"sub-{subject:03d}.json"
                if path.is_file():
                    prints = json.loads(path.read_text())
                else:
                    try:
                        runs = source.load_subject(subject)
                    except FileNotFoundError as err:
                        logger.info("Held-out %s subject %d not on this machine, so not "
                                    "checked for duplicates: %s", source.name, subject, err)
                        continue
                    prints = [[se, r, fingerprint(raw)] for se, r, raw in runs]
                    del runs
                    folder.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(prints))
                    os.replace(tmp, path)
                for se, r, fp in prints:
                    held[fp] = f"{source.name} subject {subject} session {se} run {r}"
        return held

    def prepare(self) -> list[Recording]:
        """Prepare every subject not in the cache yet, then list the usable recordings.

        Returns
        -------
        recordings : list of Recording
            In source, subject and run order. Left out (listed in :attr:`skipped` with the
            reason, and logged): recordings too short for one sample, and recordings
            identical to a run of an excluded (held-out) subject, such as Kalunga2016's
            subject 7 run 0, which is subject 3's run 1 stored twice.
        """
        recordings: list[Recording] = []
        self.skipped = []
        self._held = self._held_out_fingerprints()
        for source in self.sources:
            folder = self._folder(source)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "spec.json").write_text(json.dumps(self.spec.to_dict(), indent=1))
            for subject in source.subjects:
                index = folder / f"sub-{subject:03d}.json"
                info = json.loads(index.read_text()) if index.is_file() else None
                if info is not None and any(
                        e["file"] is not None and not (folder / e["file"]).is_file()
                        for e in info["recordings"]):
                    logger.warning("%s subject %d: a prepared file is missing from %s; "
                                   "preparing the subject again", source.name, subject, folder)
                    info = None
                if info is None:
                    logger.info("Preparing %s subject %d for pretraining", source.name,
                                subject)
                    info = self._prepare_subject(source, subject, folder)
                    tmp = index.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(info))
                    os.replace(tmp, index)
                recordings += self._usable(source.name, subject, folder, info)
        if not recordings:
            raise ValueError(f"No recording is long enough for one pretraining sample "
                             f"({self.spec.sample_samples} samples = "
                             f"{self.spec.sample_samples / self.spec.sfreq:g} s at "
                             f"{self.spec.sfreq:g} Hz); skipped: {self.skipped}. Use fewer or "
                             "shorter chunks (n_chunks, chunk_s).")
        return recordings

    def _usable(self, name: str, subject: int, folder: Path, info: Mapping) -> list[Recording]:
        out = []
        span = self.spec.sample_samples
        for e in info["recordings"]:
            twin = self._held.get(e["fingerprint"])
            if twin is not None:
                why = f"identical to held-out {twin}"
                self.skipped.append((name, subject, e["session"], e["run"], why))
                logger.warning("Skipping %s subject %d session %s run %s: %s", name, subject,
                               e["session"], e["run"], why)
                continue
            if e["file"] is None or e["n_times"] < span:
                why = e.get("reason") or (
                    f"{e['n_times']} samples at {self.spec.sfreq:g} Hz, shorter than one "
                    f"sample of {self.spec.n_chunks} chunks ({span} samples)")
                self.skipped.append((name, subject, e["session"], e["run"], why))
                logger.warning("Skipping %s subject %d session %s run %s: %s", name, subject,
                               e["session"], e["run"], why)
                continue
            out.append(Recording(name, subject, e["session"], e["run"],
                                 str(folder / e["file"]), e["n_times"], tuple(e["mask"])))
        return out


def total_minutes(recordings: Iterable[Recording], sfreq: float) -> dict[str, float]:
    """Minutes of prepared signal per source.

    Parameters
    ----------
    recordings : iterable of Recording
    sfreq : float
        The model rate (Hz).

    Returns
    -------
    minutes : dict
        Source name -> minutes.
    """
    out: dict[str, float] = {}
    for r in recordings:
        out[r.source] = out.get(r.source, 0.0) + r.n_times / sfreq / 60
    return out
