"""Export a Riemannian decoder to a NumPy decoder file (``bci export --format numpy``).

ONNX has no eigendecomposition, so covariance pipelines (tangent space, MDM, FgMDM, CSP, the
SSVEP filter-bank ones) are not exported as graphs: :func:`export_numpy` writes their fitted
arrays (``.npy`` members of an ``arrays.npz``, numbers only) and the pipeline as JSON steps
into the decoder-file container, and :mod:`bci.models.numpy_runtime` evaluates them with NumPy
alone. ``bci.load_decoder`` reads the file without scikit-learn or pyRiemann, and loading runs
no code from it (no pickle, no skops objects): this is also the safe way to share a decoder.

What can be exported (:data:`SUPPORTED`, checked step by step; anything else is refused with a
``TypeError`` naming the step and listing these): bci's ``CheckEpochs``, ``AugmentedCovariance``
and ``SubspaceProjection`` (the ``RANK+`` pipelines for rank-deficient MEG); MOABB's
``ExtendedSSVEPSignal``; pyRiemann's ``Covariances`` (``oas``, ``lwf``, ``scm``, ``cov``),
``CSP``, ``TangentSpace`` and ``FGDA`` (Riemannian map, ``tsupdate=False``), ``MDM`` and
``FgMDM`` (Riemannian distance); scikit-learn's ``LogisticRegression``,
``LinearDiscriminantAnalysis``, ``SVC`` (linear, RBF, polynomial and sigmoid kernels,
``probability`` either way), ``CalibratedClassifierCV(method="sigmoid")``, ``Pipeline`` and
fitted grid searches (their ``best_estimator_``). That covers every registered array pipeline.

The exported decoder is checked before it is written: its probabilities (or decisions) on
random SPD-friendly epochs must equal the scikit-learn pipeline's to 1e-9.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .._logging import logger
from ..models.decoder import Decoder
from ..models.numpy_runtime import (
    RUNTIME_VERSION,
    NumpyPipeline,
    read_arrays,
    save_numpy_decoder,
    write_arrays,
)

__all__ = ["SUPPORTED", "export_numpy", "to_numpy_pipeline"]

#: What the NumPy runtime computes: type name -> what of it.
SUPPORTED: dict[str, str] = {
    "CheckEpochs": "bci's input check (the runtime checks shapes itself)",
    "ExtendedSSVEPSignal": "MOABB's filter-bank stacking",
    "SubspaceProjection": "bci's projection onto the signal subspace (rank-deficient MEG)",
    "Covariances": "estimator 'oas', 'lwf', 'scm' or 'cov', no extra keywords",
    "AugmentedCovariance": "bci's delay embedding + covariance ('oas', 'lwf', 'scm', 'cov')",
    "CSP": "pyRiemann's CSP (log-variance or filtered covariances)",
    "TangentSpace": "Riemannian map, tsupdate=False",
    "FGDA": "Riemannian map, tsupdate=False",
    "MDM": "Riemannian distance",
    "FgMDM": "Riemannian map and distance, tsupdate=False",
    "LogisticRegression": "scikit-learn",
    "LinearDiscriminantAnalysis": "scikit-learn",
    "SVC": "kernel linear, rbf, poly or sigmoid; decision_function_shape 'ovr'",
    "CalibratedClassifierCV": "method 'sigmoid'",
    "Pipeline": "scikit-learn, of the steps above",
    "GridSearchCV": "fitted with refit=True: its best estimator",
}
#: The package each supported type must come from (a same-named type elsewhere is refused).
_ORIGIN = {"CheckEpochs": "bci", "AugmentedCovariance": "bci", "SubspaceProjection": "bci",
           "ExtendedSSVEPSignal": "moabb",
           **dict.fromkeys(["Covariances", "CSP", "TangentSpace", "FGDA", "MDM", "FgMDM"],
                           "pyriemann"),
           **dict.fromkeys(["LogisticRegression", "LinearDiscriminantAnalysis", "SVC",
                            "CalibratedClassifierCV", "Pipeline", "GridSearchCV",
                            "RandomizedSearchCV"], "sklearn")}
#: Largest difference tolerated between the exported decoder and the pipeline at export.
PARITY_TOL = 1e-9


def _supported_list() -> str:
    return "; ".join(f"{name} ({what})" for name, what in SUPPORTED.items())


def _unsupported(where: str, obj: Any, why: str = "") -> TypeError:
    name = type(obj).__name__
    qual = f"{type(obj).__module__}.{name}"
    hint = (" It is a network: export it with `bci export --format onnx`."
            if hasattr(obj, "_network_state") else "")
    step = f"step {where!r}" if where else "the estimator"
    return TypeError(
        f"The NumPy runtime cannot express {step} ({qual}){': ' + why if why else ''}."
        f"{hint} It runs: {_supported_list()}.")


def _metric(metric: Any, key: str) -> Any:
    return metric.get(key) if isinstance(metric, dict) else metric


class _Exporter:
    """Collect arrays with unique names while steps are converted."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, prefix: str, **arrays) -> dict[str, str]:
        names = {}
        for role, value in arrays.items():
            key = f"{prefix}.{role}"
            self.arrays[key] = np.asarray(value)
            names[role] = key
        return names

    # -- one fitted estimator -> runtime steps -------------------------------------------------
    def steps(self, est: Any, where: str, prefix: str, *, first: bool) -> list[dict]:
        name = type(est).__name__
        if _ORIGIN.get(name) != type(est).__module__.split(".")[0]:
            raise _unsupported(where, est)
        if name in ("GridSearchCV", "RandomizedSearchCV"):
            if not hasattr(est, "best_estimator_"):
                raise _unsupported(where, est, "not fitted with refit=True")
            return self.steps(est.best_estimator_, where, prefix, first=first)
        if name == "Pipeline":
            out = []
            steps = [(n, s) for n, s in est.steps if s is not None and s != "passthrough"]
            for i, (step_name, step) in enumerate(steps):
                out += self.steps(step, f"{where}/{step_name}" if where else step_name,
                                  f"{prefix}{i}", first=first and not out)
            return out
        if name == "CheckEpochs":
            return []
        if name == "ExtendedSSVEPSignal":
            if not first:
                raise _unsupported(where, est, "filter-bank stacking must come first")
            return [{"step": "filterbank"}]
        if name == "SubspaceProjection":
            return [{"step": "projection", "arrays": self.add(prefix, filters=est.filters_)}]
        if name == "AugmentedCovariance":
            return [{"step": "delay_embedding", "order": int(est.order), "lag": int(est.lag)},
                    self._covariances(est, where, est.estimator, None)]
        if name == "Covariances":
            return [self._covariances(est, where, est.estimator, getattr(est, "kwds", None))]
        if name == "CSP":
            return [{"step": "csp", "log": bool(est.log),
                     "arrays": self.add(prefix, filters=est.filters_)}]
        if name == "TangentSpace":
            self._riemann(est, where, "map")
            return [{"step": "tangent_space", "arrays": self.add(prefix, reference=est.reference_)}]
        if name == "FGDA":
            return [self._fgda(est, where, prefix)]
        if name == "MDM":
            return [self._mdm(est, where, prefix)]
        if name == "FgMDM":
            self._riemann(est, where, "map")
            return [self._fgda(est._fgda, where, prefix + "f"),
                    self._mdm(est._mdm, where, prefix + "m")]
        if name in ("LogisticRegression", "LinearDiscriminantAnalysis"):
            return [{"step": "linear", "classes": _classes(est),
                     "proba": "logistic" if len(est.classes_) == 2 else "softmax",
                     "arrays": self.add(prefix, coef=est.coef_, intercept=est.intercept_)}]
        if name == "SVC":
            return [self._svc(est, where, prefix)]
        raise _unsupported(where, est)

    def _covariances(self, est, where: str, estimator: Any, kwds: Any) -> dict:
        if estimator not in ("oas", "lwf", "scm", "cov") or kwds:
            raise _unsupported(where, est, f"estimator={estimator!r}, kwds={kwds!r}")
        return {"step": "covariances", "estimator": estimator}

    def _riemann(self, est, where: str, *keys: str) -> None:
        for key in keys:
            metric = _metric(est.metric, key)
            if metric != "riemann":
                raise _unsupported(where, est, f"{key} metric {metric!r} (the runtime computes "
                                   "'riemann')")
        if getattr(est, "tsupdate", False):
            raise _unsupported(where, est, "tsupdate=True re-centres on each batch")

    def _fgda(self, est, where: str, prefix: str) -> dict:
        self._riemann(est, where, "map")
        self._riemann(est._ts, where, "map")
        # pyRiemann: W = A^T pinv(A A^T) A with A the LDA's coef_; the factors are stored
        A = np.array(est._lda.coef_, dtype=float)
        gram_pinv = np.linalg.pinv(A @ A.T)
        if not np.allclose(A.T @ gram_pinv @ A, est._W, rtol=1e-9, atol=1e-12):
            raise _unsupported(where, est, "its projection is not built from its LDA weights")
        return {"step": "fgda", "arrays": self.add(prefix, reference=est._ts.reference_,
                                                   weights=A, gram_pinv=gram_pinv)}

    def _mdm(self, est, where: str, prefix: str) -> dict:
        self._riemann(est, where, "distance")
        return {"step": "mdm", "classes": _classes(est),
                "arrays": self.add(prefix, covmeans=est.covmeans_)}

    def _svc(self, est, where: str, prefix: str) -> dict:
        if est.kernel not in ("linear", "rbf", "poly", "sigmoid"):
            raise _unsupported(where, est, f"kernel={est.kernel!r}")
        if len(est.classes_) > 2 and est.decision_function_shape != "ovr":
            raise _unsupported(where, est, "decision_function_shape='ovo'")
        if getattr(est, "break_ties", False):
            raise _unsupported(where, est, "break_ties=True")
        arrays = {"support_vectors": est.support_vectors_,
                  # libsvm's own coefficients and intercepts (scikit-learn flips the sign of
                  # the public ones for two classes)
                  "dual_coef": est._dual_coef_, "intercept": est._intercept_,
                  "n_support": np.asarray(est._n_support, dtype=np.int64)}
        # probability=True (deprecated in scikit-learn 1.9): libsvm's Platt scaling
        probability = est.probability is True and np.size(est._probA) > 0
        if probability:
            arrays.update(prob_a=est._probA, prob_b=est._probB)
        return {"step": "svc", "classes": _classes(est), "kernel": est.kernel,
                "gamma": float(est._gamma), "coef0": float(est.coef0),
                "degree": int(est.degree), "probability": probability,
                "arrays": self.add(prefix, **arrays)}

    # -- the whole estimator -> model entry ----------------------------------------------------
    def model(self, est: Any) -> dict:
        name = type(est).__name__
        if name in ("GridSearchCV", "RandomizedSearchCV") and hasattr(est, "best_estimator_"):
            return self.model(est.best_estimator_)
        if name == "CalibratedClassifierCV" and type(est).__module__.startswith("sklearn"):
            if est.method != "sigmoid":
                raise _unsupported("calibration", est, f"method={est.method!r}")
            members = []
            for i, member in enumerate(est.calibrated_classifiers_):
                a = [c.a_ for c in member.calibrators]
                b = [c.b_ for c in member.calibrators]
                steps = self.steps(member.estimator, "", f"c{i}.", first=True)
                members.append({"steps": steps, "arrays": self.add(f"c{i}.sigmoid", a=a, b=b)})
            return {"type": "calibrated", "classes": _classes(est), "members": members}
        return {"type": "pipeline", "steps": self.steps(est, "", "s", first=True)}


