"""A public sEEG dataset from OpenNeuro as a MOABB dataset: :class:`Berezutskaya2022`.

OpenNeuro ``ds003688`` (Berezutskaya et al. 2022, "Open multimodal iEEG-fMRI dataset from
naturalistic stimulation with a short audiovisual film", Scientific Data 9:91,
doi:10.1038/s41597-022-01173-0): epilepsy patients implanted with ECoG grids or sEEG depth
electrodes watched a 6.5-min film made of 30-s blocks of speech and of music. The iEEG of the
film is stored in BIDS as::

    sub-<label>/ses-iemu/ieeg/sub-<label>_ses-iemu_task-film_acq-clinical_run-1_ieeg.vhdr
    sub-<label>/ses-iemu/ieeg/sub-<label>_ses-iemu_task-film_acq-clinical_run-1_channels.tsv
    sub-<label>/ses-iemu/ieeg/sub-<label>_ses-iemu_task-film_acq-clinical_run-1_events.tsv

:class:`Berezutskaya2022` is a :class:`~bci.data.bids.BIDSDataset` on that folder (so a MOABB
dataset: every paradigm, pipeline, ``bci benchmark`` and ``bci train`` runs on it) that keeps the
subjects with at least one contact of the picked types (``seeg`` by default: the sEEG patients)
and decodes the ``trial_type`` of the film's blocks (default ``music`` vs ``speech``; the
``interval`` after each block's onset is one trial).

Location (:mod:`bci._config`): ``MNE_DATASETS_DS003688_PATH``, else ``$MNE_DATA/ds003688``, else
``~/mne_data/ds003688``. With ``download=True`` (the default) what is missing is fetched with
`openneuro-py <https://github.com/hoechenberger/openneuro-py>`_ (``pip install
'bci[openneuro]'``, needs internet), in two steps: first the small sidecars (``channels.tsv``,
``events.tsv``) of every subject's film run, to find the subjects with contacts of the picked
types, then only those subjects' recordings. With ``download=False`` a missing folder raises
:class:`FileNotFoundError` naming it and the variable to set.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .._checks import check_bool, check_type, ensure_int
from .._config import config_help, dataset_path
from .bids import _RAW_EXTENSIONS, BIDSDataset, _check_ch_types

logger = logging.getLogger(__name__)

__all__ = ["Berezutskaya2022", "fetch_openneuro"]

#: OpenNeuro accession number, and the layout of the film runs inside the dataset.
DATASET_ID = "ds003688"
SESSION = "iemu"
TASK = "film"
#: Glob (relative to the root) of the film runs' channel tables.
CHANNELS_GLOB = f"sub-*/ses-{SESSION}/ieeg/*_task-{TASK}_*channels.tsv"
#: Files downloaded before choosing subjects (small text files).
_METADATA_INCLUDE = ("dataset_description.json", "participants.tsv",
                     f"sub-*/ses-{SESSION}/ieeg/*_task-{TASK}_*channels.tsv",
                     f"sub-*/ses-{SESSION}/ieeg/*_task-{TASK}_*events.tsv",
                     f"sub-*/ses-{SESSION}/ieeg/*_task-{TASK}_*ieeg.json")


def fetch_openneuro(dataset: str, target_dir: str | os.PathLike, include: Sequence[str],
                    tag: str | None = None) -> Path:
    """Download files of an OpenNeuro dataset with openneuro-py.

    Parameters
    ----------
    dataset : str
        Accession number, e.g. ``"ds003688"``.
    target_dir : str | os.PathLike
        The dataset's BIDS root on disk (created).
    include : sequence of str
        Paths or glob patterns, relative to the root, of what to download.
    tag : str | None
        Dataset version (e.g. ``"1.0.7"``); None for the latest.

    Returns
    -------
    target_dir : Path

    Raises
    ------
    ImportError
        openneuro-py is not installed.
    """
    try:
        import openneuro
    except ImportError as err:
        raise ImportError("Downloading from OpenNeuro needs openneuro-py: "
                          "pip install 'bci[openneuro]'.") from err
    target = Path(target_dir).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading %s (%s) from OpenNeuro into %s", dataset, ", ".join(include), target)
    openneuro.download(dataset=dataset, tag=tag, target_dir=target, include=list(include))
    return target


def _channel_types(path: Path) -> set[str]:
    """Lower-case channel types listed in a ``channels.tsv`` (``SEEG`` -> ``seeg``)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        return {row.get("type", "").strip().lower() for row in reader}


def _recording_of(channels: Path) -> Path | None:
    """Return the raw recording beside a ``channels.tsv`` (None when absent)."""
    stem = channels.name[: -len("channels.tsv")]
    for ext in _RAW_EXTENSIONS:
        candidate = channels.with_name(f"{stem}ieeg{ext}")
        if candidate.exists():
            return candidate
    return None


