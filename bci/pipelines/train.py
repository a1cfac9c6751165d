"""Train a registered pipeline on a MOABB dataset and wrap it as a decoder file.

This module sits above features and models (it builds pipelines from both) and below
evaluation and the real-time loop, which read the decoder files it writes.

Two things make a fitted pipeline usable live:

- **Filter banks.** Pipelines that take filter-bank epochs (``SSVEP_TS+LR``, ``SSVEP_TS+SVM``,
  ``SSVEP_MDM``; any estimator with a ``FilterBank*`` paradigm) are trained on
  ``(n_epochs, n_chans, n_times, n_bands)`` arrays, one band per filter of the paradigm, and the
  decoder records those bands so that :meth:`~bci.models.decoder.Decoder.preprocess` filters
  raw windows the same way. A single-band paradigm of the right family (``SSVEP`` for the
  ``SSVEP_*`` pipelines) is turned into the filter-bank paradigm they need.
- **Probabilities.** Threshold policies need ``predict_proba``; SVMs have none. An estimator
  without it (``TS+SVM``, ``ACM+TS+SVM``, ``SSVEP_TS+SVM``) is refitted inside
  :class:`sklearn.calibration.CalibratedClassifierCV` (Platt's sigmoid on cross-validated
  decision values, ``ensemble=False``) with its tuned hyper-parameters frozen: the decoder's
  classifier is the tuned pipeline refitted on all epochs, as before, and its decision values
  are mapped to probabilities by the sigmoid. Benchmarks evaluate the registered pipelines,
  not the decoder, so their scores do not change.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._logging import logger
from ..models.decoder import Decoder, _float_or_none, apply_channel_map

__all__ = ["calibrate", "pretrained_channel_map", "train_decoder"]

#: Folds of the cross-validation that fits the sigmoid of :func:`calibrate` (at most; fewer
#: when a class has fewer epochs).
CALIBRATION_FOLDS = 5


def train_decoder(dataset: Any, paradigm: Any, pipeline: str | Any,
                  subjects: Sequence[int] | None = None, *, paradigm_params: dict | None = None,
                  dataset_params: dict | None = None, random_state: int | None = 42,
                  pretrained: str | Any | None = None, finetune: str | None = None) -> Decoder:
    """Fit a pipeline on all trials of some subjects and wrap it as a :class:`Decoder`.

    Parameters
    ----------
    dataset : str | moabb.datasets.base.BaseDataset
        Dataset name or instance.
    paradigm : str | moabb.paradigms.base.BaseParadigm
        Paradigm name or instance; its filter band(s), window and resampling become the
        decoder's preprocessing. Filter-bank paradigms (``FilterBankSSVEP``,
        ``FilterBankLeftRightImagery``...) give filter-bank decoders; a registered pipeline that
        needs another paradigm of the same family gets it (``SSVEP`` -> ``FilterBankSSVEP``
        for ``SSVEP_TS+LR``, with the same ``n_classes``, window and resampling).
    pipeline : str | estimator
        A registered pipeline name (see :func:`bci.pipelines.list_pipelines`) or an unfitted
        scikit-learn classifier (filter-bank paradigms: one that takes
        ``(n_epochs, n_chans, n_times, n_bands)``).
    subjects : sequence of int | None
        Training subjects; all when None.
    paradigm_params : dict | None
        Constructor arguments for a paradigm given by name.
    dataset_params : dict | None
        Parameters of a dataset given by name (:func:`bci.data.loaders.get_dataset`), e.g.
        ``{"feet_runs": []}`` for ``PhysionetMI``.
    random_state : int | None
        Seed of the pipeline's inner grid search, if it has one, and of the folds of the
        probability calibration (:func:`calibrate`) of classifiers without ``predict_proba``.
    pretrained : str | Path | None
        NeuroGPT only (``"NeuroGPT"``, ``"NeuroGPT-encoder"``, ``"NeuroGPT-linear"`` or a
        ``DeepClassifier("NeuroGPT")``): fine-tune from this pretrained file
        (:func:`bci.models.neurogpt.save_pretrained`). The network takes the file's
        architecture and weights; the epochs are resampled to the file's sampling rate (the
        paradigm's ``resample`` is set to it; another ``resample`` is an error) and must have
        its number of channels.
    finetune : "encoder_gpt" | "encoder" | "linear" | None
        NeuroGPT's fine-tuning strategy; None: the pipeline's (``"encoder_gpt"`` for
        ``"NeuroGPT"``).

    Returns
    -------
    decoder : Decoder
        Its ``estimator`` has ``predict_proba``; ``info["calibration"]`` says when the
        probabilities come from :func:`calibrate`. ``train_amplitude`` holds the median
        absolute amplitude per channel of the preprocessed training epochs (the range the
        decoder checks windows against).

    Raises
    ------
    ValueError
        A pipeline that takes MNE epochs (``SSVEP_CCA``), a single-band pipeline with a
        filter-bank paradigm, or too few epochs per class to calibrate probabilities.
    TypeError
        An estimator with neither ``predict_proba`` nor ``decision_function``.
    """
    from sklearn.base import clone
    from sklearn.preprocessing import LabelEncoder

    from ..data.loaders import (
        check_subjects,
        get_dataset,
        get_paradigm,
        load_band_epochs,
        skip_unused_runs,
    )
    from .registry import get_pipeline, get_spec, paradigm_for

    dataset = get_dataset(dataset, **(dataset_params or {}))
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    subjects = check_subjects(dataset, subjects)
    if isinstance(pipeline, str):
        name = pipeline
        spec = get_spec(name)
        if spec.epochs_input:
            raise ValueError(f"{name} takes MNE epochs, not arrays; decoder files hold array "
                             "pipelines (e.g. SSVEP_TS+LR for SSVEP).")
        asked = paradigm
        if _n_bands(asked) > 1 and not any(p.startswith("FilterBank") for p in spec.paradigms):
            raise ValueError(
                f"{name} takes single-band epochs ({' or '.join(spec.paradigms)}), not the "
                f"{_n_bands(asked)} bands of {type(asked).__name__}; use "
                f"{spec.paradigms[0]}, or give a filter-bank estimator.")
        paradigm = paradigm_for(spec, paradigm)
        if paradigm is not asked:
            logger.info("%s needs %s epochs; training on those", name, type(paradigm).__name__)
        estimator = get_pipeline(pipeline, random_state=random_state, scoring=paradigm.scoring)
    else:
        name, estimator = type(pipeline).__name__, clone(pipeline)
    preprocessing = None
    if pretrained is not None or finetune is not None:
        estimator, paradigm = _neurogpt_estimator(estimator, paradigm, pretrained, finetune)
        preprocessing = _pretrained_preprocessing(pretrained)
        if preprocessing is not None:
            # the pretraining band (MOABB's IIR on the continuous recording, the decoder's
            # on each window); scaling: the decoder's fixed robust statistics, not the network's
            paradigm = copy.deepcopy(paradigm)
            paradigm.filters = [[preprocessing["l_freq"], preprocessing["h_freq"]]]
            estimator.set_params(scaling="none")
    dataset = skip_unused_runs(dataset, paradigm)
    paradigm = copy.deepcopy(paradigm)  # resolve its bands (FilterBankSSVEP: from the events)
    paradigm.prepare_process(dataset)
    bands = load_band_epochs(dataset, paradigm, subjects)
    epochs = bands[0]
    labels = epochs.metadata["label"].to_numpy()
    encoder = LabelEncoder().fit(labels)
    X = _stack_bands(bands) * dataset.unit_factor  # the very array MOABB's get_data returns
    if hasattr(estimator, "_network_state") and getattr(estimator, "sfreq", 0) is None:
        # a DeepClassifier: its network's config records the rate of the epochs it sees
        estimator.set_params(sfreq=float(epochs.info["sfreq"]))
    channel_map = None
    X_fit = X
    if pretrained is not None and preprocessing is None:
        from ..models.neurogpt import pretrained_config

        n_file = pretrained_config(pretrained)["n_chans"]
        if n_file != X.shape[1]:
            raise ValueError(
                f"{pretrained} holds a NeuroGPT of another configuration: n_chans (file "
                f"{n_file}, model {X.shape[1]}), and records no pretraining preprocessing (it "
                "was not written by `bci pretrain`), so the epochs cannot be mapped onto its "
                "channels; pretrain with `bci pretrain` (its files map any montage onto the "
                "model's channels), or fine-tune on epochs of the file's channels.")
    if preprocessing is not None:
        channel_map = pretrained_channel_map(pretrained, list(epochs.ch_names), X)
        X_fit = apply_channel_map(X, channel_map)
        logger.info("Mapped the %d epoch channels onto the pretrained NeuroGPT's %d (%d "
                    "present)", X.shape[1], X_fit.shape[1],
                    sum(p >= 0 for p in channel_map["picks"]))
    logger.info("Fitting %s on %d epochs of shape %s", name, len(X_fit), X_fit.shape[1:])
    y = encoder.transform(labels)
    estimator.fit(X_fit, y)
    info: dict[str, Any] = {}
    if not hasattr(estimator, "predict_proba"):
        estimator, info["calibration"] = calibrate(estimator, X_fit, y,
                                                   random_state=random_state)

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
            "ch_types": list(epochs.get_channel_types()),  # checked against live streams
            **({"pretrained": str(pretrained)} if pretrained is not None else {}),
            **info,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
        train_amplitude=_median_abs_per_channel(X),
        channel_map=channel_map,
    )


def _pretrained_preprocessing(pretrained: Any) -> dict | None:
    """Return the preprocessing a pretrained file records (``bci pretrain``), or None."""
    if pretrained is None:
        return None
    from ..models.decoder import network_info

    pre = network_info(pretrained).get("preprocessing")
    return pre if isinstance(pre, dict) and "channels" in pre else None


def pretrained_channel_map(pretrained: Any, ch_names: Sequence[str], X: np.ndarray) -> dict:
    """Map epochs' channels onto a pretrained NeuroGPT's; robust statistics per channel.

    Parameters
    ----------
    pretrained : str | Path
        A file written by ``bci pretrain`` (:func:`bci.pipelines.pretrain.pretrain`).
    ch_names : sequence of str
        The epochs' channels.
    X : ndarray, shape (n_epochs, n_chans, n_times)
        Training epochs, filtered to the file's band and resampled to its rate; the robust
        statistics (median, IQR / 1.349 per channel) are theirs.

    Returns
    -------
    channel_map : dict
        :attr:`bci.models.decoder.Decoder.channel_map`; apply it with
        :func:`bci.models.decoder.apply_channel_map`.

    Raises
    ------
    ValueError
        A file without recorded preprocessing, or no channel in common.
    """
    from ..data.pretraining import map_channels

    preprocessing = _pretrained_preprocessing(pretrained)
    if preprocessing is None:
        raise ValueError(f"{pretrained} records no preprocessing (channels, band); pretrain "
                         "it with `bci pretrain` (bci.pipelines.pretrain.pretrain).")
    X = np.asarray(X)
    mapping = map_channels(ch_names, channels=preprocessing["channels"])
    picks = mapping.picks
    center = np.zeros(len(picks))
    scale = np.ones(len(picks))
    for i, p in enumerate(picks):
        if p < 0:
            continue
        values = X[:, p].ravel()
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        center[i] = med
        scale[i] = (q3 - q1) / 1.349 if q3 > q1 else 1.0
    logger.info("Pretrained channels: present %s; absent %s; dropped %s", mapping.present,
                mapping.absent, mapping.dropped)
    return {"channels": list(mapping.channels), "picks": [int(p) for p in picks],
            "center": [float(v) for v in center], "scale": [float(v) for v in scale],
            "clip": preprocessing.get("clip")}


def _neurogpt_estimator(estimator: Any, paradigm: Any, pretrained: Any, finetune: str | None
                        ) -> tuple[Any, Any]:
    """Set a NeuroGPT classifier's pretrained file and strategy; resample to the file's rate."""
    from ..models.classifier import DeepClassifier
    from .registry import neurogpt_pipeline

    if not (isinstance(estimator, DeepClassifier) and estimator.model == "NeuroGPT"):
        raise ValueError(f"pretrained and finetune are for NeuroGPT pipelines (NeuroGPT, "
                         f"NeuroGPT-encoder, NeuroGPT-linear), got "
                         f"{getattr(estimator, 'model', type(estimator).__name__)}.")
    if finetune is None:
        finetune = (estimator.model_params or {}).get("finetune", "encoder_gpt")
    settings = {k: v for k, v in estimator.get_params(deep=False).items()
                if k not in ("model", "model_params", "sfreq")}
    estimator = neurogpt_pipeline(finetune, pretrained=pretrained, **settings)
    if pretrained is None:
        return estimator, paradigm
    sfreq = estimator.sfreq
    if paradigm.resample is None:
        paradigm = copy.deepcopy(paradigm)
        paradigm.resample = sfreq
        logger.info("Resampling the epochs to %g Hz, the rate of the pretrained NeuroGPT %s",
                    sfreq, pretrained)
    elif float(paradigm.resample) != sfreq:
        raise ValueError(f"The pretrained NeuroGPT {pretrained} takes epochs at {sfreq:g} Hz, "
                         f"but the paradigm resamples to {paradigm.resample:g} Hz; drop the "
                         f"paradigm's resample or set it to {sfreq:g}.")
    return estimator, paradigm


def calibrate(estimator: Any, X, y, *, random_state: int | None = 42,
              n_folds: int = CALIBRATION_FOLDS) -> tuple[Any, dict]:
    """Give a fitted classifier without ``predict_proba`` calibrated probabilities.

    The fitted estimator's tuned hyper-parameters are frozen (a grid search is replaced by its
    best estimator, also inside a pipeline, as ``ACM+TS+SVM``'s SVM step), and the result is
    fitted inside :class:`sklearn.calibration.CalibratedClassifierCV` with ``method="sigmoid"``
    (Platt scaling) on stratified, shuffled ``n_folds``-fold decision values and
    ``ensemble=False``: the returned classifier is that estimator refitted on all epochs, its
    decision values mapped through the fitted sigmoid (one-vs-rest and normalised for more than
    two classes). Its ``predict`` is the argmax of those probabilities.

    Parameters
    ----------
    estimator : sklearn classifier
        Fitted on ``X, y``, with ``decision_function``.
    X : array, shape (n_epochs, ...)
        The training epochs.
    y : array, shape (n_epochs,)
        Integer class labels.
    random_state : int | None
        Seed of the fold shuffling.
    n_folds : int
        Folds (at most; the smallest class's count when lower, and at least 2).

    Returns
    -------
    calibrated : sklearn.calibration.CalibratedClassifierCV
        Fitted.
    report : dict
        ``method``, ``n_folds``, ``params`` (the frozen hyper-parameters of grid searches) and
        ``agreement``: the fraction of training epochs on which the calibrated argmax equals the
        tuned classifier's ``predict``.

    Raises
    ------
    TypeError
        The estimator has no ``decision_function`` either.
    ValueError
        A class has fewer than 2 epochs.
    """
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold

    from .._checks import ensure_int

    n_folds = ensure_int(n_folds, "n_folds", minimum=2)
    if not hasattr(estimator, "decision_function"):
        raise TypeError(
            f"{type(estimator).__name__} has neither predict_proba nor decision_function, so a "
            "decoder cannot give class probabilities (threshold policies need them). Train a "
            "pipeline with probabilities (TS+LR, MDM, CSP+LDA, SSVEP_TS+LR...).")
    smallest = int(np.bincount(np.asarray(y)).min())
    if smallest < 2:
        raise ValueError(
            f"Calibrating {type(estimator).__name__}'s probabilities needs >= 2 epochs per "
            f"class, got {smallest} in the smallest class; train on more subjects or use a "
            "pipeline with probabilities (TS+LR, MDM, SSVEP_TS+LR...).")
    frozen, params = _freeze(estimator)
    folds = min(n_folds, smallest)
    calibrated = CalibratedClassifierCV(
        clone(frozen), method="sigmoid", ensemble=False,
        cv=StratifiedKFold(folds, shuffle=True, random_state=random_state))
    calibrated.fit(X, y)
    agreement = float(np.mean(calibrated.predict(X) == estimator.predict(X)))
    logger.info("Calibrated %s with a %d-fold sigmoid; argmax agrees with predict on %.3f "
                "of the training epochs", type(estimator).__name__, folds, agreement)
    return calibrated, {"method": "sigmoid", "n_folds": folds, "params": params,
                        "agreement": round(agreement, 4)}


def _freeze(estimator: Any) -> tuple[Any, dict]:
    """Return an unfitted copy of a fitted estimator with its grid searches' choices fixed."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    params: dict[str, Any] = {}
    if isinstance(estimator, GridSearchCV):
        params.update({k: _jsonable(v) for k, v in estimator.best_params_.items()})
        estimator = estimator.best_estimator_
    if isinstance(estimator, Pipeline):
        steps = []
        for step, part in estimator.steps:
            if isinstance(part, GridSearchCV):
                params.update({f"{step}__{k}": _jsonable(v)
                               for k, v in part.best_params_.items()})
                part = part.best_estimator_
            steps.append((step, clone(part)))
        return Pipeline(steps), params
    return clone(estimator), params


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)


def _n_bands(paradigm: Any) -> int:
    filters = getattr(paradigm, "filters", None)
    return 1 if filters is None or not len(filters) else len(filters)


def _stack_bands(bands: list) -> np.ndarray:
    """Epochs data ``(n_epochs, n_chans, n_times)``, with a last axis of bands if several."""
    data = [epochs.get_data(copy=True) for epochs in bands]
    for epochs in bands[1:]:
        if not np.array_equal(epochs.events, bands[0].events):
            raise RuntimeError("The filter bands hold different epochs; this is a MOABB "
                               "defect, please report it with the dataset and paradigm.")
    return data[0] if len(data) == 1 else np.stack(data, axis=-1)


def _median_abs_per_channel(X: np.ndarray) -> list[float]:
    """Median absolute amplitude per channel over epochs, samples (and bands)."""
    moved = np.moveaxis(np.abs(X), 1, 0).reshape(X.shape[1], -1)
    return [float(v) for v in np.median(moved, axis=1)]


def _raw_sfreq(dataset, subject: int) -> float:
    sessions = dataset.get_data(subjects=[subject])[subject]
    run = next(iter(next(iter(sessions.values())).values()))
    return float(run.info["sfreq"])
