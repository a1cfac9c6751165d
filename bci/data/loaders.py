"""Load any MOABB dataset through any MOABB paradigm, offline-friendly.

Data paths follow MNE/MOABB: ``MNE_DATASETS_<SIGN>_PATH``, then ``MNE_DATA`` (environment or
``~/.mne/mne-python.json``), then ``~/mne_data``. With internet, MOABB downloads missing files as
usual; without, a missing file raises :class:`FileNotFoundError` naming the dataset, the subject,
the path searched and how to point ``bci`` at a copy.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import inspect
import socket
import urllib.error
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_option, did_you_mean
from .._logging import logger

#: Datasets written for ``bci`` itself (MOABB ``BaseDataset`` subclasses), by name.
_OWN_DATASETS = {
    "SyntheticMotorImagery": "bci.data.datasets",
    "SyntheticSSVEP": "bci.data.datasets",
    "CHBMIT": "bci.data.chbmit",  # seizure EEG: no MOABB paradigm, use get_data() (see its doc)
    "BIDSDataset": "bci.data.bids",  # any BIDS folder (EEG, MEG, iEEG): root=PATH, event_id=...
    "MNESample": "bci.data.mne_sample",  # MNE's sample MEG: auditory vs visual (downloads)
    "Berezutskaya2022": "bci.data.openneuro_ieeg",  # OpenNeuro ds003688 sEEG (downloads)
}

#: Shorter names of ``bci``'s own datasets (``--dataset BIDS``).
_ALIASES = {"BIDS": "BIDSDataset"}


def _moabb_datasets() -> dict[str, type]:
    """MOABB's dataset classes by class name (plus their registered aliases)."""
    import moabb.datasets as mdatasets
    from moabb.datasets.base import BaseDataset

    found = {}
    for name, obj in inspect.getmembers(mdatasets, inspect.isclass):
        if issubclass(obj, BaseDataset) and obj is not BaseDataset and not inspect.isabstract(obj):
            found[name] = obj
    return found


def list_datasets() -> list[str]:
    """Names accepted by :func:`get_dataset`: MOABB's datasets and ``bci``'s own.

    Returns
    -------
    names : list of str
        Sorted class names, e.g. ``"PhysionetMI"``, ``"Kalunga2016"``,
        ``"SyntheticMotorImagery"``.
    """
    return sorted({*_moabb_datasets(), *_OWN_DATASETS, *_ALIASES})


#: Dataset settings that MOABB keeps in public attributes instead of constructor arguments,
#: settable like constructor arguments through :func:`get_dataset` (``--dataset-param``), with
#: the values they accept. MOABB's ``PhysionetMI`` loads the runs in ``hand_runs`` (imagery 4, 8,
#: 12; with ``executed=True`` also 3, 7, 11) and ``feet_runs`` (6, 10, 14; executed 5, 9, 13).
DATASET_ATTRIBUTES: dict[str, dict[str, tuple[int, ...]]] = {
    "PhysionetMI": {"hand_runs": (3, 4, 7, 8, 11, 12), "feet_runs": (5, 6, 9, 10, 13, 14)},
}


def get_dataset(dataset: Any, **params: Any):
    """Return a MOABB dataset instance from a name or an instance.

    Parameters
    ----------
    dataset : str | moabb.datasets.base.BaseDataset
        A class name from :func:`list_datasets` (``"PhysionetMI"``) or a dataset instance,
        returned as is.
    **params
        Constructor arguments of the dataset class (only with a name), e.g.
        ``executed=True`` for ``PhysionetMI``; also the settings of
        :data:`DATASET_ATTRIBUTES` that MOABB keeps as attributes, e.g. ``PhysionetMI``'s
        ``feet_runs=[]`` (load the hand runs only) or ``hand_runs=[4, 8]``.

    Returns
    -------
    dataset : moabb.datasets.base.BaseDataset

    Raises
    ------
    ValueError
        Unknown name or parameter (the message lists the valid ones), or a run list with runs
        that do not belong to it.
    """
    from moabb.datasets.base import BaseDataset

    if isinstance(dataset, BaseDataset):
        if params:
            raise ValueError("Dataset parameters can only be given with a dataset name.")
        return dataset
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a name or a MOABB dataset, got {type(dataset).__name__}.")
    dataset = _ALIASES.get(dataset, dataset)
    if dataset in _OWN_DATASETS:
        import importlib

        cls = getattr(importlib.import_module(_OWN_DATASETS[dataset]), dataset)
    else:
        classes = _moabb_datasets()
        check_option("dataset", dataset, [*classes, *_OWN_DATASETS])
        cls = classes[dataset]
    attributes = DATASET_ATTRIBUTES.get(dataset, {})
    accepted = [p for p in inspect.signature(cls).parameters
                if p not in ("self", "args", "kwargs")]
    for key in params:
        if key not in accepted and key not in attributes:
            valid = [*accepted, *attributes]
            raise ValueError(
                f"Unknown parameter {key!r} of dataset {dataset}.{did_you_mean(key, valid)} "
                f"It takes: {', '.join(valid) or 'none'}."
            )
    instance = cls(**{k: v for k, v in params.items() if k not in attributes})
    for key, valid in attributes.items():
        if key in params:
            setattr(instance, key, _check_runs(params[key], f"{dataset} {key}", valid))
    return instance


