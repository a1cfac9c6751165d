"""Euclidean alignment (EA) of epochs, at the signal level (He & Wu 2019).

Each epoch is whitened by the inverse square root of the reference matrix
``R = mean_i X_i X_i^T / n_times`` (arithmetic mean of the trials' non-centred covariances), so
that the aligned trials of one domain (subject, session) have the identity as mean covariance.
Fit it on one domain's trials, transform that domain's trials; use one instance per domain.

Examples
--------
>>> import numpy as np
>>> from bci.data import EuclideanAlignment
>>> X = np.random.default_rng(0).standard_normal((20, 3, 100))
>>> Xa = EuclideanAlignment().fit_transform(X)
>>> R = np.mean(Xa @ Xa.transpose(0, 2, 1), axis=0) / Xa.shape[2]
>>> bool(np.allclose(R, np.eye(3)))
True
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._checks import validate_epochs

try:  # pyRiemann >= 0.12 (pyriemann.utils.* are deprecated aliases there)
    from pyriemann.geometry.base import invsqrtm
    from pyriemann.geometry.covariance import covariance_scm
except ImportError:  # pragma: no cover - pyRiemann < 0.12
    from pyriemann.utils.base import invsqrtm
    from pyriemann.utils.covariance import covariance_scm

logger = logging.getLogger(__name__)

__all__ = ["EuclideanAlignment"]


class EuclideanAlignment(TransformerMixin, BaseEstimator):
    r"""Euclidean alignment of epochs (He & Wu 2019): ``X_i -> R^{-1/2} X_i``.

    .. math::

        R = \frac{1}{N} \sum_{i=1}^{N} \frac{X_i X_i^T}{n_{times}}, \qquad
        \tilde X_i = R^{-1/2} X_i

    After alignment, the mean of ``X_i X_i^T / n_times`` over the fitted trials is the identity.
    The trials are not centred in time (the paper's ``X X^T``; band-passed EEG has zero mean
    anyway).

    Attributes
    ----------
    n_features_in_ : int
        Number of channels seen in ``fit`` (scikit-learn's name).
    n_chans_ : int
        Same as ``n_features_in_``.
    reference_ : ndarray, shape (n_chans, n_chans)
        Reference matrix ``R`` (squared unit of ``X``).
    R_inv_sqrt_ : ndarray, shape (n_chans, n_chans)
        ``R^{-1/2}`` (:func:`pyriemann.geometry.base.invsqrtm`), the whitening matrix applied by
        ``transform`` (inverse unit of ``X``).

    See Also
    --------
    pyriemann.transfer.TLCenter : re-centering of covariance matrices.
    moabb.datasets.preprocessing.EuclideanAlignment : MOABB's signal-level EA.

    Notes
    -----
    Why our own:

    - pyRiemann (0.12) has no signal-level EA. :class:`pyriemann.transfer.TLCenter` (and
      :class:`pyriemann.preprocessing.Whitening`) re-center *covariance matrices*
      ``(n_matrices, n_chans, n_chans)``: ``C_i -> R^{-1/2} C_i R^{-1/2}``, and ``TLCenter``
      takes domain-encoded labels. With ``metric="euclid"`` on the matrices ``X_i X_i^T / n_times``
      that is exactly the covariance of our output, but it cannot feed time-series models (CSP on
      filtered signals, networks), which is what EA is for.
    - MOABB (>= 1.7) ships :class:`moabb.datasets.preprocessing.EuclideanAlignment`, also
      signal-level, but it estimates each trial's covariance with pyRiemann's ``"lwf"``
      (Ledoit-Wolf shrinkage, on time-centred data) by default, so its aligned trials do not
      have identity mean covariance (off by 0.7 for 20 trials x 4 channels x 50 samples); with
      ``estimator="scm"`` it still centres each trial in time, so it equals this transformer
      only on zero-mean trials. It does no validation of its own (NaN surfaces as the
      covariance estimator's error, e.g. "Matrices must be positive definite" for ``"scm"``; a
      wrong channel count in ``transform`` as a numpy ``matmul`` error), records no
      ``n_features_in_``. This class is the paper's definition, validated, and passes
      scikit-learn's estimator checks.

    References
    ----------
    .. [1] H. He and D. Wu, "Transfer learning for brain-computer interfaces: a Euclidean space
       data alignment approach", IEEE Trans. Biomed. Eng. 67(2):399-410, 2020 (online 2019),
       doi:10.1109/TBME.2019.2913914.
    """

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> EuclideanAlignment:
        """Compute the reference matrix and its inverse square root.

        Parameters
        ----------
        X : ndarray, shape (n_epochs, n_chans, n_times)
            Trials of one domain (subject / session).
        y : None
            Ignored, for the scikit-learn API (EA is unsupervised).

        Returns
        -------
        self : EuclideanAlignment

        Raises
        ------
        ValueError
            If ``X`` is not 3-D, contains NaN/inf, or ``R`` is singular (fewer samples in total
            than channels, or linearly dependent channels such as after an average reference).
        """
        X = validate_epochs(self, X, reset=True)
        n_epochs, n_chans, n_times = X.shape
        # X X^T / n_times per trial (pyRiemann's SCM without centring), then arithmetic mean
        reference = covariance_scm(X, assume_centered=True).mean(axis=0)
        eigvals = np.linalg.eigvalsh(reference)
        tol = eigvals.max(initial=0.0) * n_chans * np.finfo(np.float64).eps
        rank = int(np.sum(eigvals > tol))
        if rank < n_chans:
            raise ValueError(
                f"The reference matrix R (mean of X X^T / n_times) is singular: rank {rank} < "
                f"n_chans={n_chans}, from {n_epochs} epoch(s) x {n_times} time sample(s) = "
                f"n_samples={n_epochs * n_times}. EA needs R invertible: give at least n_chans "
                "samples in total and no linearly dependent channels (drop one channel after an "
                "average reference, or remove flat channels)."
            )
        self.reference_ = reference
        self.R_inv_sqrt_ = invsqrtm(reference)
        self.n_chans_ = n_chans
        logger.debug("EuclideanAlignment: fitted on %d epochs, cond(R) = %.3g",
                     n_epochs, eigvals.max() / eigvals.min())
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Align epochs: ``R^{-1/2} @ X_i`` for each epoch.

        Parameters
        ----------
        X : ndarray, shape (n_epochs, n_chans, n_times)
            Epochs with the channels seen in ``fit`` (any ``n_times``).

        Returns
        -------
        X_aligned : ndarray, shape (n_epochs, n_chans, n_times)
            New array, dimensionless (the unit of ``X`` cancels against ``R^{-1/2}``).
        """
        check_is_fitted(self)
        X = validate_epochs(self, X, reset=False)
        return self.R_inv_sqrt_ @ X

    def __sklearn_tags__(self):
        """Declare 3-D input (epochs ``(n_epochs, n_chans, n_times)``) besides 2-D arrays."""
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
