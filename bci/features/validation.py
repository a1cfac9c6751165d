"""Input validation as a pipeline step: :class:`CheckEpochs`."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._checks import check_bool, check_epochs_array, validate_epochs

__all__ = ["CheckEpochs"]


class CheckEpochs(TransformerMixin, BaseEstimator):
    """Check epochs and pass them through unchanged: the first step of the registered pipelines.

    pyRiemann's estimators fail on a 2-D array or a NaN sample with errors that do not say what is
    wrong (``not enough values to unpack``, an OAS message); this step names the problem and the
    fix instead: the expected shape ``(n_epochs, n_chans, n_times)``, the channel count seen in
    ``fit``, or the epoch, channel and sample of the first non-finite value.

    Parameters
    ----------
    allow_2d : bool, default=False
        Read a 2-D array ``(n_epochs, n_chans)`` as epochs of one time sample
        (``np.atleast_3d``), as MNE's decoding estimators and scikit-learn's common checks do.
        Off by default: the registered pipelines estimate covariances, which need more than one
        sample per epoch, so a 2-D array there is a lost axis and is refused. With the default,
        ``transform`` also accepts one epoch ``(n_chans, n_times)``.

    Attributes
    ----------
    n_chans_ : int
        Channels seen in ``fit``.
    n_features_in_ : int
        Same as ``n_chans_`` (scikit-learn's name).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.zeros((4, 3, 10))
    >>> CheckEpochs().fit(X).transform(X).shape
    (4, 3, 10)
    """

    def __init__(self, allow_2d: bool = False) -> None:
        self.allow_2d = allow_2d

    def fit(self, X, y=None) -> CheckEpochs:
        """Check ``X`` and record its channel count.

        Parameters
        ----------
        X : array-like, shape (n_epochs, n_chans, n_times)
            Epochs (any unit).
        y : None
            Ignored, for the scikit-learn API.

        Returns
        -------
        self : CheckEpochs
        """
        if not check_bool(self.allow_2d, "allow_2d"):
            X = check_epochs_array(X)
        self.n_chans_ = validate_epochs(self, X, reset=True).shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        """Check ``X`` against ``fit`` and return it as float64.

        Parameters
        ----------
        X : array-like, shape (n_epochs, n_chans, n_times)
            Epochs with the channels seen in ``fit``.

        Returns
        -------
        X : ndarray, shape (n_epochs, n_chans, n_times)
            The same values as float64 (a new array only where a conversion was needed).
        """
        check_is_fitted(self, "n_chans_")
        if not self.allow_2d:
            X = check_epochs_array(X, n_chans=self.n_chans_)
        return validate_epochs(self, X, reset=False)

    def __sklearn_tags__(self):
        """Declare 3-D input (epochs) besides scikit-learn's 2-D arrays."""
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