class Berezutskaya2022(BIDSDataset):
    """OpenNeuro ds003688: sEEG (or ECoG) during a film of speech and music blocks (MOABB).

    Parameters
    ----------
    ch_types : str | list of str
        Contact types to pick: ``["seeg"]`` (default; only subjects with sEEG contacts),
        ``["ecog"]`` or both.
    event_id : list of str | dict
        Block types (``trial_type`` of ``events.tsv``) decoded, as in
        :class:`~bci.data.bids.BIDSDataset`; default ``["music", "speech"]``.
    interval : tuple of float
        Trial window ``(tmin, tmax)`` in seconds from each block's onset (blocks last 30 s).
    resample : float | None
        Sampling rate (Hz) every run is resampled to when loaded; None keeps the recorded one.
    subjects : list of int | None
        Subject numbers (the ``sub-`` labels) to use, and to download when missing; None:
        every subject with contacts of ``ch_types`` (all their recordings are downloaded when
        the dataset is created: pass ``subjects`` to fetch fewer).
    path : str | os.PathLike | None
        The dataset's BIDS root; None: ``MNE_DATASETS_DS003688_PATH``, ``$MNE_DATA/ds003688``.
    download : bool
        Fetch missing files from OpenNeuro with openneuro-py (internet).
    tag : str | None
        OpenNeuro version to download; None for the latest.

    Raises
    ------
    FileNotFoundError
        Files are missing and ``download=False``.
    ValueError
        A requested subject has no contact of ``ch_types``, or no subject has any.
    """

    _code = "Berezutskaya2022"

    def __init__(self, ch_types: str | Sequence[str] = ("seeg",),
                 event_id: Sequence[str] | dict | None = ("music", "speech"), *,
                 interval: Sequence[float] = (0.0, 5.0), resample: float | None = None,
                 subjects: Sequence[int] | None = None,
                 path: str | os.PathLike | None = None, download: bool = True,
                 tag: str | None = None) -> None:
        types = _check_ch_types(list(ch_types) if not isinstance(ch_types, str) else ch_types)
        check_bool(download, "download")
        if subjects is not None:
            check_type(subjects, (list, tuple), "subjects")
            subjects = [ensure_int(s, "subjects", minimum=1, what="subject number")
                        for s in subjects]
        root = dataset_path(DATASET_ID, DATASET_ID, path)
        self.download = download
        self.tag = tag
        self.path = path
        if not any(root.glob(CHANNELS_GLOB)):
            self._fetch(root, list(_METADATA_INCLUDE), "the film runs' channels and events")
        by_subject = self._subjects_with(root, types)
        if subjects is None:
            wanted = sorted(by_subject)
        else:
            missing = [s for s in subjects if s not in by_subject]
            if missing:
                raise ValueError(
                    f"Subjects {missing} of {DATASET_ID} have no {'/'.join(types)} contact in "
                    f"their film run; subjects with one: {sorted(by_subject)} (or pick other "
                    "channel types with ch_types=['ecog'])."
                )
            wanted = sorted(subjects)
        absent = [s for s in wanted if any(_recording_of(c) is None for c in by_subject[s])]
        if absent:
            include = [f"sub-{label}/ses-{SESSION}/ieeg/*"
                       for label in sorted({by_subject[s][0].name.split("_")[0][4:]
                                            for s in absent})]
            self._fetch(root, include, f"the recordings of subjects {absent}")
        super().__init__(root, event_id=list(event_id) if isinstance(event_id, tuple)
                         else event_id, datatype="ieeg", task=TASK, ch_types=types,
                         interval=interval, resample=resample, name=None, subjects=wanted)
        self.doi = "10.1038/s41597-022-01173-0"

    def _fetch(self, root: Path, include: list[str], what: str) -> None:
        if not self.download:
            raise FileNotFoundError(
                f"{what.capitalize()} of OpenNeuro {DATASET_ID} are not under {root}. Download "
                f"them with Berezutskaya2022(download=True) (openneuro-py, internet), or "
                f"{config_help(DATASET_ID)} to the folder holding {DATASET_ID}'s sub-* folders."
            )
        fetch_openneuro(DATASET_ID, root, include, tag=self.tag)

    @staticmethod
    def _subjects_with(root: Path, types: Sequence[str]) -> dict[int, list[Path]]:
        found: dict[int, list[Path]] = {}
        for channels in sorted(root.glob(CHANNELS_GLOB)):
            label = channels.name.split("_")[0][len("sub-"):]
            if label.isdigit() and _channel_types(channels) & set(types):
                found.setdefault(int(label), []).append(channels)
        if not found:
            raise ValueError(
                f"No subject of {DATASET_ID} under {root} has a {'/'.join(types)} contact in its "
                f"film run (looked at {CHANNELS_GLOB}); pick other channel types with ch_types."
            )
        return found
