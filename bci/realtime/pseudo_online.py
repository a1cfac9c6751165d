"""Pseudo-online evaluation: MOABB's folds, the held-out recording replayed through the online loop.

Offline benchmarks score epochs cut around the cue. A BCI user lives with sliding windows,
decisions that come late or never, and activations during rest. This evaluation keeps MOABB's
folds and fitting, then replays the held-out part of the continuous recording through the very
:class:`~bci.realtime.loop.OnlineLoop` that runs live (an unthreaded
:class:`~bci.realtime.stream.Stream` over an :class:`~bci.realtime.sources.ArraySource`, no
LSL, no wall clock): deterministic, and as fast as the decoder computes.

For every fold (``within-session``: MOABB's ``WithinSessionSplitter``, 5 stratified shuffled
folds per session; ``cross-session`` and ``cross-subject``: leave one session / subject out,
as MOABB's evaluations):

1. the pipeline is fitted on the training epochs exactly as MOABB's evaluation fits it (same
   arrays, labels, registered estimator and seed), and scored on the test epochs (the offline
   ``score``, MOABB's metric, and ``offline_accuracy``);
2. it is wrapped as a :class:`~bci.models.decoder.Decoder` (the object a decoder file holds:
   raw windows in volts, the paradigm's band-pass applied to each window, classifiers without
   ``predict_proba`` calibrated by :func:`~bci.pipelines.train.calibrate`);
3. for each test trial, the raw recording from one window before the cue to ``horizon_s``
   after it is replayed through the loop: a window of the decoder's length ends at the cue and
   then every ``step_s``, each is decoded, and a :class:`ConfidencePolicy` turns confident
   windows into activations (the loop's stimulation requests);
4. the rest (no-control) periods of the recording (annotations named in ``rest_events``,
   e.g. PhysionetMI's T0 rest between trials, Kalunga2016's rest trials when rest is not a
   class) are replayed the same way; every activation there is a false activation.

Per trial this gives the accuracy of the most probable class against time after the cue, the
decision at ``deadline_s`` (the end of the offline epoch by default: the window that equals
the epoch), the selection (the first confident decision before the deadline, else the forced
decision at the deadline) and its time, and the first correct confident decision. Per fold:
accuracies, median decision time, Wolpaw's ITR (:func:`bci.evaluation.online.itr_bits_per_min`,
with the real decision times plus the inter-trial interval) and false activations per minute.

The replay of trials and rest periods lives in :mod:`bci.realtime.trial_replay`
(:func:`replay_trials`, :func:`replay_rest`, :class:`ConfidencePolicy`, :func:`find_cues`,
re-exported here); this module holds the folds, the fitting and the tables.

Layering: the evaluation layer (:mod:`bci.evaluation`) may not import the real-time loop, so
the pseudo-online evaluation lives here, one layer above it, and :func:`benchmark` is the
entry point that knows every evaluation: ``"pseudo-online"`` runs here, the MOABB names are
handed to :func:`bci.evaluation.benchmark` unchanged. ``bci.benchmark`` and ``bci benchmark``
are this function.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._checks import check_option, check_positive, check_real, check_type, ensure_int
from .._config import writable_dir
from .._logging import logger as _root_logger
from ..evaluation.online import (
    ONLINE_COLUMNS,
    format_online_table,
    itr_bits_per_min,
    plot_accuracy_curves,
    summarize_online,
    trial_metrics,
)
from .trial_replay import (  # the replay primitives, re-exported here
    ConfidencePolicy,
    TrialReplay,
    _rest_segments,
    find_cues,
    replay_rest,
    replay_trials,
)

logger = _root_logger.getChild("realtime.pseudo_online")

__all__ = ["EVALUATIONS", "KNOWN_ITI_S", "ConfidencePolicy", "EpochsInput", "PseudoOnlineResults",
           "TrialReplay", "benchmark", "find_cues", "pseudo_online", "replay_rest",
           "replay_trials", "write_online_results"]

#: Every evaluation :func:`benchmark` runs: MOABB's three and the pseudo-online one.
EVALUATIONS = ("within-session", "cross-session", "cross-subject", "pseudo-online")
#: Folds of the pseudo-online evaluation (MOABB's evaluation names).
SPLITS = ("within-session", "cross-session", "cross-subject")

#: Inter-trial interval (s) of the datasets whose protocol has one, added to each decision
#: time in the ITR: PhysionetMI (MOABB code ``PhysionetMotorImagery``): the T0 rest between
#: two tasks, 4.2 s in the annotations (cue-to-cue 8.3 s, task 4.1 s); Kalunga2016: cue-to-cue
#: 6.5 s in the annotations, of which 5 s of stimulation (Kalunga et al. 2016), so 1.5 s.
KNOWN_ITI_S = {"PhysionetMotorImagery": 4.2, "Kalunga2016": 1.5}


@dataclass
class PseudoOnlineResults:
    """What :func:`pseudo_online` returns.

    Attributes
    ----------
    results : pandas.DataFrame
        One row per subject, session (the test session or subject's, as MOABB) and pipeline:
        MOABB's columns (``score`` is the offline score of the same folds, MOABB's metric;
        ``samples`` the training epochs of a fold; ``evaluation`` is ``"pseudo-online"``, the
        folds in ``split``) and
        :data:`bci.evaluation.online.ONLINE_COLUMNS`, means over the folds.
    folds : pandas.DataFrame
        The same, one row per fold.
    trials : pandas.DataFrame
        One row per test trial: subject, session, run, fold, pipeline, label,
        ``deadline_correct``, ``selection_s``, ``selection_correct``, ``confident``,
        ``first_correct_s``.
    curves : pandas.DataFrame
        Accuracy against time after the cue: one row per fold and window end (``time_s``).
    """

    results: Any
    folds: Any
    trials: Any
    curves: Any
    params: dict = field(default_factory=dict)


def pseudo_online(dataset: Any = "SyntheticMotorImagery", paradigm: Any = "LeftRightImagery",
                  pipelines: Sequence[str] | Mapping[str, Any] = ("TS+LR", "MDM"),
                  subjects: Sequence[int] | None = None,
                  split: Literal["within-session", "cross-session", "cross-subject"]
                  = "within-session", *,
                  step_s: float = 0.1, deadline_s: float | None = None,
                  horizon_s: float | None = None, threshold: float = 0.8,
                  n_consecutive: int = 1, iti_s: float | None = None,
                  rest_events: Sequence[str] = ("rest",), n_folds: int = 5,
                  paradigm_params: dict | None = None, dataset_params: dict | None = None,
                  random_state: int | None = 42, blas_threads: int | None = 1,
                  chunk_size: int = 32, progress: bool = True,
                  pipeline_params: Mapping[str, dict] | None = None) -> PseudoOnlineResults:
    """Pseudo-online evaluation of pipelines: MOABB's folds, replayed through the online loop.

    See the module description (:mod:`bci.realtime.pseudo_online`) for what is done per fold.

    Parameters
    ----------
    dataset, paradigm, subjects, paradigm_params, dataset_params, random_state, blas_threads
        As for :func:`bci.evaluation.benchmark`. The window is the paradigm's epoch (set
        ``paradigm_params={"tmin": ..., "tmax": ...}`` for another); it must fit in the trial.
    pipelines : sequence of str | mapping of str to estimator
        Registered pipeline names (any: Riemannian, CSP, networks; ``SSVEP_CCA``, which
        fits on MNE epochs, through :class:`EpochsInput`) or your own estimators by name.
    split : "within-session" | "cross-session" | "cross-subject"
        The folds: MOABB's within-session splitter (``n_folds`` stratified shuffled folds per
        session, seeded with ``random_state``), or leave one session / subject out.
    step_s : float
        Time (s) between two decoded windows (> 0, at most the window).
    deadline_s : float | None
        Time (s after the cue) of the forced decision; the end of the offline epoch when
        None (the window that equals the epoch).
    horizon_s : float | None
        Last window end (s after the cue) of the accuracy curve; ``deadline_s`` when None.
    threshold : float
        Probability the most probable class must reach for a confident decision
        (:class:`ConfidencePolicy`'s ``on``).
    n_consecutive : int
        Consecutive confident windows needed.
    iti_s : float | None
        Inter-trial interval (s, >= 0) added to each decision time in the ITR;
        :data:`KNOWN_ITI_S` for the dataset when None (0 for datasets not listed).
    rest_events : sequence of str
        Annotation names of no-control periods (``"rest"``: PhysionetMI's T0, Kalunga2016's
        rest trials); ignored when they are a class of the paradigm.
    n_folds : int
        Folds of the within-session split (MOABB's default: 5).
    chunk_size : int
        Samples per pull of the replayed source.
    progress : bool
        Show a progress bar.
    pipeline_params : mapping of str to dict | None
        ``set_params`` keywords for some pipelines by name, e.g. ``{"EEGNet": {"max_epochs":
        5}}`` (a shorter training of a registered network).

    Returns
    -------
    results : PseudoOnlineResults

    Raises
    ------
    ValueError
        A step longer than the window, a window longer than the trial, a deadline outside the
        replayed horizon, too few subjects or sessions.
    TypeError
        A dataset whose runs are not continuous recordings.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    from ..data.loaders import (
        check_class_count,
        check_subjects,
        get_dataset,
        get_paradigm,
        skip_unused_runs,
    )

    check_option("split", split, SPLITS)
    step_s = check_positive(step_s, "step_s", unit="s")
    threshold = check_real(threshold, "threshold", low=0.0, high=1.0, kind="probability")
    n_consecutive = ensure_int(n_consecutive, "n_consecutive", minimum=1, what="windows")
    n_folds = ensure_int(n_folds, "n_folds", minimum=2, what="folds")
    chunk_size = ensure_int(chunk_size, "chunk_size", minimum=1, what="samples")
    dataset = get_dataset(dataset, **(dataset_params or {}))
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    subjects = check_subjects(dataset, subjects)
    if not paradigm.is_valid(dataset):
        raise ValueError(f"{dataset.code} is not a {type(paradigm).__name__} dataset (its "
                         f"paradigm is {dataset.paradigm!r}); pick a matching paradigm.")
    check_class_count(paradigm, dataset)
    dataset = skip_unused_runs(dataset, paradigm)
    if split == "cross-subject" and len(subjects) < 2:
        raise ValueError(f"cross-subject evaluation needs at least 2 subjects, got {subjects}.")
    if split == "cross-session" and dataset.n_sessions < 2:
        raise ValueError(f"cross-session evaluation needs at least 2 sessions; {dataset.code} "
                         f"has {dataset.n_sessions}.")
    window_s = _check_window(dataset, paradigm)
    if step_s > window_s:
        raise ValueError(
            f"step_s={step_s:g} s is longer than the window ({window_s:g} s, the paradigm's "
            f"epoch): samples between windows would never be decoded; use step_s <= "
            f"{window_s:g} s (e.g. 0.1).")
    epoch_end = float(dataset.interval[0] + (paradigm.tmax if paradigm.tmax is not None
                                             else dataset.interval[1] - dataset.interval[0]))
    deadline_s = epoch_end if deadline_s is None else check_real(deadline_s, "deadline_s",
                                                                 unit="s", low=0.0)
    horizon_s = deadline_s if horizon_s is None else check_real(horizon_s, "horizon_s",
                                                                unit="s", low=0.0)
    if deadline_s > horizon_s:
        raise ValueError(f"deadline_s={deadline_s:g} s is after horizon_s={horizon_s:g} s, the "
                         "last window replayed; raise horizon_s or lower deadline_s.")
    if iti_s is None:
        iti_s = KNOWN_ITI_S.get(dataset.code, 0.0)
    iti_s = check_positive(iti_s, "iti_s", unit="s", allow_zero=True)
    groups = _groups(pipelines, paradigm, random_state, pipeline_params)
    batches = [list(subjects)] if split == "cross-subject" else [[s] for s in subjects]
    params = {"step_s": step_s, "deadline_s": deadline_s, "horizon_s": horizon_s,
              "threshold": threshold, "n_consecutive": n_consecutive, "iti_s": iti_s,
              "window_s": window_s, "split": split, "n_folds": n_folds,
              "chunk_size": chunk_size}
    folds, trials, curves = [], [], []
    with tqdm(total=len(groups) * len(batches), desc=f"{dataset.code} pseudo-online",
              unit="step", disable=not progress) as bar, \
            threadpool_limits(limits=blas_threads, user_api="blas"):
        for para, named in groups:
            for batch in batches:
                data = _load(dataset, para, batch, rest_events)
                for name, estimator in named.items():
                    bar.set_postfix_str(f"subject {','.join(map(str, batch))}: {name}")
                    f, t, c = _evaluate(dataset, para, data, name, estimator, split, params,
                                        random_state)
                    folds += f
                    trials += t
                    curves += c
                bar.update()
    folds_df = pd.DataFrame(folds)
    group_cols = ["subject", "session", "pipeline"]
    means = folds_df.groupby(group_cols, sort=False).mean(numeric_only=True).reset_index()
    fixed = folds_df.groupby(group_cols, sort=False)[
        ["dataset", "evaluation", "paradigm", "split"]].first().reset_index()
    results = means.merge(fixed, on=group_cols)
    for col in ("samples", "channels", "n_sessions", "n_trials", "n_false_activations"):
        results[col] = results[col].round().astype(int)
    # counts and rest time add up over the folds; the rate is their ratio
    sums = folds_df.groupby(group_cols, sort=False)[
        ["n_trials", "n_false_activations", "rest_min"]].sum()
    for col in sums:
        results[col] = sums[col].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        results["false_activations_per_min"] = np.where(
            results["rest_min"] > 0, results["n_false_activations"] / results["rest_min"],
            np.nan)
    results = results[[c for c in _COLUMNS if c in results]]
    return PseudoOnlineResults(results=results, folds=folds_df[[c for c in _FOLD_COLUMNS
                                                               if c in folds_df]],
                               trials=pd.DataFrame(trials), curves=pd.DataFrame(curves),
                               params=params)


_MOABB_COLUMNS = ["score", "time", "samples", "subject", "session", "pipeline", "dataset",
                  "evaluation", "paradigm", "channels", "n_sessions"]
_COLUMNS = [*_MOABB_COLUMNS, *ONLINE_COLUMNS, "split"]
_FOLD_COLUMNS = [*_COLUMNS[:4], "fold", *_COLUMNS[4:]]


class EpochsInput:
    """Fit a pipeline that takes MNE epochs (``SSVEP_CCA``) on the arrays the loop decodes.

    MOABB's ``SSVEP_CCA`` fits on :class:`mne.Epochs` (it reads the stimulation frequency of
    each class from the event names) and predicts from any sequence of ``(n_chans, n_times)``
    trials. This wrapper builds an :class:`mne.EpochsArray` from the training arrays, with one
    event a trial whose name is the class name (``"13"`` for 13 Hz), fits a clone of
    ``estimator`` on it with the integer labels, and hands windows to its ``predict`` and
    ``predict_proba`` as arrays. The pseudo-online evaluation sets ``ch_names``, ``sfreq`` and
    ``class_names`` for each fold.

    Parameters
    ----------
    estimator : sklearn classifier
        A classifier whose ``fit`` takes :class:`mne.Epochs` and integer labels.
    ch_names : list of str | None
        Channel names of the epochs (``misc`` channels ``ch0``... when None).
    sfreq : float | None
        Sampling rate (Hz) of the arrays; required before ``fit``.
    class_names : list of str | None
        Name of each integer label (its event name); ``str(label)`` when None.

    Attributes
    ----------
    estimator_ : sklearn classifier
        The fitted clone.
    classes_ : numpy.ndarray
        The labels seen in ``fit``.
    """

    _estimator_type = "classifier"

    def __init__(self, estimator: Any, ch_names: list[str] | None = None,
                 sfreq: float | None = None, class_names: list[str] | None = None) -> None:
        self.estimator = estimator
        self.ch_names = ch_names
        self.sfreq = sfreq
        self.class_names = class_names

    def get_params(self, deep: bool = True) -> dict:
        """Return the constructor arguments (scikit-learn's contract)."""
        return {"estimator": self.estimator, "ch_names": self.ch_names, "sfreq": self.sfreq,
                "class_names": self.class_names}

    def set_params(self, **params: Any) -> EpochsInput:
        """Set constructor arguments; returns self."""
        for key, value in params.items():
            check_option("parameter", key, list(self.get_params()))
            setattr(self, key, value)
        return self

    def __sklearn_tags__(self):
        """Return a classifier's tags (what ``check_scoring`` and ``clone`` ask)."""
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    def fit(self, X: np.ndarray, y: np.ndarray) -> EpochsInput:
        """Fit a clone of ``estimator`` on ``X`` (n_epochs, n_chans, n_times) as MNE epochs."""
        import mne
        from sklearn.base import clone

        X = np.asarray(X, dtype=float)
        y = np.asarray(y)
        if X.ndim != 3 or len(X) != len(y):
            raise ValueError(f"X must be (n_epochs, n_chans, n_times) with one label an "
                             f"epoch, got X {X.shape} and {len(y)} labels.")
        if self.sfreq is None:
            raise RuntimeError("EpochsInput needs the sampling rate of the arrays: "
                               "set_params(sfreq=...) (Hz) before fit.")
        sfreq = check_positive(self.sfreq, "sfreq", unit="Hz")
        ch_names = (list(self.ch_names) if self.ch_names is not None
                    else [f"ch{i}" for i in range(X.shape[1])])
        self.classes_ = np.unique(y)
        codes = {label: i + 1 for i, label in enumerate(self.classes_)}
        events = np.column_stack([np.arange(len(y)), np.zeros(len(y), int),
                                  [codes[label] for label in y]])
        event_id = {(str(self.class_names[int(label)]) if self.class_names is not None
                     else str(label)): code for label, code in codes.items()}
        info = mne.create_info(ch_names, sfreq, "misc")
        epochs = mne.EpochsArray(X, info, events=events, event_id=event_id, verbose=False)
        self.estimator_ = clone(self.estimator).fit(epochs, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Labels of ``X`` (n_epochs, n_chans, n_times)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(np.asarray(X, dtype=float)))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n_epochs, n_classes) of ``X``."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict_proba(np.asarray(X, dtype=float)))

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on ``X`` and labels ``y``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


def _check_window(dataset: Any, paradigm: Any) -> float:
    """Return the window (s): the paradigm's epoch, which must lie within the trial."""
    trial_s = float(dataset.interval[1] - dataset.interval[0])
    tmin = float(paradigm.tmin)
    tmax = float(paradigm.tmax) if paradigm.tmax is not None else trial_s
    if tmax > trial_s + 1e-9 or tmin < 0:
        raise ValueError(
            f"The window ({tmin:g}-{tmax:g} s after the trial start, the paradigm's tmin/tmax) "
            f"is longer than {dataset.code}'s trial ({trial_s:g} s, interval "
            f"{list(dataset.interval)}); a window must lie within the trial: use "
            f"paradigm_params={{'tmin': 0, 'tmax': {trial_s:g}}} or less.")
    return tmax - tmin


def _groups(pipelines, paradigm, random_state, pipeline_params=None):
    """[(paradigm, {name: estimator})], one per paradigm the pipelines need."""
    from ..pipelines.registry import get_pipeline, get_spec, paradigm_for

    if isinstance(pipelines, str):
        pipelines = [p.strip() for p in pipelines.split(",") if p.strip()]
    if not len(pipelines):
        raise ValueError("No pipeline to evaluate; name at least one (see `bci pipelines`).")
    pipeline_params = dict(check_type(pipeline_params, (Mapping, type(None)),
                                      "pipeline_params")
                           or {})
    unknown = sorted(set(pipeline_params) - set(pipelines))
    if unknown:
        raise ValueError(f"pipeline_params names {unknown}, which are not among the pipelines "
                         f"evaluated ({list(pipelines)}); give parameters of those only.")
    groups: dict[str, tuple[Any, dict]] = {}
    for name in pipelines:
        if isinstance(pipelines, Mapping):
            para, est = paradigm, pipelines[name]
            if name in pipeline_params:  # on a clone: the caller's estimator stays as is
                from sklearn.base import clone

                est = clone(est).set_params(**pipeline_params[name])
        else:
            spec = get_spec(name)
            para = paradigm_for(spec, paradigm)
            est = get_pipeline(name, random_state=random_state, scoring=para.scoring)
            if name in pipeline_params:
                est.set_params(**pipeline_params[name])
            if spec.epochs_input:  # e.g. SSVEP_CCA: the loop decodes arrays
                est = EpochsInput(est)
        groups.setdefault(type(para).__name__, (para, {}))[1][name] = est
    return list(groups.values())


@dataclass
class _Data:
    """One paradigm's epochs of some subjects, and the runs they were cut from."""

    X: np.ndarray
    y: np.ndarray
    meta: Any
    onsets: np.ndarray
    runs: dict
    ch_names: list[str]
    tmin: float
    tmax: float
    filters: list
    sfreq: float
    rest: dict


def _load(dataset, paradigm, subjects, rest_events) -> _Data:
    """Epochs (MOABB's arrays), their cue samples in the continuous runs, and rest periods."""
    import copy

    from ..data.loaders import load_band_epochs, missing_data_as_file_not_found

    resolved = copy.deepcopy(paradigm)
    resolved.prepare_process(dataset)
    bands = load_band_epochs(dataset, resolved, subjects)
    epochs = bands[0]
    meta = epochs.metadata.reset_index(drop=True)
    data = [e.get_data(copy=True) for e in bands]
    X = (data[0] if len(data) == 1 else np.stack(data, axis=-1)) * dataset.unit_factor
    y = meta["label"].to_numpy()
    with missing_data_as_file_not_found(dataset, subjects):
        raw_data = dataset.get_data(subjects=list(subjects))
    event_id = resolved.used_events(dataset)
    ch_names = list(epochs.ch_names)
    onsets = np.zeros(len(meta), dtype=int)
    runs, rest, sfreq = {}, {}, None
    for (subject, session, run), rows in meta.groupby(["subject", "session", "run"],
                                                      sort=False).groups.items():
        raw = raw_data[subject][session][run]
        cues, names = find_cues(raw, event_id, float(epochs.tmin), float(epochs.tmax),
                                interval_start_s=float(dataset.interval[0]))
        rows = np.asarray(rows)
        if len(cues) != len(rows) or not np.array_equal(names, y[rows].astype(str)):
            raise RuntimeError(
                f"{dataset.code} subject {subject} session {session} run {run}: the "
                f"{len(rows)} epochs of the paradigm do not match the {len(cues)} events of "
                "the continuous run, so they cannot be replayed; the dataset's runs must hold "
                "the events the epochs were cut at (annotations or a stim channel).")
        onsets[rows] = cues
        if sfreq is None:
            sfreq = float(raw.info["sfreq"])
        elif float(raw.info["sfreq"]) != sfreq:
            raise ValueError(f"{dataset.code}: runs at {sfreq:g} and {raw.info['sfreq']:g} Hz; "
                             "one decoder needs one rate (resample the dataset).")
        runs[(subject, session, run)] = raw.get_data(picks=ch_names)
        rest[(subject, session, run)] = _rest_segments(
            raw, list(rest_events), np.unique(y.astype(str)), float(dataset.interval[0]))
    return _Data(X, y, meta, onsets, runs, ch_names, float(epochs.tmin), float(epochs.tmax),
                 [tuple(b) for b in resolved.filters], sfreq, rest)


def _splits(split, y, meta, n_folds, random_state):
    """Yield (fold, test subject, test session, train rows, test rows) as MOABB's evaluations."""
    from moabb.evaluations.splitters import WithinSessionSplitter
    from sklearn.model_selection import LeaveOneGroupOut

    if split == "within-session":
        for (subject, session), rows in meta.groupby(["subject", "session"],
                                                     sort=False).groups.items():
            rows = np.asarray(rows)
            sub_meta = meta.iloc[rows].reset_index(drop=True)
            splitter = WithinSessionSplitter(n_folds=n_folds, shuffle=True,
                                             random_state=random_state)
            for k, (train, test) in enumerate(splitter.split(y[rows], sub_meta)):
                yield k, subject, session, rows[train], rows[test]
        return
    key = "session" if split == "cross-session" else "subject"
    parts = (meta.groupby("subject", sort=False).groups.items() if split == "cross-session"
             else [(None, meta.index)])
    for _, rows in parts:
        rows = np.asarray(rows)
        groups = meta[key].to_numpy()[rows]
        for k, (train, test) in enumerate(LeaveOneGroupOut().split(rows, y[rows], groups)):
            test_rows = rows[test]
            for (subject, session), sub in meta.iloc[test_rows].groupby(
                    ["subject", "session"], sort=False).groups.items():
                yield k, subject, session, rows[train], np.asarray(sub)


def _evaluate(dataset, paradigm, data: _Data, name, estimator, split, params, random_state):
    """Fit, score offline and replay every fold of one pipeline; return fold/trial/curve rows."""
    from sklearn.base import clone
    from sklearn.metrics import check_scoring
    from sklearn.preprocessing import LabelEncoder

    from ..models.decoder import Decoder
    from ..pipelines.train import calibrate

    fold_rows, trial_rows, curve_rows = [], [], []
    policy = ConfidencePolicy(params["threshold"], n_consecutive=params["n_consecutive"])
    meta, y = data.meta, data.y
    encoder = LabelEncoder().fit(y)
    for fold, subject, session, train, test in _splits(split, y, meta, params["n_folds"],
                                                         random_state):
        y_train, y_test = encoder.transform(y[train]), encoder.transform(y[test])
        est = clone(estimator)
        if hasattr(est, "_network_state") and getattr(est, "sfreq", 0) is None:
            est.set_params(sfreq=float(data.sfreq))  # a DeepClassifier records its rate
        if isinstance(est, EpochsInput):  # the epochs' channels, rate and class names
            est.set_params(ch_names=list(data.ch_names),
                           sfreq=float(paradigm.resample or data.sfreq),
                           class_names=[str(c) for c in encoder.classes_])
        t0 = time.perf_counter()
        est.fit(data.X[train], y_train)
        fit_s = time.perf_counter() - t0
        scorer = check_scoring(est, scoring=paradigm.scoring)
        score = float(scorer(est, data.X[test], y_test))
        offline_acc = float(np.mean(est.predict(data.X[test]) == y_test))
        proba_est = est
        if not hasattr(est, "predict_proba"):
            proba_est, _ = calibrate(est, data.X[train], y_train, random_state=random_state)
        amp = np.moveaxis(np.abs(data.X[train]), 1, 0).reshape(data.X.shape[1], -1)
        decoder = Decoder(estimator=proba_est, ch_names=data.ch_names, sfreq=data.sfreq,
                          tmin=data.tmin, tmax=data.tmax,
                          classes=[str(c) for c in encoder.classes_],
                          filters=[tuple(b) for b in data.filters],
                          resample=float(paradigm.resample) if paradigm.resample else None,
                          unit_factor=float(dataset.unit_factor),
                          info={"pipeline": name, "fold": int(fold)},
                          train_amplitude=[float(v) for v in np.median(amp, axis=1)])
        # replay the test trials, run by run
        proba = []
        acts: list = []
        signal_s = wall_s = decided_s = 0.0
        order = []
        for key, rows in meta.iloc[test].groupby(["subject", "session", "run"],
                                                  sort=False).groups.items():
            rows = np.asarray(rows)
            rep = replay_trials(decoder, data.runs[key], data.sfreq, data.ch_names,
                                data.onsets[rows], step_s=params["step_s"],
                                horizon_s=params["horizon_s"], policy=policy,
                                chunk_size=params["chunk_size"])
            proba.append(rep.proba)
            acts += rep.activations
            order.append(rows)
            signal_s += rep.signal_s
            wall_s += rep.wall_s
            decided_s += rep.n_windows * params["step_s"]
            times = rep.times_s
        order = np.concatenate(order)
        proba = np.concatenate(proba)
        labels = encoder.transform(y[order])
        m = trial_metrics(times, proba, labels, acts, deadline_s=params["deadline_s"])
        # rest periods: within-session folds share a session's rest, each period is replayed
        # by one fold (round robin); other splits replay all rest of the test session
        segs = [(key, seg) for key in data.runs if key[:2] == (subject, session)
                for seg in data.rest[key]]
        if split == "within-session":
            segs = segs[fold::params["n_folds"]]
        n_fa, observed_s, t_rest = 0, 0.0, time.perf_counter()
        for key, seg in segs:
            n, obs, sig = replay_rest(decoder, data.runs[key], data.sfreq, data.ch_names,
                                      [seg], step_s=params["step_s"], policy=policy,
                                      chunk_size=params["chunk_size"])
            n_fa, observed_s, signal_s = n_fa + n, observed_s + obs, signal_s + sig
        wall_s += time.perf_counter() - t_rest
        n_classes = len(encoder.classes_)
        sel_t = m["selection_s"][np.isfinite(m["selection_s"])]
        sel_acc = float(np.nanmean(m["selection_correct"]))
        fold_rows.append({
            "score": score, "time": fit_s, "samples": int(len(train)),
            "subject": subject, "session": session, "pipeline": name, "fold": int(fold),
            "dataset": dataset.code, "evaluation": "pseudo-online",
            "paradigm": type(paradigm).__name__, "channels": len(data.ch_names),
            "n_sessions": int(meta.loc[meta.subject == subject, "session"].nunique()),
            "offline_accuracy": offline_acc,
            "online_accuracy": float(np.nanmean(m["deadline_correct"])),
            "selection_accuracy": sel_acc,
            "median_decision_s": float(np.median(sel_t)) if sel_t.size else np.nan,
            "median_first_correct_s": float(np.nanmedian(m["first_correct_s"]))
            if np.isfinite(m["first_correct_s"]).any() else np.nan,
            "itr_bits_min": itr_bits_per_min(n_classes, sel_acc,
                                             float(np.mean(sel_t)) + params["iti_s"])
            if sel_t.size and np.mean(sel_t) + params["iti_s"] > 0 else np.nan,
            "itr_deadline_bits_min": itr_bits_per_min(
                n_classes, float(np.nanmean(m["deadline_correct"])),
                params["deadline_s"] + params["iti_s"])
            if params["deadline_s"] + params["iti_s"] > 0 else np.nan,
            "false_activations_per_min": n_fa / (observed_s / 60.0) if observed_s else np.nan,
            "n_false_activations": n_fa, "rest_min": observed_s / 60.0,
            "n_trials": int(len(test)), "window_s": params["window_s"],
            "step_s": params["step_s"], "deadline_s": params["deadline_s"],
            "threshold": params["threshold"], "iti_s": params["iti_s"],
            "replay_speed": (decided_s + observed_s) / wall_s if wall_s > 0 else np.nan,
            "split": split,
        })
        for i, row in enumerate(order):
            trial_rows.append({
                "subject": subject, "session": session, "run": meta.run.iloc[row],
                "fold": int(fold), "pipeline": name, "label": str(y[row]),
                "deadline_correct": m["deadline_correct"][i],
                "selection_s": m["selection_s"][i],
                "selection_correct": m["selection_correct"][i],
                "confident": bool(m["confident"][i]),
                "first_correct_s": m["first_correct_s"][i]})
        acc = np.nanmean(m["correct"], axis=0)
        curve_rows += [{"dataset": dataset.code, "subject": subject, "session": session,
                        "fold": int(fold), "pipeline": name, "time_s": float(t),
                        "accuracy": float(a)} for t, a in zip(times, acc, strict=True)]
    return fold_rows, trial_rows, curve_rows


def write_online_results(res: PseudoOnlineResults, out: str | Path) -> Path:
    """Write a pseudo-online evaluation's tables and plot to the folder ``out``.

    ``results.csv``, ``folds.csv``, ``trials.csv``, ``curves.csv``, ``summary.csv``
    (:func:`bci.evaluation.online.summarize_online`) and ``accuracy_vs_time.png``
    (:func:`bci.evaluation.online.plot_accuracy_curves`).
    """
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res.results.to_csv(out / "results.csv", index=False)
    res.folds.to_csv(out / "folds.csv", index=False)
    res.trials.to_csv(out / "trials.csv", index=False)
    res.curves.to_csv(out / "curves.csv", index=False)
    summarize_online(res.results).to_csv(out / "summary.csv")
    fig = plot_accuracy_curves(res.curves, out / "accuracy_vs_time.png",
                               deadline_s=res.params.get("deadline_s"))
    plt.close(fig)
    logger.info("Wrote %s", out)
    return out


def benchmark(dataset: Any = "SyntheticMotorImagery", paradigm: Any = "LeftRightImagery",
              pipelines: Sequence[str] | Mapping[str, Any] | None = None,
              subjects: Sequence[int] | None = None,
              evaluation: Literal["within-session", "cross-session", "cross-subject",
                                  "pseudo-online"] = "within-session", *,
              split: Literal["within-session", "cross-session", "cross-subject"]
              = "within-session", step_s: float = 0.1, deadline_s: float | None = None,
              threshold: float = 0.8, n_consecutive: int = 1, iti_s: float | None = None,
              paradigm_params: dict | None = None, dataset_params: dict | None = None,
              random_state: int | None = 42, n_jobs: int = 1, blas_threads: int | None = 1,
              out: str | Path | None = None, progress: bool = True, client: Any = None,
              cache_dir: str | Path | None = None, recompute: bool = False,
              pipeline_params: Mapping[str, dict] | None = None) -> Any:
    """Evaluate pipelines offline (MOABB) or pseudo-online; ``bci.benchmark`` is this function.

    ``evaluation="within-session"``, ``"cross-session"`` or ``"cross-subject"`` run
    :func:`bci.evaluation.benchmark` (MOABB's evaluation) with the same arguments;
    ``"pseudo-online"`` runs :func:`pseudo_online` with the folds of ``split``.

    Parameters
    ----------
    dataset, paradigm, subjects, paradigm_params, dataset_params, random_state, n_jobs
        See :func:`bci.evaluation.benchmark` (``n_jobs`` is MOABB's; pseudo-online runs in one
        process).
    pipelines : sequence of str | mapping | None
        As :func:`bci.evaluation.benchmark`; its default pipelines when None.
    evaluation : "within-session" | "cross-session" | "cross-subject" | "pseudo-online"
        The evaluation.
    split, step_s, deadline_s, threshold, n_consecutive, iti_s, pipeline_params
        Pseudo-online only (see :func:`pseudo_online`); ignored otherwise.
    blas_threads, progress
        As :func:`bci.evaluation.benchmark`.
    out : str | Path | None
        Write the results there (pseudo-online: :func:`write_online_results`).
    client, cache_dir, recompute
        Offline evaluations only, as :func:`bci.evaluation.benchmark` (a Dask cluster and the
        per-cell cache); the pseudo-online evaluation runs in this process, uncached, and
        refuses a ``client``.

    Returns
    -------
    results : pandas.DataFrame
        MOABB's columns; pseudo-online adds :data:`bci.evaluation.online.ONLINE_COLUMNS`
        (``score`` is then the offline score of the same folds).
    """
    from ..evaluation.benchmarks import DEFAULT_PIPELINES
    from ..evaluation.benchmarks import benchmark as offline_benchmark

    check_option("evaluation", evaluation, EVALUATIONS)
    pipelines = DEFAULT_PIPELINES if pipelines is None else pipelines
    if evaluation != "pseudo-online":
        return offline_benchmark(dataset, paradigm, pipelines, subjects, evaluation,
                                 paradigm_params=paradigm_params,
                                 dataset_params=dataset_params, random_state=random_state,
                                 n_jobs=n_jobs, blas_threads=blas_threads, out=out,
                                 progress=progress, client=client, cache_dir=cache_dir,
                                 recompute=recompute)
    if client is not None:
        raise ValueError("The pseudo-online evaluation runs in this process; drop the Dask "
                         "client (--cluster / --scheduler), which the offline evaluations use.")
    if out is not None:
        writable_dir(out, "--out folder")
    res = pseudo_online(dataset, paradigm, pipelines, subjects, split, step_s=step_s,
                        deadline_s=deadline_s, threshold=threshold,
                        n_consecutive=n_consecutive, iti_s=iti_s,
                        paradigm_params=paradigm_params, dataset_params=dataset_params,
                        random_state=random_state, blas_threads=blas_threads,
                        progress=progress, pipeline_params=pipeline_params)
    if out is not None:
        write_online_results(res, out)
    return res.results


__all__ += ["format_online_table"]
