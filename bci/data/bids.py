r"""Any BIDS folder (EEG, MEG or iEEG) as a MOABB dataset: :class:`BIDSDataset`.

A lab's own recordings, once in BIDS (https://bids.neuroimaging.io, written for instance with
:func:`mne_bids.write_raw_bids`), go through every MOABB paradigm, every ``bci`` pipeline,
``bci benchmark`` and ``bci train``::

    bci benchmark --dataset BIDS --dataset-param root=/data/my_bids \\
        --dataset-param "event_id={'auditory/left': 'auditory', 'visual/left': 'visual'}" \\
        --paradigm MotorImagery --paradigm-param "events=['auditory', 'visual']" ...

The layout maps onto MOABB's as follows (read with :mod:`mne_bids`, nothing written):

- subjects: the BIDS ``sub-`` labels; when every label is a whole number (``01``, ``2``) the
  MOABB subject is that number, else labels are numbered 1, 2... in sorted order
  (:attr:`BIDSDataset.subject_labels` gives the label of each number);
- sessions: the ``ses-`` labels of a subject, in sorted order, as MOABB session names
  ``"0ses01"``, ``"1ses02"``... (``"0"`` when the folder has no sessions);
- runs: every recording of a session (the ``task``, ``acq`` and ``run`` entities), as
  ``"0run01"``, ``"1run02"``...;
- classes: the ``trial_type`` column of each recording's ``events.tsv``, mapped to class names
  by ``event_id`` (several trial types may share a class). Recordings without any mapped event
  are left out (logged); a folder without any ``events.tsv`` is refused.

Channels are picked by type (``ch_types``: ``mag``, ``grad``, ``eeg``, ``seeg``, ``ecog``,
``dbs``) through MOABB's ``return_all_modalities``; stimulus channels are dropped so that the
events come from ``events.tsv``, never from a trigger channel's raw codes. Signals stay in SI
units (T, T/m, V); the dataset's ``unit_factor`` (MOABB's scaling of the arrays given to pipelines)
follows the picked types: 1e6 (µV) for volts, 1e15 (fT) for magnetometers, 1e13 (fT/cm) for
gradiometers, see :mod:`bci.data.channel_types`. Runs recorded at different sampling rates are
refused unless ``resample`` names one rate.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moabb.datasets.base import BaseDataset

from .._checks import check_option, check_positive, check_type
from .channel_types import CH_TYPES, unit_factor_for

logger = logging.getLogger(__name__)

__all__ = ["BIDSDataset", "CH_TYPES"]

_DEFAULT_CH_TYPES = {"eeg": ("eeg",), "meg": ("mag", "grad"), "ieeg": ("seeg", "ecog", "dbs")}
_DATATYPES = ("eeg", "meg", "ieeg")
_PARADIGMS = ("imagery", "p300", "ssvep", "cvep", "rstate")
#: Extensions of raw recordings that mne-bids reads (a CTF ``.ds`` is a folder).
_RAW_EXTENSIONS = (".fif", ".edf", ".bdf", ".vhdr", ".set", ".ds", ".con", ".sqd", ".pdf",
                   ".nwb", ".mefd")


def _import_mne_bids():
    try:
        import mne_bids
    except ImportError as err:  # pragma: no cover - the bids extra is installed in CI
        raise ImportError("BIDSDataset needs mne-bids: pip install 'bci[bids]'.") from err
    return mne_bids


def _alnum(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", str(text))


def pick_kwargs(ch_types: Sequence[str]) -> dict[str, Any]:
    """Keyword arguments of :func:`mne.pick_types` that pick exactly ``ch_types``.

    Parameters
    ----------
    ch_types : sequence of str
        Among ``"mag"``, ``"grad"``, ``"eeg"``, ``"seeg"``, ``"ecog"``, ``"dbs"``.

    Returns
    -------
    kwargs : dict
        For :func:`mne.pick_types` (and MOABB's ``return_all_modalities``): bad channels are
        kept (``exclude=[]``, so every run has the same channels) and MEG reference channels
        are not picked.

    Examples
    --------
    >>> pick_kwargs(["grad"])["meg"]
    'grad'
    """
    types = set(ch_types)
    meg: bool | str = False
    if {"mag", "grad"} <= types:
        meg = True
    elif "mag" in types:
        meg = "mag"
    elif "grad" in types:
        meg = "grad"
    return {"meg": meg, "eeg": "eeg" in types, "seeg": "seeg" in types,
            "ecog": "ecog" in types, "dbs": "dbs" in types, "ref_meg": False, "exclude": []}


def _check_ch_types(ch_types: Any) -> tuple[str, ...]:
    if isinstance(ch_types, str):
        ch_types = [ch_types]
    check_type(ch_types, (list, tuple), "ch_types")
    if not ch_types:
        raise ValueError(f"ch_types must name at least one channel type among {list(CH_TYPES)}, "
                         "got an empty list.")
    for ch_type in ch_types:
        check_option("ch_types", ch_type, CH_TYPES)
    return tuple(dict.fromkeys(ch_types))


def _read_trial_types(path: Path) -> list[str]:
    """Read the ``trial_type`` of every row of an ``events.tsv`` (``n/a`` rows left out)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if reader.fieldnames is None or "trial_type" not in reader.fieldnames:
            return []
        return [row["trial_type"] for row in reader if row["trial_type"] not in ("", "n/a")]


def _sidecar_sfreq(bids_path) -> float | None:
    sidecar = bids_path.copy().update(extension=".json").fpath
    try:
        with open(sidecar, encoding="utf-8") as fh:
            value = json.load(fh).get("SamplingFrequency")
    except (OSError, ValueError):
        return None
    return float(value) if value is not None else None


def _signature(paths) -> str:
    """SHA-256 of the names, sizes and modification times of the recordings and their events.

    Part of the dataset's attributes, hence of ``bci benchmark``'s cache key: editing a file
    of the folder invalidates the cached scores.
    """
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        for fpath in (Path(path.fpath),
                      Path(path.copy().update(suffix="events", extension=".tsv").fpath)):
            stat = fpath.stat()
            digest.update(f"{fpath.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


class BIDSDataset(BaseDataset):
    """Any BIDS folder of EEG, MEG or iEEG recordings as a MOABB dataset.

    Parameters
    ----------
    root : str | os.PathLike
        The BIDS root (the folder holding ``dataset_description.json`` and the ``sub-*``
        folders).
    event_id : dict | list of str | None
        Classes from the ``trial_type`` values of ``events.tsv``: a dict ``{trial_type:
        class_name}`` (several trial types may map to one class, e.g. ``{"auditory/left":
        "auditory", "auditory/right": "auditory"}``), a list of trial types kept as their own
        classes, or None for every trial type found. Class codes are 1, 2... in sorted order of
        the class names.
    datatype : {"eeg", "meg", "ieeg"} | None
        BIDS data type to read; None when the folder holds only one.
    task : str | None
        Only the recordings of this BIDS task; None for all.
    ch_types : str | list of str | None
        Channel types to pick, among ``"mag"``, ``"grad"``, ``"eeg"``, ``"seeg"``, ``"ecog"``,
        ``"dbs"``; None for the data type's own (EEG: ``eeg``; MEG: ``mag`` and ``grad``;
        iEEG: ``seeg``, ``ecog`` and ``dbs``).
    interval : tuple of float
        Trial window ``(tmin, tmax)`` in seconds from each event's onset.
    resample : float | None
        Sampling rate (Hz) every run is resampled to when loaded. None keeps the recorded rate,
        and refuses a folder whose runs were recorded at different rates.
    paradigm : {"imagery", "p300", "ssvep", "cvep", "rstate"}
        MOABB paradigm family the dataset is valid for (``"imagery"``: ``MotorImagery`` and
        ``LeftRightImagery`` with the matching class names).
    name : str | None
        Short name in the dataset's ``code`` (``BIDSDataset-<name>``); default: the root's
        folder name.
    subjects : list of int | None
        MOABB subject numbers to keep; None for all.
    sessions : list of int | str | None
        MOABB sessions to keep; None for all.

    Attributes
    ----------
    subject_labels : dict of int to str
        The BIDS ``sub-`` label of each MOABB subject number.
    recordings : dict of int to list of mne_bids.BIDSPath
        The recordings of each subject that hold at least one of the classes.
    sfreqs : dict of str to float
        Sampling rate (Hz) of each recording (file name), from its sidecar.
    files_signature : str
        SHA-256 of the recordings' and events files' names, sizes and modification times (so
        that cached benchmark scores follow edits of the folder).

    Raises
    ------
    FileNotFoundError
        ``root`` is not a folder, holds no recording of the data type, or no ``events.tsv``.
    ValueError
        Several data types and none chosen, unknown trial types in ``event_id``, or runs at
        different sampling rates without ``resample``.

    Examples
    --------
    >>> ds = BIDSDataset("/data/bids", event_id=["left", "right"])  # doctest: +SKIP
    >>> ds.event_id  # doctest: +SKIP
    {'left': 1, 'right': 2}
    """

    #: A subclass for one public dataset names it here (MOABB's ``code``).
    _code: str | None = None

    def __init__(self, root: str | os.PathLike,
                 event_id: Mapping[str, str] | Sequence[str] | None = None, *,
                 datatype: str | None = None, task: str | None = None,
                 ch_types: str | Sequence[str] | None = None,
                 interval: Sequence[float] = (0.0, 1.0), resample: float | None = None,
                 paradigm: str = "imagery", name: str | None = None,
                 subjects: Sequence[int] | None = None,
                 sessions: Sequence[int | str] | None = None) -> None:
        mne_bids = _import_mne_bids()
        check_type(root, (str, os.PathLike), "root")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"BIDS root {str(self.root)!r} is not a folder. Pass the folder that holds "
                "dataset_description.json and the sub-* folders (--dataset-param root=PATH)."
            )
        check_option("paradigm", paradigm, _PARADIGMS)
        if resample is not None:
            resample = check_positive(resample, "resample", unit="Hz")
        self.resample = resample
        self.task = task
        paths = self._find_recordings(mne_bids, datatype, task)
        self.datatype = paths[0].datatype
        self.ch_types = (_DEFAULT_CH_TYPES[self.datatype] if ch_types is None
                         else _check_ch_types(ch_types))
        trial_types, paths = self._read_events(paths)
        self.trial_to_class = self._class_map(event_id, trial_types)
        classes = sorted(set(self.trial_to_class.values()))
        events = {cls: code for code, cls in enumerate(classes, start=1)}
        paths = [p for p in paths if set(trial_types[str(p.fpath)]) & set(self.trial_to_class)]
        self.sfreqs = self._check_sfreqs(paths)
        self.files_signature = _signature(paths)
        labels = sorted({p.subject for p in paths})
        if all(label.isdigit() for label in labels) \
                and len({int(label) for label in labels}) == len(labels):
            self.subject_labels = {int(label): label for label in labels}
        else:
            self.subject_labels = dict(enumerate(labels, start=1))
        by_label = {label: num for num, label in self.subject_labels.items()}
        self.recordings: dict[int, list] = {}
        for path in paths:
            self.recordings.setdefault(by_label[path.subject], []).append(path)
        n_sessions = min(len({p.session for p in recs}) for recs in self.recordings.values())
        interval = [float(t) for t in interval]
        if len(interval) != 2 or not interval[0] < interval[1]:
            raise ValueError(f"interval must be (tmin, tmax) in seconds with tmin < tmax, "
                             f"got {interval}.")
        super().__init__(
            subjects=sorted(self.subject_labels),
            sessions_per_subject=n_sessions,
            events=events,
            code=self._code or f"BIDSDataset-{_alnum(name or self.root.name).lower() or 'root'}",
            interval=interval,
            paradigm=paradigm,
            doi=None,
            selected_subjects=subjects,
            selected_sessions=sessions,
            return_all_modalities=pick_kwargs(self.ch_types),
            unit_factor=unit_factor_for(self.ch_types),
        )

    # ------------------------------------------------------------------ layout
    def _find_recordings(self, mne_bids, datatype, task) -> list:
        if datatype is not None:
            check_option("datatype", datatype, _DATATYPES)
        found = mne_bids.find_matching_paths(self.root, tasks=task,
                                             datatypes=datatype or list(_DATATYPES))
        paths = [p for p in found if p.suffix == p.datatype and p.extension in _RAW_EXTENSIONS]
        # a CTF .ds folder is listed with its files; keep one path a recording
        unique = {str(p.fpath): p for p in paths}
        paths = sorted(unique.values(), key=lambda p: str(p.fpath))
        if not paths:
            what = f"{datatype} " if datatype else "EEG, MEG or iEEG "
            raise FileNotFoundError(
                f"No {what}recording found under BIDS root {str(self.root)!r}"
                f"{f' for task {task!r}' if task else ''}. Expected files such as "
                "sub-01/eeg/sub-01_task-x_eeg.edf (write them with mne_bids.write_raw_bids)."
            )
        datatypes = sorted({p.datatype for p in paths})
        if len(datatypes) > 1:
            raise ValueError(
                f"BIDS root {str(self.root)!r} holds several data types ({', '.join(datatypes)}); "
                f"choose one with datatype= (--dataset-param datatype={datatypes[0]})."
            )
        return paths

    def _read_events(self, paths) -> tuple[dict[str, list[str]], list]:
        trial_types: dict[str, list[str]] = {}
        kept = []
        for path in paths:
            events = path.copy().update(suffix="events", extension=".tsv").fpath
            if not Path(events).is_file():
                logger.info("%s: no events.tsv, left out", path.basename)
                continue
            trial_types[str(path.fpath)] = _read_trial_types(Path(events))
            kept.append(path)
        if not any(trial_types.values()):
            raise FileNotFoundError(
                f"BIDS root {str(self.root)!r} has no events: none of its {len(paths)} "
                f"{paths[0].datatype} recordings has an events.tsv with a trial_type column "
                f"(e.g. sub-01/{paths[0].datatype}/sub-01_task-x_events.tsv). A decoder needs "
                "labelled trials: write the events with mne_bids.write_raw_bids(raw, path, "
                "events=..., event_id=...)."
            )
        return trial_types, kept

    @staticmethod
    def _class_map(event_id, trial_types: dict[str, list[str]]) -> dict[str, str]:
        found = sorted({t for types in trial_types.values() for t in types})
        if event_id is None:
            return {t: t for t in found}
        if isinstance(event_id, str):
            event_id = [event_id]
        if isinstance(event_id, Mapping):
            mapping = {str(k): str(v) for k, v in event_id.items()}
        elif isinstance(event_id, (list, tuple)):
            mapping = {str(t): str(t) for t in event_id}
        else:
            raise TypeError("event_id must be a dict {trial_type: class}, a list of trial "
                            f"types or None, got {type(event_id).__name__}.")
        unknown = [t for t in mapping if t not in found]
        if unknown or not mapping:
            raise ValueError(
                f"event_id names trial types {unknown or '(none)'} that no events.tsv holds; "
                f"the trial types found are {found}."
            )
        return mapping

    def _check_sfreqs(self, paths) -> dict[str, float]:
        sfreqs = {}
        for path in paths:
            sfreq = _sidecar_sfreq(path)
            if sfreq is None:
                mne_bids = _import_mne_bids()
                sfreq = float(mne_bids.read_raw_bids(path, verbose=False).info["sfreq"])
            sfreqs[path.basename] = sfreq
        rates = sorted(set(sfreqs.values()))
        if len(rates) > 1 and self.resample is None:
            listing = "; ".join(f"{name}: {rate:g} Hz" for name, rate in sfreqs.items())
            raise ValueError(
                f"The runs of BIDS root {str(self.root)!r} were recorded at different sampling "
                f"rates ({', '.join(f'{r:g}' for r in rates)} Hz: {listing}); trials of one "
                f"dataset must share one. Pass resample=<Hz> (--dataset-param "
                f"resample={rates[0]:g}) to resample every run when loaded, or task=/datatype= "
                "to read only runs recorded at one rate."
            )
        return sfreqs

    # ------------------------------------------------------------------ MOABB API
    def _check_subject(self, subject) -> None:
        if subject not in self.subject_labels:
            raise ValueError(f"subject must be one of {sorted(self.subject_labels)} "
                             f"({self.code}), got {subject!r}.")

    def _load_run(self, path):
        mne_bids = _import_mne_bids()
        with warnings.catch_warnings():
            # electrode positions do not enter decoding: their frame and unit do not matter
            warnings.filterwarnings("ignore", category=RuntimeWarning,
                                    message=".*(coordinate frame|Coordinate unit|"
                                            "without locations)")
            raw = mne_bids.read_raw_bids(path, verbose=False)
        raw.load_data(verbose=False)
        stim = [name for name, kind in zip(raw.ch_names, raw.get_channel_types(), strict=True)
                if kind == "stim"]
        if stim:
            raw.drop_channels(stim)
        annotations = raw.annotations.copy()
        annotations.delete([i for i, desc in enumerate(annotations.description)
                            if desc not in self.trial_to_class])
        renames = {t: c for t, c in self.trial_to_class.items() if t != c}
        if renames and len(annotations):
            annotations.rename({t: c for t, c in renames.items()
                                if t in set(annotations.description)})
        raw.set_annotations(annotations)
        if self.resample is not None and raw.info["sfreq"] != self.resample:
            logger.info("%s: resampling %g Hz -> %g Hz", path.basename, raw.info["sfreq"],
                        self.resample)
            raw.resample(self.resample, verbose=False)
        return raw

    def _get_single_subject_data(self, subject):
        self._check_subject(subject)
        by_session: dict[str | None, list] = {}
        for path in self.recordings[subject]:
            by_session.setdefault(path.session, []).append(path)
        data = {}
        for i, session in enumerate(sorted(by_session, key=lambda s: (s is None, s or ""))):
            key = f"{i}ses{_alnum(session)}" if session else str(i)
            runs = {}
            for j, path in enumerate(by_session[session]):
                desc = "".join(f"{k}{_alnum(v)}" for k, v in
                               (("task", path.task if self.task is None else None),
                                ("acq", path.acquisition), ("run", path.run)) if v)
                runs[f"{j}{desc}"] = self._load_run(path)
            data[key] = runs
        return data

    def data_path(self, subject, path=None, force_update=False, update_path=None,
                  verbose=None) -> list[str]:
        """Files of one subject's recordings (nothing is downloaded).

        Parameters
        ----------
        subject : int
            MOABB subject number.
        path, force_update, update_path, verbose
            Ignored; MOABB's ``data_path`` signature.

        Returns
        -------
        paths : list of str
            The recordings read for ``subject``.
        """
        self._check_subject(subject)
        return [str(p.fpath) for p in self.recordings[subject]]
