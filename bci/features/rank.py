"""Rank-deficient MEG/EEG: estimate the rank as MNE does and project onto the signal subspace.

Maxwell filtering (SSS/tSSS) leaves an Elekta/MEGIN recording of 306 channels with rank ~64-80,
SSP projections and an average reference each remove one dimension more, and ICA cleaning
removes its excluded components. The spatial covariance of such data is singular: its log (the
Riemannian tangent space) and its inverse (MDM distances, CSP's whitening) are then defined only
through the shrinkage added to it, and the directions of zero variance, which carry no signal,
dominate the distances. :class:`SubspaceProjection` makes the covariance pipelines well posed:

1. the rank ``r`` is estimated with :func:`mne.rank.estimate_rank` (MNE's estimator, the one
   :func:`mne.compute_rank` applies to data: singular values of the channel-normalised data
   above ``tol="auto"``, i.e. machine precision times the largest singular value and the
   matrix size, as :func:`numpy.linalg.matrix_rank`), on all training epochs concatenated;
2. the epochs are projected onto the ``r`` leading principal directions of the training data
   (eigenvectors of the average spatial covariance), so the covariances downstream are
   ``r x r`` and full rank. The projection is fixed at fit time, so a live window goes through
   exactly the training transform.

The alternative, regularisation (``Covariances(estimator="oas")`` as in the registered
pipelines: shrinkage towards a scaled identity), keeps all channels but gives the null
directions an arbitrary variance; the projection removes them. Put it before the covariances:
``Pipeline([("rank", SubspaceProjection()), ("covariances", Covariances("oas")), ...])``
(``recipes/meg_decoding.py`` evaluates such ``RANK+TS+LR`` and ``RANK+MDM`` pipelines).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> mixing = rng.standard_normal((20, 6))                   # 20 channels, rank 6
>>> X = mixing @ rng.standard_normal((30, 6, 200))           # 30 epochs
>>> proj = SubspaceProjection().fit(X)
>>> proj.rank_, proj.transform(X).shape
(6, (30, 6, 200))
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._checks import ensure_int, validate_epochs

logger = logging.getLogger(__name__)

__all__ = ["SubspaceProjection", "estimate_rank"]


def estimate_rank(X: np.ndarray) -> int:
    """Rank of epochs, estimated as MNE estimates the rank of data.

    Parameters
    ----------
    X : array, shape (n_epochs, n_chans, n_times)
        Epochs (any unit); concatenated in time.

    Returns
    -------
    rank : int
        :func:`mne.rank.estimate_rank` of the ``(n_chans, n_epochs * n_times)`` data with
        ``tol="auto"`` and channel normalisation (``norm=True``), at least 1.
    """
    from mne.rank import estimate_rank as _mne_estimate_rank

    X = np.asarray(X, dtype=np.float64)
    data = np.moveaxis(X, 1, 0).reshape(X.shape[1], -1)
    data = data - data.mean(axis=1, keepdims=True)
    return max(int(_mne_estimate_rank(data, tol="auto", norm=True, verbose=False)), 1)


class SubspaceProjection(TransformerMixin, BaseEstimator):
    """Project epochs onto the principal subspace of the training data (rank as MNE).

    Parameters
    ----------
    rank : int | "auto"
        Dimension kept: ``"auto"`` estimates it with :func:`estimate_rank` (MNE's estimator);
        an int keeps that many leading directions (at most ``n_chans``).

    Attributes
    ----------
    rank_ : int
        Dimension kept.
    filters_ : array, shape (rank_, n_chans)
        Orthonormal rows: the leading eigenvectors of the average spatial covariance of the
        training epochs (channels in the order of ``X``).
    eigenvalues_ : array, shape (n_chans,)
        All eigenvalues of that covariance, in decreasing order (unit of ``X`` squared).
    n_features_in_ : int
        Number of channels seen in fit.
    """

    def __init__(self, rank: int | str = "auto") -> None:
        self.rank = rank

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> SubspaceProjection:
        """Estimate the rank and the principal subspace of ``X``.

        Parameters
        ----------
        X : array, shape (n_epochs, n_chans, n_times)
            Training epochs.
        y : None
            Ignored.

        Returns
        -------
        self : SubspaceProjection
        """
        X = validate_epochs(self, X, reset=True)
        n_chans = X.shape[1]
        if self.rank == "auto":
            rank = estimate_rank(X)
        elif isinstance(self.rank, str):
            raise ValueError(f"rank must be 'auto' or a number of dimensions (int), "
                             f"got {self.rank!r}.")
        else:
            rank = ensure_int(self.rank, "rank", minimum=1, what="dimensions",
                              hint="Or rank='auto' to estimate it as MNE does.")
            if rank > n_chans:
                raise ValueError(f"rank={rank} exceeds the {n_chans} channels of X; pass "
                                 f"rank <= {n_chans} or rank='auto'.")
        centred = X - X.mean(axis=2, keepdims=True)
        cov = np.einsum("ect,edt->cd", centred, centred) / (X.shape[0] * X.shape[2])
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        order = np.argsort(eigenvalues)[::-1]
        self.eigenvalues_ = eigenvalues[order]
        self.filters_ = eigenvectors[:, order[:rank]].T.copy()
        self.rank_ = rank
        if rank < n_chans:
            logger.info("Projecting %d channels onto their %d-dimensional signal subspace",
                        n_chans, rank)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Project epochs onto the subspace found in fit.

        Parameters
        ----------
        X : array, shape (n_epochs, n_chans, n_times)

        Returns
        -------
        Xp : array, shape (n_epochs, rank_, n_times)
            A new array (``X`` is not modified).
        """
        check_is_fitted(self)
        X = validate_epochs(self, X, reset=False)
        return np.einsum("rc,ect->ert", self.filters_, X)
