"""Registry of named decoding pipelines, under the names MOABB uses in its published results.

Each entry builds a fresh scikit-learn estimator from pyRiemann, scikit-learn and MOABB parts,
following MOABB's pipeline definitions (its ``pipelines/*.yml``). Where MOABB tunes
hyper-parameters with a ``param_grid`` handed to its evaluation, the registered pipeline embeds
the same search: a :class:`~sklearn.model_selection.GridSearchCV` with MOABB's inner
cross-validation (stratified 3-fold, shuffled with the evaluation's ``random_state``, scored with
the paradigm's metric). Evaluating it with MOABB therefore gives exactly the scores of MOABB's own
``param_grid`` route, and ``get_pipeline(name).fit(X, y)`` tunes itself outside MOABB too.

``ACM+TS+SVM`` differs from MOABB's in the size and shape of its search (MOABB searches 600
settings jointly, about a day per subject for 64 channels on 2 cores): it searches order and lag
over :data:`ACM_GRID` and, inside each candidate, the SVM's C and kernel by their own inner
3-fold split, so each augmented covariance and its tangent space (the costly part: a Riemannian
mean of (order x n_chans)-square matrices) is computed once per candidate. MOABB's exact search
is ``get_pipeline("ACM+TS+SVM", param_grid=MOABB_ACM_GRID)``.

Examples
--------
>>> from bci.pipelines import get_pipeline, list_pipelines
>>> "TS+SVM" in list_pipelines()
True
>>> get_pipeline("TS+LR")  # doctest: +ELLIPSIS
Pipeline(steps=[('covariances', Covariances(estimator='oas')), ...])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._checks import check_option

#: MOABB's grid for its "AUG Tang SVM Grid" pipeline (``pipelines/AUG_TANG_SVM_grid.yml``):
#: 600 candidates. Pass it as ``get_pipeline("ACM+TS+SVM", param_grid=MOABB_ACM_GRID)`` to
#: reproduce MOABB's search exactly (slow: hours per subject with 64 channels on a laptop).
MOABB_ACM_GRID: dict[str, list] = {
    "acm__order": list(range(1, 11)),
    "acm__lag": list(range(1, 11)),
    "svc__C": [0.5, 1.0, 1.5],
    "svc__kernel": ["rbf", "linear"],
}

#: Default ``ACM+TS+SVM`` search over the embedding: orders and lags the ACM paper finds useful
#: for motor imagery at 100-250 Hz (order 1 is the plain covariance, whatever the lag).
ACM_GRID: list[dict[str, list]] = [
    {"acm__order": [1], "acm__lag": [1]},
    {"acm__order": [2, 4], "acm__lag": [1, 3]},
]

#: MOABB's grid for its "Tangent Space SVM Grid" pipeline (``pipelines/TSSVM_grid.yml``).
TS_SVM_GRID: dict[str, list] = {"svc__C": [0.5, 1.0, 1.5], "svc__kernel": ["rbf", "linear"]}


@dataclass(frozen=True)
class PipelineSpec:
    """How to build one named pipeline.

    Attributes
    ----------
    name : str
        Registry name (MOABB's name in its results tables).
    build : callable
        Returns a fresh, unfitted estimator.
    paradigms : tuple of str
        MOABB paradigm classes the pipeline expects its input from; the first is preferred.
    param_grid : dict | list of dict | None
        Hyper-parameter grid searched inside the pipeline, if any.
    final_grid : dict | None
        Grid of the last step, searched by its own inner cross-validation for each candidate of
        ``param_grid`` (so the costly features are computed once per candidate, not once per
        candidate and classifier setting).
    description : str
        One line: what the pipeline does and where it comes from.
    family : str
        MOABB paradigm family (``"imagery"``, ``"ssvep"``), or ``"any"`` for pipelines that take
        the epochs of every paradigm they list (the deep decoders).
    epochs_input : bool
        The estimator takes :class:`mne.Epochs` and the datasets' own class names (MOABB's
        CCA-family SSVEP classifiers read the stimulation frequencies from them); MOABB must
        evaluate it with ``return_epochs=True, mne_labels=True``.
    """

    name: str
    build: Callable[[], Any]
    paradigms: tuple[str, ...]
    param_grid: dict[str, list] | list[dict[str, list]] | None = None
    final_grid: dict[str, list] | None = None
    description: str = ""
    family: str = "imagery"
    epochs_input: bool = False


def _cov(estimator: str = "oas"):
    from pyriemann.estimation import Covariances

    return Covariances(estimator=estimator)


def _check() -> list:
    """First step of the pipelines on epochs: clear errors for wrong shapes and NaNs."""
    from ..features.validation import CheckEpochs

    return [("check", CheckEpochs())]


def _csp_lda():
    from pyriemann.spatialfilters import CSP
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import Pipeline

    return Pipeline([*_check(), ("covariances", _cov()), ("csp", CSP(nfilter=6)),
                     ("lda", LinearDiscriminantAnalysis(solver="svd"))])


def _ts(final, name: str, *, pre: list | None = None):
    from pyriemann.tangentspace import TangentSpace
    from sklearn.pipeline import Pipeline

    return Pipeline([*(_check() if pre is None else pre), ("covariances", _cov()),
                     ("tangentspace", TangentSpace(metric="riemann")), (name, final)])


def _ts_lr(pre: list | None = None):
    from sklearn.linear_model import LogisticRegression

    return _ts(LogisticRegression(C=1.0), "logisticregression", pre=pre)


def _ts_svm(pre: list | None = None):
    from sklearn.svm import SVC

    return _ts(SVC(kernel="linear"), "svc", pre=pre)


def _mdm(pre: list | None = None, *, fgmdm: bool = False):
    from pyriemann.classification import MDM, FgMDM
    from sklearn.pipeline import Pipeline

    clf = FgMDM(metric="riemann") if fgmdm else MDM(metric="riemann")
    return Pipeline([*(_check() if pre is None else pre), ("covariances", _cov()),
                     ("fgmdm" if fgmdm else "mdm", clf)])


def _rank() -> list:
    """Input check, then projection onto the signal subspace (rank estimated as MNE does)."""
    from ..features.rank import SubspaceProjection

    return [*_check(), ("rank", SubspaceProjection())]


def _acm_ts_svm():
    from pyriemann.tangentspace import TangentSpace
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    from ..features.augmented import AugmentedCovariance

    return Pipeline([*_check(), ("acm", AugmentedCovariance(order=1, lag=1, estimator="cov")),
                     ("tangentspace", TangentSpace(metric="riemann")),
                     ("svc", SVC(kernel="rbf"))])


def _extended():
    from moabb.pipelines import ExtendedSSVEPSignal

    return [("extendedssvepsignal", ExtendedSSVEPSignal())]


#: Training settings of the registered deep pipelines (``EEGNeX``, ``EEGNet``,
#: ``ShallowConvNet``): a budget for CPU training of one subject's epochs, with augmentation of
#: the training batches (random circular time shift up to 10 %, gain 0.8-1.2, 10 % white noise;
#: see ``recipes/deep_vs_riemann.py`` and the README for the measurements behind them). Any
#: :class:`bci.models.classifier.DeepClassifier` argument can be set on the returned estimator
#: with ``set_params`` (``augmentation=None`` turns augmentation off).
DEEP_SETTINGS: dict[str, Any] = {
    "scaling": "channel", "max_epochs": 60, "patience": None, "batch_size": 16, "lr": 1e-3,
    "weight_decay": 1e-2, "scheduler": "cosine", "val_fraction": 0.0,
    "recalibrate_batch_norm": True, "seed": 42,
    "augmentation": {"time_shift": 0.1, "scale": 0.2, "noise": 0.1},
}


def _deep(model: str):
    def build():
        # features and models are the same layer; the import stays lazy so that the feature
        # pipelines never import torch
        from ..models.classifier import DeepClassifier

        return DeepClassifier(model, **DEEP_SETTINGS)

    return build


def neurogpt_pipeline(finetune: str = "encoder_gpt", *, pretrained: str | None = None,
                      **settings: Any):
    """Return a :class:`~bci.models.classifier.DeepClassifier` training a NeuroGPT.

    Parameters
    ----------
    finetune : "encoder_gpt" | "encoder" | "linear"
        Fine-tuning strategy of the paper (see :class:`bci.models.neurogpt.NeuroGPT`).
    pretrained : str | None
        Network file of a pretrained NeuroGPT (:func:`bci.models.neurogpt.save_pretrained`):
        the classifier takes its architecture, sampling rate and weights; its epochs must have
        the file's channels and be sampled at its ``sfreq`` (:func:`bci.pipelines.train.
        train_decoder` resamples them). None: trained from scratch, the whole window as one
        chunk (the registered ``NeuroGPT*`` pipelines, whose epochs come without a sampling
        rate).
    **settings
        :class:`~bci.models.classifier.DeepClassifier` arguments replacing
        :data:`DEEP_SETTINGS`.

    Returns
    -------
    classifier : DeepClassifier
    """
    from ..models.classifier import DeepClassifier

    model_params: dict[str, Any] = {"finetune": finetune}
    sfreq = settings.pop("sfreq", None)
    if pretrained is not None:
        from ..models.neurogpt import pretrained_config

        config = pretrained_config(pretrained)
        config.pop("n_chans")
        sfreq = config.pop("sfreq")
        model_params.update(config, pretrained=str(pretrained))
    return DeepClassifier("NeuroGPT", model_params=model_params, sfreq=sfreq,
                          **{**DEEP_SETTINGS, **settings})


def _moabb_ssvep(cls_name: str, **params):
    def build():
        import moabb.pipelines.classification as clf

        return getattr(clf, cls_name)(**params)

    return build


_MI = ("LeftRightImagery", "MotorImagery")
PIPELINES: dict[str, PipelineSpec] = {
    spec.name: spec
    for spec in [
        PipelineSpec("CSP+LDA", _csp_lda, _MI,
                     description="OAS covariances, pyRiemann CSP (6 filters), LDA (MOABB CSP.yml)"),
        PipelineSpec("TS+LR", _ts_lr, _MI,
                     description="OAS covariances, Riemannian tangent space, logistic regression"),
        PipelineSpec("TS+SVM", _ts_svm, _MI, param_grid=TS_SVM_GRID,
                     description="OAS covariances, tangent space, SVM with MOABB's C/kernel grid"),
        PipelineSpec("MDM", _mdm, _MI,
                     description="OAS covariances, minimum distance to Riemannian class means"),
        PipelineSpec("FgMDM", lambda: _mdm(fgmdm=True), _MI,
                     description="OAS covariances, geodesic-filtered MDM"),
        PipelineSpec("RANK+TS+LR", lambda: _ts_lr(_rank()), _MI,
                     description="projection onto the signal subspace (rank as MNE, for "
                                 "rank-deficient MEG), then TS+LR"),
        PipelineSpec("RANK+MDM", lambda: _mdm(_rank()), _MI,
                     description="projection onto the signal subspace (rank as MNE, for "
                                 "rank-deficient MEG), then MDM"),
        PipelineSpec("ACM+TS+SVM", _acm_ts_svm, _MI, param_grid=ACM_GRID,
                     final_grid={"C": [0.5, 1.0, 1.5], "kernel": ["rbf", "linear"]},
                     description="augmented covariance (order/lag grid-searched), tangent space, "
                                 "SVM (Carrara & Papadopoulo)"),
        PipelineSpec("SSVEP_TS+LR", lambda: _ts_lr(_extended()), ("FilterBankSSVEP",),
                     family="ssvep",
                     description="filter-bank covariances (OAS), tangent space, logistic "
                                 "regression (MOABB TSLR-SSVEP.yml)"),
        PipelineSpec("SSVEP_TS+SVM", lambda: _ts_svm(_extended()), ("FilterBankSSVEP",),
                     family="ssvep",
                     description="filter-bank covariances (OAS), tangent space, linear SVM"),
        PipelineSpec("SSVEP_MDM", lambda: _mdm(_extended()), ("FilterBankSSVEP",),
                     family="ssvep", description="filter-bank covariances (OAS), MDM"),
        PipelineSpec("SSVEP_CCA", _moabb_ssvep("SSVEP_CCA"), ("SSVEP",), family="ssvep",
                     epochs_input=True,
                     description="canonical correlation with sine/cosine references (MOABB)"),
        *[PipelineSpec(name, _deep(name), (*_MI, "SSVEP"), family="any", description=desc)
          for name, desc in [
              ("EEGNeX", "EEGNeX-8,32 network (Chen et al.), Lightning-trained"),
              ("EEGNet", "EEGNet-8,2 network (Lawhern et al.), Lightning-trained"),
              ("ShallowConvNet", "Shallow ConvNet (Schirrmeister et al.), Lightning-trained"),
          ]],
        *[PipelineSpec(name, (lambda ft=finetune: neurogpt_pipeline(ft)), (*_MI, "SSVEP"),
                       family="any", description=desc)
          for name, finetune, desc in [
              ("NeuroGPT", "encoder_gpt", "Neuro-GPT (Cui et al.): conformer encoder + causal "
                                          "GPT, trained from scratch (--pretrained: fine-tuned)"),
              ("NeuroGPT-encoder", "encoder", "Neuro-GPT's encoder alone with an MLP head "
                                              "(the paper's encoder-only fine-tuning)"),
              ("NeuroGPT-linear", "linear", "linear probe on Neuro-GPT's frozen encoder "
                                            "(random without --pretrained)"),
          ]],
        # MOABB 1.7.2's SSVEP_TRCA and SSVEP_MsetCCA are not registered: on the phase-locked
        # synthetic SSVEP, where template matching scores 1.0, TRCA's 5-fold accuracies are
        # 0.33/1.0/0.0/0.25/0.83 in volts and 0.0/0.42/1.0/0.83/1.0 in µV, MsetCCA 0.27-0.40.
    ]
}


def list_pipelines(family: str | None = None) -> list[str]:
    """Names of the registered pipelines.

    Parameters
    ----------
    family : "imagery" | "ssvep" | "any" | None
        Keep only the pipelines of one kind of paradigm (``"any"``: the deep decoders, which
        take the epochs of motor-imagery and SSVEP paradigms alike); all when None.

    Returns
    -------
    names : list of str
    """
    return [n for n, s in PIPELINES.items() if family is None or s.family == family]


def get_spec(name: str) -> PipelineSpec:
    """Return the :class:`PipelineSpec` registered under ``name``.

    Raises ``ValueError`` with a hint if there is none.
    """
    check_option("pipeline", name, PIPELINES)
    return PIPELINES[name]


def paradigm_for(spec: PipelineSpec, paradigm: Any):
    """Return the paradigm a registered pipeline needs, derived from the user's paradigm.

    SSVEP pipelines come in two kinds (raw epochs for CCA, filter-bank epochs for the Riemannian
    ones): given either MOABB paradigm, the other is built with the same ``n_classes``,
    ``events``, ``tmin``, ``tmax`` and ``resample``. The same holds within the motor-imagery
    family (without ``events``).

    Parameters
    ----------
    spec : PipelineSpec
        The pipeline (:func:`get_spec`).
    paradigm : moabb.paradigms.base.BaseParadigm
        The paradigm asked for.

    Returns
    -------
    paradigm : moabb.paradigms.base.BaseParadigm
        ``paradigm`` itself when the pipeline takes its epochs, else a new instance.

    Raises
    ------
    ValueError
        The paradigm is of another family (e.g. SSVEP pipelines on motor imagery).
    """
    import inspect

    from moabb.paradigms.motor_imagery import BaseMotorImagery
    from moabb.paradigms.ssvep import BaseSSVEP

    from ..data.loaders import get_paradigm

    name = type(paradigm).__name__
    if name in spec.paradigms:
        return paradigm
    family = {"imagery": BaseMotorImagery, "ssvep": BaseSSVEP}.get(spec.family)
    if family is not None and isinstance(paradigm, family):
        import moabb.paradigms as mparadigms

        accepted = inspect.signature(getattr(mparadigms, spec.paradigms[0])).parameters
        keys = ["n_classes", "tmin", "tmax", "resample"]
        if spec.family == "ssvep":  # LeftRightImagery refuses any events, even its own
            keys.append("events")
        params = {k: getattr(paradigm, k) for k in keys
                  if k in accepted and getattr(paradigm, k, None) is not None}
        return get_paradigm(spec.paradigms[0], **params)
    raise ValueError(
        f"Pipeline {spec.name!r} needs epochs from a {' or '.join(spec.paradigms)} paradigm, "
        f"got {name}; choose pipelines for {name} (see `bci pipelines`)."
    )


def get_pipeline(name: str, *, random_state: int | None = 42, scoring: Any = None,
                 param_grid: dict[str, list] | None = None, n_jobs: int = 1):
    """Return a fresh, unfitted estimator for a registered pipeline.

    Parameters
    ----------
    name : str
        One of :func:`list_pipelines`, e.g. ``"CSP+LDA"``, ``"TS+SVM"``, ``"ACM+TS+SVM"``,
        ``"SSVEP_TS+LR"``.
    random_state : int | None
        Seed of the inner 3-fold split of pipelines that grid-search their hyper-parameters
        (MOABB uses its evaluation's ``random_state`` there).
    scoring : str | callable | None
        Metric of the inner grid search (MOABB uses the paradigm's ``scoring``, e.g.
        ``"roc_auc"`` for two classes); the estimator's own ``score`` (accuracy) when None.
    param_grid : dict | None
        Replace the registered grid (e.g. :data:`MOABB_ACM_GRID`); only for pipelines that
        have one.
    n_jobs : int
        Parallel jobs of the inner grid search.

    Returns
    -------
    estimator : sklearn.pipeline.Pipeline | sklearn.model_selection.GridSearchCV
        The pipeline, wrapped in a grid search when the entry has a ``param_grid``.
    """
    spec = get_spec(name)
    pipeline = spec.build()
    if param_grid is not None and spec.param_grid is None:
        raise ValueError(f"Pipeline {name!r} has no hyper-parameter grid to replace.")
    grid = param_grid if param_grid is not None else spec.param_grid
    if grid is None:
        return pipeline

    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    def search(estimator, grid):
        return GridSearchCV(
            estimator, grid, refit=True, scoring=scoring, n_jobs=n_jobs,
            return_train_score=True, cv=StratifiedKFold(3, shuffle=True, random_state=random_state),
        )

    if param_grid is None and spec.final_grid is not None:
        step, final = pipeline.steps[-1]
        pipeline.steps[-1] = (step, search(final, spec.final_grid))
    params = set(pipeline.get_params())
    unknown = {key for g in (grid if isinstance(grid, list) else [grid]) for key in g} - params
    if unknown:
        raise ValueError(f"param_grid keys {sorted(unknown)} are not parameters of {name!r}.")
    return search(pipeline, grid)
