"""Input validation as a pipeline step: :class:`CheckEpochs`."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .._checks import check_epochs_array

__all__ = ["CheckEpochs"]


class CheckEpochs(TransformerMixin, BaseEstimator):
    """Check epochs and pass them through unchanged: the first step of the registered pipelines.

    pyRiemann's estimators fail on a 2-D array or a NaN sample with errors that do not say what is
    wrong (``not enough values to unpack``, an OAS message); this step names the problem and the
    fix instead: the expected shape ``(n_epochs, n_chans, n_times)``, the channel count seen in
    ``fit``, or the epoch, channel and sample of the first non-finite value.

    Attributes
    ----------
    n_chans_ : int
        Channels seen in ``fit``.
    """

    def fit(self, X, y=None):
        """Check ``X`` and record its channel count.

        Parameters
        ----------
        X : array-like, shape (n_epochs, n_chans, n_times)
        y : ignored

        Returns
        -------
        self : CheckEpochs
        """
        self.n_chans_ = check_epochs_array(X).shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        """Check ``X`` against ``fit`` and return it as float64.

        Parameters
        ----------
        X : array-like, shape (n_epochs, n_chans, n_times)

        Returns
        -------
        X : ndarray, shape (n_epochs, n_chans, n_times)
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "n_chans_")
        return check_epochs_array(X, n_chans=self.n_chans_)