def _check_runs(runs: Any, name: str, valid: Sequence[int]) -> list[int]:
    if isinstance(runs, (int, np.integer)) and not isinstance(runs, bool):
        runs = [runs]
    if not isinstance(runs, (list, tuple)):
        raise TypeError(f"{name} must be a list of run numbers (e.g. [4, 8, 12] or []), "
                        f"got {runs!r}.")
    bad = [r for r in runs if isinstance(r, bool) or r not in valid]
    if bad:
        raise ValueError(f"{name} must list runs among {list(valid)}, got {bad}.")
    return [int(r) for r in runs]


def skip_unused_runs(dataset: Any, paradigm: Any):
    """Leave out the runs of a dataset that hold none of the events a paradigm uses.

    MOABB's ``PhysionetMI`` loads its hand runs (events ``rest``, ``left_hand``,
    ``right_hand``) and its feet runs (``rest``, ``hands``, ``feet``) whatever the paradigm, so
    ``LeftRightImagery`` reads three files per subject that give it no epoch, and fails offline
    where only the hand runs are stored (PhysionetMI subjects 2-5 here). Without those runs the
    paradigm's epochs are the same, in the same order: no score changes.

    Parameters
    ----------
    dataset : moabb.datasets.base.BaseDataset
        The dataset; not modified.
    paradigm : moabb.paradigms.base.BaseParadigm
        The paradigm whose events matter.

    Returns
    -------
    dataset : moabb.datasets.base.BaseDataset
        ``dataset`` itself when every run counts (or the dataset has no such runs), else a
        shallow copy without the unused runs.
    """
    if type(dataset).__name__ != "PhysionetMI" or not hasattr(paradigm, "used_events"):
        return dataset
    try:
        events = set(copy.deepcopy(paradigm).used_events(dataset))
    except (KeyError, TypeError, AttributeError):  # a paradigm unfit for the dataset: MOABB says
        return dataset
    if "rest" in events:
        return dataset
    keep = {"hand_runs": bool(events & {"left_hand", "right_hand"}),
            "feet_runs": bool(events & {"hands", "feet"})}
    dropped = {k: list(getattr(dataset, k)) for k, used in keep.items()
               if not used and getattr(dataset, k)}
    if not dropped:
        return dataset
    dataset = copy.copy(dataset)
    for key, runs in dropped.items():
        setattr(dataset, key, [])
        logger.info("%s: not loading %s %s, which hold none of the events of %s (%s)",
                    dataset.code, key, runs, type(paradigm).__name__, ", ".join(sorted(events)))
    return dataset


def _moabb_paradigms() -> dict[str, type]:
    import moabb.paradigms as mparadigms
    from moabb.paradigms.base import BaseParadigm

    return {
        name: obj
        for name, obj in inspect.getmembers(mparadigms, inspect.isclass)
        if issubclass(obj, BaseParadigm) and not inspect.isabstract(obj)
    }


def get_paradigm(paradigm: Any, **params: Any):
    """Return a MOABB paradigm instance from a name or an instance.

    Parameters
    ----------
    paradigm : str | moabb.paradigms.base.BaseParadigm
        A MOABB paradigm class name (``"LeftRightImagery"``, ``"MotorImagery"``, ``"SSVEP"``,
        ``"FilterBankSSVEP"``, ``"P300"``...) or an instance, returned as is.
    **params
        Constructor arguments, e.g. ``n_classes=4``, ``fmin=8``, ``resample=128``.

    Returns
    -------
    paradigm : moabb.paradigms.base.BaseParadigm
    """
    from moabb.paradigms.base import BaseParadigm

    if isinstance(paradigm, BaseParadigm):
        if params:
            raise ValueError("Paradigm parameters can only be given with a paradigm name.")
        return paradigm
    if not isinstance(paradigm, str):
        raise TypeError(
            f"paradigm must be a name or a MOABB paradigm, got {type(paradigm).__name__}."
        )
    classes = _moabb_paradigms()
    check_option("paradigm", paradigm, classes)
    return classes[paradigm](**params)


