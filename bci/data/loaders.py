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

from .._checks import check_option
from .._logging import logger

#: Datasets written for ``bci`` itself (MOABB ``BaseDataset`` subclasses), by name.
_OWN_DATASETS = {
    "SyntheticMotorImagery": "bci.data.datasets",
    "SyntheticSSVEP": "bci.data.datasets",
    "CHBMIT": "bci.data.chbmit",  # seizure EEG: no MOABB paradigm, use get_data() (see its doc)
}


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
    return sorted({*_moabb_datasets(), *_OWN_DATASETS})


def get_dataset(dataset: Any, **params: Any):
    """Return a MOABB dataset instance from a name or an instance.

    Parameters
    ----------
    dataset : str | moabb.datasets.base.BaseDataset
        A class name from :func:`list_datasets` (``"PhysionetMI"``) or a dataset instance,
        returned as is.
    **params
        Constructor arguments of the dataset class (only with a name).

    Returns
    -------
    dataset : moabb.datasets.base.BaseDataset
    """
    from moabb.datasets.base import BaseDataset

    if isinstance(dataset, BaseDataset):
        if params:
            raise ValueError("Dataset parameters can only be given with a dataset name.")
        return dataset
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a name or a MOABB dataset, got {type(dataset).__name__}.")
    if dataset in _OWN_DATASETS:
        import importlib

        cls = getattr(importlib.import_module(_OWN_DATASETS[dataset]), dataset)
    else:
        classes = _moabb_datasets()
        check_option("dataset", dataset, [*classes, *_OWN_DATASETS])
        cls = classes[dataset]
    return cls(**params)


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
def missing_data_as_file_not_found(dataset, subjects: Sequence[int] | None = None) -> Iterator[None]:
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
            f"{type(dataset).__name__}: the files of {who} are not on this machine (looked for {where}; "
            f"{why}). To use a local copy, set the environment variable MNE_DATA to the "
            "absolute path of the folder that holds the MNE-<dataset>-data folders (or "
            "mne.set_config('MNE_DATA', path)); with internet access, MOABB downloads the "
            "files there."
        ) from err


def load_data(dataset: Any, paradigm: Any, subjects: Sequence[int] | None = None, *,
              paradigm_params: dict | None = None):
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
    dataset = get_dataset(dataset)
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    check_class_count(paradigm, dataset)
    subjects = check_subjects(dataset, subjects)
    logger.info("Loading %s subjects %s through %s", dataset.code, subjects,
                type(paradigm).__name__)
    with missing_data_as_file_not_found(dataset, subjects):
        X, y, metadata = paradigm.get_data(dataset, subjects=subjects)
    return X, y, metadata


def load_epochs(dataset: Any, paradigm: Any, subjects: Sequence[int] | None = None, *,
                paradigm_params: dict | None = None):
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
    dataset = get_dataset(dataset)
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    check_class_count(paradigm, dataset)
    subjects = check_subjects(dataset, subjects)
    with missing_data_as_file_not_found(dataset, subjects):
        epochs, y, metadata = paradigm.get_data(dataset, subjects=subjects, return_epochs=True)
    metadata = metadata.reset_index(drop=True).assign(label=np.asarray(y))
    epochs.metadata = metadata
    return epochs