def _classes(est) -> list:
    classes = np.asarray(est.classes_)
    if classes.dtype.kind in "iu":
        return [int(c) for c in classes]
    if classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes.tolist()):
        return [str(c) for c in classes]
    raise _unsupported("classes", est, f"labels of dtype {classes.dtype} (int or str only)")


def to_numpy_pipeline(estimator: Any, n_chans: int, n_bands: int | None = None
                      ) -> tuple[dict, dict[str, np.ndarray]]:
    """Convert a fitted covariance pipeline to the NumPy runtime's spec and arrays.

    Parameters
    ----------
    estimator : sklearn estimator
        Fitted, of the steps in :data:`SUPPORTED` (a registered pipeline, possibly calibrated
        by ``bci train``).
    n_chans : int
        Channels of its input epochs.
    n_bands : int | None
        Bands of filter-bank input ``(n_epochs, n_chans, n_times, n_bands)``; None otherwise.

    Returns
    -------
    spec : dict
        The ``numpy_runtime`` manifest entry (without its ``arrays`` declaration).
    arrays : dict of str to ndarray

    Raises
    ------
    TypeError
        A step the runtime cannot express (named, with the list of supported ones).
    RuntimeError
        The estimator is not fitted.
    ValueError
        The converted arrays do not fit the input (e.g. a filter-bank pipeline given
        ``n_bands=None``).
    """
    exporter = _Exporter()
    try:
        model = exporter.model(estimator)
    except AttributeError as err:  # a fitted attribute is missing
        raise RuntimeError(f"{type(estimator).__name__} is not fitted ({err}); fit it (or train "
                           "a decoder with `bci train`) before exporting it.") from err
    spec = {"version": RUNTIME_VERSION, "input": {"n_chans": int(n_chans),
                                                  "n_bands": None if n_bands is None
                                                  else int(n_bands)},
            "model": model}
    arrays = {k: np.ascontiguousarray(v, dtype=np.int64 if v.dtype.kind in "iu" else np.float64)
              for k, v in exporter.arrays.items()}
    NumpyPipeline(spec, arrays, "the exported pipeline")  # checks every shape
    return spec, arrays