def check_class_count(paradigm: Any, dataset: Any) -> None:
    """Refuse a paradigm whose ``n_classes`` MOABB would silently ignore on ``dataset``.

    MOABB's ``MotorImagery(n_classes=N)`` without ``events`` takes every event type of the
    dataset, whatever ``N`` (``moabb/paradigms/motor_imagery.py``, ``used_events``, 1.7.2): on
    PhysionetMI ``n_classes=4`` gives five classes, ``"rest"`` (84 of 174 trials) among them.

    Parameters
    ----------
    paradigm : moabb.paradigms.base.BaseParadigm
    dataset : moabb.datasets.base.BaseDataset

    Raises
    ------
    ValueError
        When the paradigm would use more event types than its ``n_classes``; the message
        names them and the ``events`` argument that fixes it.
    """
    n_classes = getattr(paradigm, "n_classes", None)
    if n_classes is None or getattr(paradigm, "events", None) is not None \
            or not hasattr(paradigm, "used_events"):
        return
    events = list(copy.deepcopy(paradigm).used_events(dataset))
    if len(events) > n_classes:
        raise ValueError(
            f"{type(paradigm).__name__}(n_classes={n_classes}) without events would use all "
            f"{len(events)} event types of {dataset.code} ({', '.join(events)}): MOABB ignores "
            f"n_classes when events is not given. Name the classes, e.g. paradigm_params="
            f"{{'n_classes': {n_classes}, 'events': {events[:n_classes]!r}}}."
        )


def check_subjects(dataset, subjects: Sequence[int] | None) -> list[int]:
    """Validate subject numbers against ``dataset.subject_list`` (all subjects when None)."""
    available = list(dataset.subject_list)
    if subjects is None:
        return available
    subjects = [int(s) for s in np.atleast_1d(subjects)]
    missing = [s for s in subjects if s not in available]
    if missing:
        raise ValueError(
            f"Subject(s) {missing} not in {type(dataset).__name__}; it has subjects "
            f"{available[0]}..{available[-1]} ({len(available)} in all)."
        )
    return subjects


def _mne_data_root() -> Path:
    """Return the MNE data root (see :func:`bci._config.mne_data_root`)."""
    from .._config import mne_data_root

    return mne_data_root()


_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    urllib.error.URLError,
    http.client.HTTPException,
    socket.gaierror,
    socket.timeout,
    ConnectionError,
    TimeoutError,
)


def _network_errors() -> tuple[type[BaseException], ...]:
    try:
        import requests
    except ImportError:  # requests comes with pooch/MOABB; be safe anyway
        return _NETWORK_ERRORS
    return (*_NETWORK_ERRORS, requests.exceptions.RequestException)


def _frame_locals(err: BaseException, name: str) -> list[Any]:
    """Values of local variable ``name`` in the frames that raised ``err`` (innermost last)."""
    values = []
    tb = err.__traceback__
    while tb is not None:
        if name in tb.tb_frame.f_locals:
            values.append(tb.tb_frame.f_locals[name])
        tb = tb.tb_next
    return values


@contextlib.contextmanager
def missing_data_as_file_not_found(dataset, subjects: Sequence[int] | None = None
                                   ) -> Iterator[None]:
    """Turn a failed download into a :class:`FileNotFoundError` that says what to do.

    MOABB fetches absent files through pooch/requests; offline, that ends in a stack of
    connection errors. Inside this context such an error becomes one ``FileNotFoundError``
    naming the dataset, the subject, the file searched for and how to point MNE/MOABB at a copy.

    Parameters
    ----------
    dataset : moabb.datasets.base.BaseDataset
        The dataset being loaded.
    subjects : sequence of int | None
        The subjects requested, used when the failing subject cannot be determined.
    """
    try:
        yield
    except (*_network_errors(), FileNotFoundError) as err:
        subject = next(iter(reversed(_frame_locals(err, "subject"))), None)
        destination = next(iter(reversed(_frame_locals(err, "destination"))), None)
        who = f"subject {subject}" if subject is not None else f"subjects {list(subjects or [])}"
        where = f"{destination}" if destination is not None else f"under {_mne_data_root()}"
        why = (str(err) if isinstance(err, FileNotFoundError)
               else f"could not be downloaded: {type(err).__name__}")
        raise FileNotFoundError(
            f"{type(dataset).__name__}: the files of {who} are not on this machine (looked for "
            f"{where}; {why}). To use a local copy, set the environment variable MNE_DATA to the "
            "absolute path of the folder that holds the MNE-<dataset>-data folders (or "
            "mne.set_config('MNE_DATA', path)); with internet access, MOABB downloads the "
            "files there."
        ) from err


