"""Train a registered pipeline on a MOABB dataset and wrap it as a decoder file.

This module sits above features and models (it builds pipelines from both) and below
evaluation and the real-time loop, which read the decoder files it writes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from .._logging import logger
from ..models.decoder import Decoder, _float_or_none

__all__ = ["train_decoder"]


def train_decoder(dataset: Any, paradigm: Any, pipeline: str | Any,
                  subjects: Sequence[int] | None = None, *, paradigm_params: dict | None = None,
                  random_state: int | None = 42) -> Decoder:
    """Fit a pipeline on all trials of some subjects and wrap it as a :class:`Decoder`.

    Parameters
    ----------
    dataset : str | moabb.datasets.base.BaseDataset
        Dataset name or instance.
    paradigm : str | moabb.paradigms.base.BaseParadigm
        Paradigm name or instance; its filter band(s), window and resampling become the
        decoder's preprocessing.
    pipeline : str | estimator
        A registered pipeline name (see :func:`bci.pipelines.list_pipelines`) or an unfitted
        scikit-learn estimator.
    subjects : sequence of int | None
        Training subjects; all when None.
    paradigm_params : dict | None
        Constructor arguments for a paradigm given by name.
    random_state : int | None
        Seed of the pipeline's inner grid search, if it has one.

    Returns
    -------
    decoder : Decoder
    """
    from sklearn.base import clone
    from sklearn.preprocessing import LabelEncoder

    from ..data.loaders import check_subjects, get_dataset, get_paradigm, load_data, load_epochs
    from .registry import get_pipeline, get_spec

    dataset = get_dataset(dataset)
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    subjects = check_subjects(dataset, subjects)
    if isinstance(pipeline, str):
        name = pipeline
        if get_spec(name).epochs_input:
            raise ValueError(f"{name} takes MNE epochs, not arrays; decoder files hold array "
                             "pipelines (e.g. SSVEP_TS+LR for SSVEP).")
        estimator = get_pipeline(pipeline, random_state=random_state, scoring=paradigm.scoring)
    else:
        name, estimator = type(pipeline).__name__, clone(pipeline)
    epochs = load_epochs(dataset, paradigm, subjects)
    labels = epochs.metadata["label"].to_numpy()
    encoder = LabelEncoder().fit(labels)
    if len(paradigm.filters) == 1:  # the very array MOABB's get_data returns
        X = epochs.get_data(copy=True) * dataset.unit_factor
    else:  # filter banks: MOABB's epochs hold one band only
        X, _, _ = load_data(dataset, paradigm, subjects)
    if hasattr(estimator, "_network_state") and getattr(estimator, "sfreq", 0) is None:
        # a DeepClassifier: its network's config records the rate of the epochs it sees
        estimator.set_params(sfreq=float(epochs.info["sfreq"]))
    logger.info("Fitting %s on %d epochs of shape %s", name, len(X), X.shape[1:])
    estimator.fit(X, encoder.transform(labels))

    filters = [tuple(map(_float_or_none, band)) for band in paradigm.filters]
    raw_sfreq = _raw_sfreq(dataset, subjects[0]) if paradigm.resample else epochs.info["sfreq"]
    return Decoder(
        estimator=estimator,
        ch_names=list(epochs.ch_names),
        sfreq=float(raw_sfreq),
        tmin=float(epochs.tmin),
        tmax=float(epochs.tmax),
        classes=[str(c) for c in encoder.classes_],
        filters=filters,
        resample=float(paradigm.resample) if paradigm.resample else None,
        unit_factor=float(dataset.unit_factor),
        info={
            "dataset": dataset.code,
            "paradigm": type(paradigm).__name__,
            "pipeline": name,
            "subjects": list(subjects),
            "n_epochs": int(len(X)),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )


def _raw_sfreq(dataset, subject: int) -> float:
    sessions = dataset.get_data(subjects=[subject])[subject]
    run = next(iter(next(iter(sessions.values())).values()))
    return float(run.info["sfreq"])