def export_numpy(decoder: Decoder, fname: str | Path, *, key: Any = None,
                 check_parity: bool = True) -> Path:
    """Write a decoder's covariance pipeline as a NumPy decoder file.

    Parameters
    ----------
    decoder : Decoder
        A decoder whose estimator is a fitted covariance pipeline (:data:`SUPPORTED`), e.g.
        from ``bci train --pipeline TS+LR``.
    fname : str | Path
        Destination (e.g. ``decoder-numpy.bci``); parent folders are created; written
        atomically.
    key : bytes | str | Path | None
        Sign the file (see :func:`bci.models.decoder.save_decoder`).
    check_parity : bool
        Before writing, compare the exported pipeline with the estimator on 6 seeded
        white-noise epochs of the decoder's window: probabilities (or decision values) must
        agree to :data:`PARITY_TOL`.

    Returns
    -------
    fname : Path

    Raises
    ------
    TypeError
        Not a :class:`Decoder`, or a step the runtime cannot express (named, with the list of
        supported ones).
    RuntimeError
        The parity check failed (a bug: please report it with the decoder).
    """
    if not isinstance(decoder, Decoder):
        raise TypeError(f"export_numpy takes a bci Decoder (bci.load_decoder), got "
                        f"{type(decoder).__name__}.")
    if isinstance(decoder.estimator, NumpyPipeline):  # already exported: written as it is
        return save_numpy_decoder(decoder, fname, key=key)
    n_bands = len(decoder.filters) if len(decoder.filters) > 1 else None
    spec, arrays = to_numpy_pipeline(decoder.estimator, decoder.n_chans, n_bands)
    payload, declared = write_arrays(arrays)
    runtime = NumpyPipeline(spec, read_arrays(payload, declared, str(fname)), str(fname))
    if check_parity:
        _check_parity(decoder, runtime)
    exported = dataclasses.replace(decoder, estimator=runtime, info={
        **decoder.info, "exported": {"runtime": "numpy", "from": type(decoder.estimator).__name__,
                                     "steps": runtime.steps}})
    fname = save_numpy_decoder(exported, fname, key=key)
    logger.info("Exported %s to %s (NumPy runtime: %s; %d arrays, %d bytes)",
                type(decoder.estimator).__name__, fname, " -> ".join(runtime.steps),
                len(arrays), len(payload))
    return fname


def _check_parity(decoder: Decoder, runtime: NumpyPipeline) -> None:
    rng = np.random.default_rng(0)
    n_times = max(decoder.n_times, 2 * (runtime.n_chans * (runtime.n_bands or 1)) + 2)
    shape = (6, runtime.n_chans, n_times) + (() if runtime.n_bands is None
                                              else (runtime.n_bands,))
    X = rng.standard_normal(shape)
    est = decoder.estimator
    if hasattr(est, "predict_proba"):
        method, mine, theirs = "predict_proba", runtime.predict_proba(X), est.predict_proba(X)
    else:
        method = "decision_function"
        mine, theirs = runtime._model.decision_function(X), est.decision_function(X)
    diff = float(np.max(np.abs(np.asarray(mine) - np.asarray(theirs))))
    if not diff <= PARITY_TOL:
        raise RuntimeError(
            f"The NumPy export of {type(est).__name__} differs from it by {diff:.3g} on random "
            f"epochs ({method}), over the tolerance {PARITY_TOL:g}; the file was not written. "
            "Please report this with the decoder file.")