def load_data(dataset: Any, paradigm: Any, subjects: Sequence[int] | None = None, *,
              paradigm_params: dict | None = None, dataset_params: dict | None = None):
    """Load epochs of a MOABB dataset through a MOABB paradigm as arrays.

    Parameters
    ----------
    dataset : str | moabb.datasets.base.BaseDataset
        Dataset name (see :func:`list_datasets`) or instance.
    paradigm : str | moabb.paradigms.base.BaseParadigm
        Paradigm name (``"LeftRightImagery"``...) or instance.
    subjects : sequence of int | None
        Subjects to load; all of the dataset's subjects when None.
    paradigm_params : dict | None
        Constructor arguments for a paradigm given by name, e.g. ``{"n_classes": 4, "events":
        ["left_hand", "right_hand", "feet", "hands"]}`` (a motor-imagery ``n_classes`` needs
        ``events``: :func:`check_class_count`).
    dataset_params : dict | None
        Parameters of a dataset given by name (see :func:`get_dataset`), e.g.
        ``{"feet_runs": []}`` for ``PhysionetMI``. Runs that hold none of the paradigm's events
        are not loaded (:func:`skip_unused_runs`).

    Returns
    -------
    X : ndarray, shape (n_epochs, n_chans, n_times)
        Epochs in the dataset's array unit: volts times ``dataset.unit_factor`` (MOABB's
        convention, 1e6 for EEG, i.e. µV). Filter-bank paradigms add a last axis of bands.
    y : ndarray, shape (n_epochs,)
        Class names.
    metadata : pandas.DataFrame
        One row per epoch with ``subject``, ``session`` and ``run``.
    """
    dataset = get_dataset(dataset, **(dataset_params or {}))
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    check_class_count(paradigm, dataset)
    subjects = check_subjects(dataset, subjects)
    dataset = skip_unused_runs(dataset, paradigm)
    logger.info("Loading %s subjects %s through %s", dataset.code, subjects,
                type(paradigm).__name__)
    with missing_data_as_file_not_found(dataset, subjects):
        X, y, metadata = paradigm.get_data(dataset, subjects=subjects)
    return X, y, metadata


def load_epochs(dataset: Any, paradigm: Any, subjects: Sequence[int] | None = None, *,
                paradigm_params: dict | None = None, dataset_params: dict | None = None):
    """Load epochs of a MOABB dataset through a MOABB paradigm as :class:`mne.Epochs`.

    Same arguments as :func:`load_data`. The returned epochs carry the paradigm's preprocessing
    (filter band, resampling, window) and their ``metadata`` holds ``subject``, ``session``,
    ``run`` and the class name in ``label``.

    Returns
    -------
    epochs : mne.Epochs
        All epochs of the requested subjects, in MOABB's order, in volts (MNE's unit; the
        arrays of :func:`load_data` are these times ``dataset.unit_factor``).
    """
    dataset = get_dataset(dataset, **(dataset_params or {}))
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    check_class_count(paradigm, dataset)
    subjects = check_subjects(dataset, subjects)
    dataset = skip_unused_runs(dataset, paradigm)
    with missing_data_as_file_not_found(dataset, subjects):
        epochs, y, metadata = paradigm.get_data(dataset, subjects=subjects, return_epochs=True)
    metadata = metadata.reset_index(drop=True).assign(label=np.asarray(y))
    epochs.metadata = metadata
    return epochs


def load_band_epochs(dataset: Any, paradigm: Any, subjects: Sequence[int] | None = None, *,
                     paradigm_params: dict | None = None, dataset_params: dict | None = None):
    """Load the epochs of a filter-bank paradigm as one :class:`mne.Epochs` per band.

    MOABB's ``get_data(return_epochs=True)`` cannot return a filter bank's epochs (it
    concatenates the bands and then fails on the metadata: "metadata must have the same number
    of rows (64) as events (192)"). Here each band is loaded through a copy of the paradigm
    with that band alone, which is how MOABB builds each band of its arrays; stacking the
    bands' data on a last axis gives :func:`load_data`'s filter-bank array (times
    ``dataset.unit_factor``).

    Parameters
    ----------
    dataset, paradigm, subjects, paradigm_params, dataset_params
        As for :func:`load_data`. A paradigm with one band gives a list of one.

    Returns
    -------
    epochs : list of mne.Epochs
        One per band, in the order of ``paradigm.filters`` (resolved for the dataset, e.g.
        ``FilterBankSSVEP``'s bands around the stimulation frequencies), each with the
        ``metadata`` of :func:`load_epochs`.
    """
    dataset = get_dataset(dataset, **(dataset_params or {}))
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    check_class_count(paradigm, dataset)
    subjects = check_subjects(dataset, subjects)
    dataset = skip_unused_runs(dataset, paradigm)
    resolved = copy.deepcopy(paradigm)
    resolved.prepare_process(dataset)  # e.g. FilterBankSSVEP's bands from the event names
    bands = []
    for band in resolved.filters:
        single = copy.deepcopy(resolved)
        single.filters = [band]
        bands.append(load_epochs(dataset, single, subjects))
    return bands
