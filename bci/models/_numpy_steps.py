"""The steps of the NumPy runtime (private; see :mod:`bci.models.numpy_runtime`).

Each step reads its parameters from the manifest and its arrays, checks their shapes against its
input before anything runs, and transforms a batch of epochs in float64 with NumPy alone. The
formulas are scikit-learn 1.9's and pyRiemann 0.12's (the tests compare them to 1e-9).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Covariance estimators the runtime computes (pyRiemann's names).
COVARIANCE_ESTIMATORS = ("oas", "lwf", "scm", "cov")
_KERNELS = ("linear", "rbf", "poly", "sigmoid")


class FileFormatError(ValueError):
    """A NumPy decoder file whose runtime entry or arrays are malformed (a ``ValueError``)."""


# ---------------------------------------------------------------------------------------------
# Matrix functions (pyRiemann's, in NumPy)
# ---------------------------------------------------------------------------------------------
def _eig_apply(C: np.ndarray, fn) -> np.ndarray:
    """``V fn(w) V^T`` for symmetric ``C = V diag(w) V^T`` (pyRiemann's ``_matrix_operator``)."""
    w, V = np.linalg.eigh(C)
    return V @ (fn(w)[..., None] * np.swapaxes(V, -1, -2))


def _invsqrtm(C):
    return _eig_apply(C, lambda w: 1.0 / np.sqrt(w))


def _sqrtm(C):
    return _eig_apply(C, np.sqrt)


def _logm(C):
    return _eig_apply(C, np.log)


def _expm(C):
    return _eig_apply(C, np.exp)


def _upper_coeffs(n: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    rows, cols = np.triu_indices(n)
    return (rows, cols), np.where(rows == cols, 1.0, math.sqrt(2.0))


def _unupper(T: np.ndarray, n: int) -> np.ndarray:
    """Rebuild symmetric matrices ``(m, n, n)`` from tangent vectors (pyRiemann's ``unupper``)."""
    X = np.zeros((*T.shape[:-1], n, n))
    rows, cols = np.triu_indices(n)
    X[..., rows, cols] = T
    off_r, off_c = np.triu_indices(n, k=1)
    X[..., off_r, off_c] /= math.sqrt(2.0)
    X[..., off_c, off_r] = X[..., off_r, off_c]
    return X


def _expit(x: np.ndarray) -> np.ndarray:
    """Compute the logistic function without overflow warnings (scipy's ``expit``)."""
    out = np.empty_like(x, dtype=float)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _softmax(X: np.ndarray) -> np.ndarray:
    """scikit-learn's ``softmax`` (row-wise, max subtracted)."""
    X = X - X.max(axis=1, keepdims=True)
    np.exp(X, out=X)
    X /= X.sum(axis=1, keepdims=True)
    return X


def covariances(X: np.ndarray, estimator: str) -> np.ndarray:
    """Covariance matrices of epochs, as pyRiemann's ``Covariances(estimator)``.

    Parameters
    ----------
    X : ndarray, shape (n_epochs, n_chans, n_times)
        Epochs (float64).
    estimator : "oas" | "lwf" | "scm" | "cov"
        OAS and Ledoit-Wolf shrinkage (scikit-learn's ``oas`` / ``ledoit_wolf``), the biased
        sample covariance, or :func:`numpy.cov` (unbiased).

    Returns
    -------
    C : ndarray, shape (n_epochs, n_chans, n_chans)
    """
    n_chans, n_times = X.shape[-2:]
    Xc = X - X.mean(axis=-1, keepdims=True)
    S = Xc @ np.swapaxes(Xc, -1, -2)
    if estimator == "cov":
        return S / (n_times - 1)
    emp = S / n_times
    if estimator == "scm":
        return emp
    mu = np.trace(emp, axis1=-2, axis2=-1) / n_chans
    if estimator == "oas":
        alpha = np.mean(emp ** 2, axis=(-2, -1))
        num = alpha + mu ** 2
        den = (n_times + 1) * (alpha - mu ** 2 / n_chans)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrinkage = np.where(den == 0, 1.0, np.minimum(num / den, 1.0))
    elif estimator == "lwf":
        X2 = Xc ** 2
        trace = X2.sum(axis=-1) / n_times  # (n, n_chans): the diagonal of emp
        delta_ = np.sum(S ** 2, axis=(-2, -1)) / n_times ** 2
        beta_ = np.sum(X2 @ np.swapaxes(X2, -1, -2), axis=(-2, -1))
        beta = 1.0 / (n_chans * n_times) * (beta_ / n_times - delta_)
        delta = (delta_ - 2.0 * mu * trace.sum(axis=-1) + n_chans * mu ** 2) / n_chans
        beta = np.minimum(beta, delta)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrinkage = np.where(beta == 0, 0.0, beta / delta)
    else:
        raise ValueError(f"Unknown covariance estimator {estimator!r}; the NumPy runtime "
                         f"computes {', '.join(COVARIANCE_ESTIMATORS)}.")
    if n_chans == 1:  # scikit-learn: one feature, no shrinkage
        return emp
    out = (1.0 - shrinkage)[..., None, None] * emp
    diag = np.arange(n_chans)
    out[..., diag, diag] += (shrinkage * mu)[..., None]
    return out


# ---------------------------------------------------------------------------------------------
# Steps: each reads its parameters from the manifest and its arrays, checks their shapes against
# its input, and transforms a batch. ``kind`` says what flows between steps.
# ---------------------------------------------------------------------------------------------
_SIGNALS, _FILTERBANK, _SPD, _VECTORS = "signals", "filter-bank signals", "matrices", "vectors"


class _Step:
    name: str = ""
    arrays: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    takes: tuple[str, ...] = ()

    def __init__(self, spec: dict, arrays: dict[str, np.ndarray], shape_in: tuple,
                 kind_in: str, where: str):
        self.where = where
        if kind_in not in self.takes:
            raise FileFormatError(f"{where}: a {self.name} step takes {' or '.join(self.takes)}"
                                  f", but the step before gives {kind_in}.")
        extra = set(spec) - {"step", "arrays", *self.params}
        missing = set(self.params) - set(spec)
        names = spec.get("arrays", {})
        expected = self.expected_arrays(spec)
        if extra or missing or not isinstance(names, dict) or set(names) != set(expected) \
                or not all(isinstance(key, str) for key in names.values()):
            raise FileFormatError(
                f"{where}: a {self.name} step has parameters {sorted(self.params)} and arrays "
                f"{sorted(expected)}; got {sorted(set(spec) - {'step', 'arrays'})} and "
                f"{sorted(names) if isinstance(names, dict) else names!r}.")
        for role, key in names.items():
            if key not in arrays:
                raise FileFormatError(f"{where}: array {key!r} ({role}) is not in the file.")
        self.spec = spec
        self.a = {role: arrays[key] for role, key in names.items()}
        self.shape_in = shape_in
        self.setup()

    def expected_arrays(self, spec: dict) -> tuple[str, ...]:
        """Return the arrays a step with these parameters uses."""
        return self.arrays

    def setup(self) -> None:  # check shapes, precompute
        raise NotImplementedError

    def check(self, condition: bool, what: str) -> None:
        if not condition:
            raise FileFormatError(f"{self.where}: {what} (a damaged or edited file).")

    def check_shape(self, role: str, shape: tuple) -> np.ndarray:
        arr = self.a[role]
        self.check(arr.shape == tuple(shape),
                   f"array {self.spec['arrays'][role]!r} ({role}) has shape {arr.shape}, "
                   f"expected {tuple(shape)} for input {self.shape_in}")
        return arr

    def check_spd(self, C: np.ndarray, role: str) -> None:
        self.check(np.allclose(C, np.swapaxes(C, -1, -2), rtol=1e-10, atol=0)
                   and bool(np.all(np.linalg.eigvalsh(C) > 0)),
                   f"array {self.spec['arrays'][role]!r} ({role}) is not symmetric positive "
                   "definite")

    shape_out: tuple = ()
    kind_out: str = ""


class _FilterBank(_Step):
    name, takes = "filterbank", (_FILTERBANK,)

    def setup(self):
        n_chans, n_bands = self.shape_in[0], self.shape_in[2]
        self.shape_out, self.kind_out = (n_bands * n_chans, self.shape_in[1]), _SIGNALS

    def transform(self, X):
        n, n_chans, n_times, n_bands = X.shape
        return X.transpose(0, 3, 1, 2).reshape(n, n_bands * n_chans, n_times)


class _DelayEmbedding(_Step):
    name, takes, params = "delay_embedding", (_SIGNALS,), ("order", "lag")

    def setup(self):
        order, lag = self.spec["order"], self.spec["lag"]
        self.check(all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1000
                       for v in (order, lag)), "order and lag must be integers in 1-1000")
        self.order, self.lag = order, lag
        self.shape_out, self.kind_out = (order * self.shape_in[0], self.shape_in[1]), _SIGNALS

    def transform(self, X):
        n_times = X.shape[-1]
        span = (self.order - 1) * self.lag
        if span >= n_times:
            raise ValueError(f"The delay embedding (order={self.order}, lag={self.lag}) spans "
                             f"{span + 1} samples; the epochs have {n_times}.")
        # bci.features.augmented.delay_embedding: block p is the signal delayed by p * lag
        return np.concatenate([X[..., span - p * self.lag:n_times - p * self.lag]
                               for p in range(self.order)], axis=-2)


class _Projection(_Step):
    name, takes, arrays = "projection", (_SIGNALS,), ("filters",)

    def setup(self):
        n = self.shape_in[0]
        filters = self.a["filters"]
        self.check(filters.ndim == 2 and filters.shape[1] == n and 1 <= filters.shape[0] <= n,
                   f"array {self.spec['arrays']['filters']!r} (filters) has shape "
                   f"{filters.shape}, expected (rank, {n}) with 1 <= rank <= {n}")
        self.W = filters
        self.shape_out, self.kind_out = (filters.shape[0], self.shape_in[1]), _SIGNALS

    def transform(self, X):
        # bci.features.rank.SubspaceProjection.transform, the same contraction
        return np.einsum("rc,ect->ert", self.W, X)


class _Covariances(_Step):
    name, takes, params = "covariances", (_SIGNALS,), ("estimator",)

    def setup(self):
        self.check(self.spec["estimator"] in COVARIANCE_ESTIMATORS,
                   f"covariance estimator {self.spec['estimator']!r} is not one of "
                   f"{', '.join(COVARIANCE_ESTIMATORS)}")
        self.estimator = self.spec["estimator"]
        n = self.shape_in[0]
        self.shape_out, self.kind_out = (n, n), _SPD

    def transform(self, X):
        return covariances(X, self.estimator)


class _CSP(_Step):
    name, takes, params, arrays = "csp", (_SPD,), ("log",), ("filters",)

    def setup(self):
        n = self.shape_in[0]
        self.check(isinstance(self.spec["log"], bool), "csp's log must be true or false")
        filters = self.a["filters"]
        self.check(filters.ndim == 2 and filters.shape[1] == n and filters.shape[0] >= 1,
                   f"array {self.spec['arrays']['filters']!r} (filters) has shape "
                   f"{filters.shape}, expected (n_filters, {n})")
        self.W = filters
        self.log = self.spec["log"]
        k = filters.shape[0]
        self.shape_out, self.kind_out = ((k,), _VECTORS) if self.log else ((k, k), _SPD)

    def transform(self, C):
        Y = self.W @ C @ self.W.T
        return np.log(np.diagonal(Y, axis1=-2, axis2=-1)) if self.log else Y


class _TangentSpace(_Step):
    name, takes, arrays = "tangent_space", (_SPD,), ("reference",)

    def setup(self):
        n = self.shape_in[0]
        ref = self.check_shape("reference", (n, n))
        self.check_spd(ref, "reference")
        self.Cm12 = _invsqrtm(ref)
        self.idx, self.coeffs = _upper_coeffs(n)
        self.shape_out, self.kind_out = (n * (n + 1) // 2,), _VECTORS

    def transform(self, C):
        L = _logm(self.Cm12 @ C @ self.Cm12)
        return self.coeffs * L[..., self.idx[0], self.idx[1]]


class _FGDA(_TangentSpace):
    """pyRiemann's FGDA; its projection ``W = A^T (A A^T)^+ A`` kept as its factors.

    ``A`` holds the LDA weights (``n_classes - 1`` rows): storing them and the pseudo-inverse of
    ``A A^T`` instead of the square ``W`` (2080 x 2080 at 64 channels, 35 MB) makes the file
    and the projection ``f / (n_classes - 1)`` times smaller (``f`` tangent features).
    """

    name, arrays = "fgda", ("reference", "weights", "gram_pinv")

    def setup(self):
        super().setup()
        n = self.shape_in[0]
        f = n * (n + 1) // 2
        A = self.a["weights"]
        self.check(A.ndim == 2 and A.shape[1] == f and 1 <= A.shape[0] <= f,
                   f"array {self.spec['arrays']['weights']!r} (weights) has shape {A.shape}, "
                   f"expected (n_components, {f}) for input {self.shape_in}")
        self.A = A
        self.G = self.check_shape("gram_pinv", (A.shape[0], A.shape[0]))
        self.C12 = _sqrtm(self.a["reference"])
        self.n = n
        self.shape_out, self.kind_out = (n, n), _SPD

    def transform(self, C):
        T = ((super().transform(C) @ self.A.T) @ self.G) @ self.A
        return self.C12 @ _expm(_unupper(T, self.n)) @ self.C12


class _Head(_Step):
    """A final step: ``decision_function``, ``predict`` and (if any) ``predict_proba``."""

    params = ("classes",)
    has_proba = True

    def setup_classes(self) -> int:
        classes = self.spec["classes"]
        self.check(isinstance(classes, list) and len(classes) >= 2 and all(
            isinstance(c, (int, str)) and not isinstance(c, bool) for c in classes)
            and len(set(classes)) == len(classes),
            "classes must be a list of >= 2 distinct int or str labels")
        self.classes_ = np.asarray(classes)
        self.kind_out = "classes"
        return len(classes)


class _MDM(_Head):
    name, takes, arrays = "mdm", (_SPD,), ("covmeans",)

    def setup(self):
        k = self.setup_classes()
        n = self.shape_in[0]
        means = self.check_shape("covmeans", (k, n, n))
        self.check_spd(means, "covmeans")
        # pyRiemann's generalised eigenvalues: Z = L^-1 C L^-T with B = L L^T (Cholesky)
        self.Linv = np.linalg.inv(np.linalg.cholesky(means))

    def distances2(self, C):
        Z = self.Linv[None] @ C[:, None] @ np.swapaxes(self.Linv, -1, -2)[None]
        return np.sum(np.log(np.linalg.eigvalsh(Z)) ** 2, axis=-1)

    def decision_function(self, C):
        return np.sqrt(self.distances2(C))

    def predict(self, C):
        return self.classes_[self.distances2(C).argmin(axis=1)]

    def predict_proba(self, C):
        return _softmax(-self.decision_function(C) ** 2)


class _Linear(_Head):
    name, takes, arrays = "linear", (_VECTORS,), ("coef", "intercept")
    params = ("classes", "proba")

    def setup(self):
        k = self.setup_classes()
        f = self.shape_in[0]
        rows = 1 if k == 2 else k
        self.coef = self.check_shape("coef", (rows, f))
        self.intercept = self.check_shape("intercept", (rows,))
        self.check(self.spec["proba"] in ("logistic", "softmax"),
                   f"linear proba must be 'logistic' or 'softmax', got {self.spec['proba']!r}")

    def decision_function(self, F):
        scores = F @ self.coef.T + self.intercept
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, F):
        d = self.decision_function(F)
        return self.classes_[(d > 0).astype(int) if d.ndim == 1 else d.argmax(axis=1)]

    def predict_proba(self, F):
        d = self.decision_function(F)
        if d.ndim == 1:
            p = _expit(d)
            return np.stack([1 - p, p], axis=1)
        if self.spec["proba"] == "softmax":
            return _softmax(d)
        p = _expit(d)  # one-vs-rest, normalised (scikit-learn's _predict_proba_lr)
        total = p.sum(axis=1)
        zero = total == 0
        p[zero] = 1.0
        total[zero] = p.shape[1]
        return p / total[:, None]


class _SVC(_Head):
    name, takes = "svc", (_VECTORS,)
    arrays = ("support_vectors", "dual_coef", "intercept", "n_support")
    params = ("classes", "kernel", "gamma", "coef0", "degree", "probability")

    def setup(self):
        k = self.setup_classes()
        f = self.shape_in[0]
        s = self.spec
        n_support = self.a["n_support"]
        self.check(n_support.shape == (k,) and n_support.dtype == np.int64
                   and bool(np.all(n_support >= 0)), f"n_support must be {k} counts")
        n_sv = int(n_support.sum())
        self.sv = self.check_shape("support_vectors", (n_sv, f))
        self.dual = self.check_shape("dual_coef", (k - 1, n_sv))
        n_pairs = k * (k - 1) // 2
        self.intercept = self.check_shape("intercept", (n_pairs,))
        self.check(s["kernel"] in _KERNELS, f"kernel {s['kernel']!r} is not one of {_KERNELS}")
        for key in ("gamma", "coef0"):
            self.check(isinstance(s[key], (int, float)) and math.isfinite(s[key]),
                       f"{key} must be a finite number")
        self.check(isinstance(s["degree"], int), "degree must be an int")
        self.check(isinstance(s["probability"], bool), "probability must be true or false")
        self.has_proba = s["probability"]
        if self.has_proba:
            self.probA = self.check_shape("prob_a", (n_pairs,))
            self.probB = self.check_shape("prob_b", (n_pairs,))
        self.starts = np.concatenate([[0], np.cumsum(n_support)])
        self.k = k

    def expected_arrays(self, spec):
        extra = ("prob_a", "prob_b") if spec.get("probability") is True else ()
        return self.arrays + extra

    def kernel(self, F):
        s = self.spec
        if s["kernel"] == "linear":
            return F @ self.sv.T
        if s["kernel"] == "rbf":
            d2 = (np.sum(F ** 2, axis=1)[:, None] - 2 * F @ self.sv.T
                  + np.sum(self.sv ** 2, axis=1)[None])
            return np.exp(-s["gamma"] * np.maximum(d2, 0))
        dot = s["gamma"] * (F @ self.sv.T) + s["coef0"]
        return dot ** s["degree"] if s["kernel"] == "poly" else np.tanh(dot)

    def ovo(self, F):
        """Compute libsvm's one-vs-one decision values, pairs (0,1), (0,2)... (sum - rho)."""
        K = self.kernel(F)
        out = np.empty((len(F), len(self.intercept)))
        p = 0
        for i in range(self.k):
            si = slice(self.starts[i], self.starts[i + 1])
            for j in range(i + 1, self.k):
                sj = slice(self.starts[j], self.starts[j + 1])
                out[:, p] = (K[:, si] @ self.dual[j - 1, si] + K[:, sj] @ self.dual[i, sj]
                             + self.intercept[p])
                p += 1
        return out

    def decision_function(self, F):
        dec = self.ovo(F)
        if self.k == 2:  # scikit-learn flips the sign of libsvm's binary decision
            return -dec.ravel()
        votes = np.zeros((len(F), self.k))
        conf = np.zeros((len(F), self.k))
        p = 0
        for i in range(self.k):  # scikit-learn's _ovr_decision_function
            for j in range(i + 1, self.k):
                conf[:, i] += dec[:, p]
                conf[:, j] -= dec[:, p]
                votes[dec[:, p] >= 0, i] += 1
                votes[dec[:, p] < 0, j] += 1
                p += 1
        return votes + conf / (3 * (np.abs(conf) + 1))

    def predict(self, F):
        dec = self.ovo(F)
        if self.k == 2:
            return self.classes_[(dec[:, 0] <= 0).astype(int)]
        votes = np.zeros((len(F), self.k), dtype=int)
        p = 0
        for i in range(self.k):  # libsvm: the first class with the most votes
            for j in range(i + 1, self.k):
                votes[dec[:, p] > 0, i] += 1
                votes[dec[:, p] <= 0, j] += 1
                p += 1
        return self.classes_[votes.argmax(axis=1)]

    def predict_proba(self, F):
        if not self.has_proba:
            raise AttributeError("This SVC was trained with probability=False.")
        dec = self.ovo(F)
        fApB = dec * self.probA + self.probB
        # libsvm's sigmoid_predict, clipped to [1e-7, 1 - 1e-7]
        r = np.where(fApB >= 0, np.exp(-np.abs(fApB)) / (1.0 + np.exp(-np.abs(fApB))),
                     1.0 / (1.0 + np.exp(-np.abs(fApB))))
        r = np.clip(r, 1e-7, 1 - 1e-7)
        # scikit-learn's libsvm couples two classes too (later libsvm returns r as is)
        return np.stack([_pairwise_coupling(row, self.k) for row in r])


def _pairwise_coupling(r_pairs: np.ndarray, k: int) -> np.ndarray:
    """Couple one sample's pairwise probabilities (libsvm's ``multiclass_probability``).

    Wu, Lin and Weng (2004), method 2, with libsvm's stopping rule and iteration order.
    """
    r = np.zeros((k, k))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            r[i, j], r[j, i] = r_pairs[p], 1 - r_pairs[p]
            p += 1
    Q = np.zeros((k, k))
    for t in range(k):
        Q[t, t] = sum(r[j, t] * r[j, t] for j in range(k) if j != t)
        for j in range(t):
            Q[t, j] = Q[j, t]
        for j in range(t + 1, k):
            Q[t, j] = -r[j, t] * r[t, j]
    prob = np.full(k, 1.0 / k)
    eps = 0.005 / k
    for _ in range(max(100, k)):
        Qp = Q @ prob
        pQp = float(prob @ Qp)
        if np.max(np.abs(Qp - pQp)) < eps:
            break
        for t in range(k):
            diff = (-Qp[t] + pQp) / Q[t, t]
            prob[t] += diff
            pQp = (pQp + diff * (diff * Q[t, t] + 2 * Qp[t])) / (1 + diff) / (1 + diff)
            Qp = (Qp + diff * Q[t]) / (1 + diff)
            prob /= 1 + diff
    return prob


STEPS: dict[str, type[_Step]] = {cls.name: cls for cls in (
    _FilterBank, _DelayEmbedding, _Projection, _Covariances, _CSP, _TangentSpace, _FGDA, _MDM,
    _Linear, _SVC)}
_HEADS = ("mdm", "linear", "svc")


class Chain:
    """Transform steps then one head, as a scikit-learn ``Pipeline``."""

    def __init__(self, spec: Any, arrays: dict, shape_in: tuple, where: str):
        if not (isinstance(spec, list) and spec and all(isinstance(s, dict) for s in spec)):
            raise FileFormatError(f"{where}: steps must be a non-empty list of objects.")
        kind = _FILTERBANK if len(shape_in) == 3 else _SIGNALS
        shape, self.steps = shape_in, []
        for i, step in enumerate(spec):
            name = step.get("step")
            name = name if isinstance(name, str) else repr(name)
            at = f"{where}, step {i} ({name})"
            if name not in STEPS:
                raise FileFormatError(f"{at}: unknown step {name!r}; this runtime computes "
                                      f"{', '.join(STEPS)} (a newer bci may know it).")
            last = i == len(spec) - 1
            if last != (name in _HEADS):
                raise FileFormatError(f"{at}: a pipeline ends with one of {', '.join(_HEADS)} "
                                      "and has no other.")
            obj = STEPS[name](step, arrays, shape, kind, at)
            self.steps.append(obj)
            shape, kind = obj.shape_out, obj.kind_out
        self.head = self.steps[-1]
        self.classes_ = self.head.classes_

    def features(self, X):
        for step in self.steps[:-1]:
            X = step.transform(X)
        return X

    def decision_function(self, X):
        return self.head.decision_function(self.features(X))

    def predict(self, X):
        return self.head.predict(self.features(X))

    def predict_proba(self, X):
        return self.head.predict_proba(self.features(X))


class Calibrated:
    """scikit-learn's ``CalibratedClassifierCV(method="sigmoid")``: members averaged."""

    def __init__(self, spec: dict, arrays: dict, shape_in: tuple, where: str):
        classes = spec.get("classes")
        members = spec.get("members")
        if not (isinstance(classes, list) and len(classes) >= 2 and isinstance(members, list)
                and all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in classes)
                and members and all(isinstance(m, dict) for m in members)):
            raise FileFormatError(f"{where}: a calibrated model needs classes (>= 2) and a "
                                  "non-empty list of members.")
        self.classes_ = np.asarray(classes)
        self.members = []
        for i, member in enumerate(members):
            at = f"{where}, member {i}"
            chain = Chain(member.get("steps"), arrays, shape_in, at)
            names = member.get("arrays", {})
            if not (isinstance(names, dict) and set(names) == {"a", "b"}
                    and all(isinstance(v, str) and v in arrays for v in names.values())):
                raise FileFormatError(f"{at}: needs arrays a and b (the sigmoids).")
            a, b = arrays[names["a"]], arrays[names["b"]]
            n_cal = 1 if len(classes) == 2 else len(classes)
            if a.shape != (n_cal,) or b.shape != (n_cal,):
                raise FileFormatError(f"{at}: the sigmoid arrays have shapes {a.shape} and "
                                      f"{b.shape}, expected ({n_cal},) (a damaged or edited "
                                      "file).")
            missing = set(chain.classes_.tolist()) - set(classes)
            if missing or len(chain.classes_) != len(classes):
                raise FileFormatError(f"{at}: its classes {chain.classes_.tolist()} are not "
                                      f"those of the model, {classes}.")
            pos = np.array([classes.index(c) for c in chain.classes_.tolist()])
            self.members.append((chain, a, b, pos))

    def predict_proba(self, X):
        k = len(self.classes_)
        mean = np.zeros((len(X), k))
        for chain, a, b, pos in self.members:
            d = chain.decision_function(X)
            d = d.reshape(-1, 1) if d.ndim == 1 else d
            proba = np.zeros((len(X), k))
            for col, (idx, this) in enumerate(zip(pos, d.T, strict=False)):
                # binary: the one decision value is the second class's (scikit-learn)
                proba[:, idx + 1 if k == 2 else idx] = _expit(-(a[col] * this + b[col]))
            if k == 2:
                proba[:, 0] = 1.0 - proba[:, 1]
            else:
                den = proba.sum(axis=1, keepdims=True)
                proba = np.divide(proba, den, out=np.full_like(proba, 1 / k), where=den != 0)
            mean += proba
        return mean / len(self.members)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
