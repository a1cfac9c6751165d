"""Augmented covariance matrices: covariance of the Takens delay embedding of each epoch.

Carrara & Papadopoulo ("Classification of BCI-EEG based on augmented covariance matrix") stack
time-delayed copies of the signal (embedding dimension ``order``, delay ``lag`` in samples) and
take the covariance of the stacked signal: an SPD matrix of size ``order * n_chans`` that carries
the spatial covariance (its diagonal blocks) and the lagged cross-covariances, i.e. the
autoregressive structure (its off-diagonal blocks). Classify it with pyRiemann (tangent space +
SVM, MDM).

Two implementations exist upstream; both differ from :func:`delay_embedding` (details in its
docstring): pyRiemann's :class:`~pyriemann.estimation.TimeDelayCovariances` delays with
``np.roll`` (wrap-around), and MOABB's :class:`moabb.pipelines.features.AugmentedDataset` drops
``lag`` more samples than needed and orders the blocks the other way round.

Examples
--------
>>> import numpy as np
>>> from bci.features import AugmentedCovariance, delay_embedding
>>> X = np.random.default_rng(0).standard_normal((5, 3, 100))
>>> delay_embedding(X, order=4, lag=2).shape
(5, 12, 94)
>>> AugmentedCovariance(order=4, lag=2).fit_transform(X).shape
(5, 12, 12)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._checks import check_option, ensure_int, validate_epochs

try:  # pyRiemann >= 0.12 (pyriemann.utils.covariance is a deprecated alias there)
    from pyriemann.geometry.covariance import cov_est_functions, covariances
except ImportError:  # pragma: no cover - pyRiemann < 0.12
    from pyriemann.utils.covariance import cov_est_functions, covariances

logger = logging.getLogger(__name__)

__all__ = ["AugmentedCovariance", "delay_embedding"]


def _check_order_lag(order, lag, n_times: int | None = None) -> None:
    """Check the embedding parameters (and that the epochs are long enough for them)."""
    ensure_int(order, "order", minimum=1, what="stacked copies",
               hint="order=1 is the plain covariance.")
    ensure_int(lag, "lag", minimum=1, what="samples between copies",
               hint="lag=1 stacks consecutive samples.")
    if n_times is not None and (order - 1) * lag >= n_times:
        raise ValueError(
            f"The embedding spans (order - 1) * lag + 1 = {(order - 1) * lag + 1} samples "
            f"(order={order}, lag={lag}) but the epochs have only n_times={n_times}; "
            f"it needs (order - 1) * lag < n_times: use longer epochs or a smaller order/lag."
        )


def delay_embedding(X: np.ndarray, order: int, lag: int) -> np.ndarray:
    """Takens delay embedding of epochs, without wrap-around.

    Parameters
    ----------
    X : ndarray, shape (n_epochs, n_chans, n_times)
        Epochs (any unit; any leading batch shape ``(..., n_chans, n_times)`` works too).
    order : int
        Embedding dimension: number of stacked copies, >= 1 (1 returns a copy of ``X``).
    lag : int
        Delay between consecutive copies, in samples, >= 1.

    Returns
    -------
    X_emb : ndarray, shape (n_epochs, order * n_chans, n_times - (order - 1) * lag)
        New array (never a view of ``X``), same dtype. Rows ``p * n_chans`` to
        ``(p + 1) * n_chans - 1`` (block ``p = 0 .. order - 1``) hold the signal delayed by
        ``p * lag`` samples: ``X_emb[e, p * n_chans + c, t] = X[e, c, t + (order - 1 - p) * lag]``.
        Block 0 is the undelayed signal; output sample ``t`` is original sample
        ``t + (order - 1) * lag``, the most recent one of the window it stacks. Only windows
        that lie entirely inside the epoch are kept (the first ``(order - 1) * lag`` samples
        have no complete history and are dropped).

    Raises
    ------
    ValueError
        If ``order`` or ``lag`` is < 1, or ``(order - 1) * lag >= n_times``.
    TypeError
        If ``order`` or ``lag`` is not an integer.

    Notes
    -----
    Differences with the upstream implementations:

    - pyRiemann's :class:`~pyriemann.estimation.TimeDelayCovariances` (``delays=order`` for
      ``lag=1``, or ``delays=[lag, 2 * lag, ..., (order - 1) * lag]``) uses the same block order
      (block ``p`` delayed by ``p * lag``) but delays with ``np.roll``, which wraps around: its
      block ``p`` starts with the last ``p * lag`` samples of the epoch, so it keeps all
      ``n_times`` columns of which the first ``(order - 1) * lag`` mix the end of the epoch into
      its start. Dropping those columns of its ``Xtd_`` gives exactly this embedding:
      ``Xtd_[..., (order - 1) * lag:] == delay_embedding(X, order, lag)``.
    - MOABB's :class:`moabb.pipelines.features.AugmentedDataset` (1.7.2) concatenates
      ``X[..., p * lag : -(order - p) * lag]`` for ``p = 0 .. order - 1``: its block ``p`` is
      *advanced* by ``p * lag`` relative to its block 0 (the reverse block order), and each block
      has ``n_times - order * lag`` samples, ``lag`` fewer than the ``n_times - (order - 1) * lag``
      complete windows (it drops the last ``lag`` valid windows). Exactly, for ``order >= 2``:
      ``AugmentedDataset(order, lag).transform(X) == E_rev[..., :-lag]`` where ``E_rev`` is this
      embedding with its ``order`` blocks in reverse order. For ``order == 1`` it returns ``X``
      itself (all ``n_times`` samples), which equals this embedding. It does not check
      ``order``/``lag`` (``order * lag >= n_times`` gives empty blocks).

    The block order does not change the geometry: reversing the blocks permutes rows and columns
    of the covariance, ``P C P^T``, an isometry for the affine-invariant metric.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(6.0).reshape(1, 1, 6)
    >>> delay_embedding(X, order=3, lag=2)
    array([[[4., 5.],
            [2., 3.],
            [0., 1.]]])
    """
    X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(
            f"X must be (n_epochs, n_chans, n_times), got shape {X.shape}."
        )
    _check_order_lag(order, lag, X.shape[-1])
    n_chans = X.shape[-2]
    span = (order - 1) * lag + 1
    # windows[..., c, t, k] = X[..., c, t + k], k = 0 .. span - 1: a strided view, no copy
    windows = sliding_window_view(X, span, axis=-1)
    # k = span - 1 - p * lag for block p (most recent first): shape (..., n_chans, n_out, order)
    stacked = windows[..., ::-lag]
    stacked = np.moveaxis(stacked, -1, -3)  # (..., order, n_chans, n_out)
    n_out = X.shape[-1] - span + 1
    out = stacked.reshape(*X.shape[:-2], order * n_chans, n_out)  # copies unless order == 1
    return out.copy() if np.may_share_memory(out, X) else out


class AugmentedCovariance(TransformerMixin, BaseEstimator):
    """Augmented covariance matrices (covariance of the delay-embedded epochs).

    Each epoch is delay-embedded with :func:`delay_embedding` (no wrap-around) and its
    covariance is estimated by :func:`pyriemann.geometry.covariance.covariances`.

    Parameters
    ----------
    order : int, default=1
        Embedding dimension (number of stacked delayed copies), >= 1. ``order=1`` gives the
        plain spatial covariance, identical to :class:`pyriemann.estimation.Covariances`.
    lag : int, default=1
        Delay between consecutive copies, in samples, >= 1 (divide by ``sfreq`` for seconds).
    estimator : str | callable, default="cov"
        Covariance estimator, any that pyRiemann's ``covariances`` accepts: ``"corr"``,
        ``"cov"``, ``"hub"``, ``"lwf"``, ``"mcd"``, ``"oas"``, ``"sch"``, ``"scm"``,
        ``"stu"``, ``"tyl"``, or a callable ``(n_chans, n_times) -> (n_chans, n_chans)``.
        ``"cov"`` is MOABB's choice for its augmented-covariance pipelines.

    Attributes
    ----------
    n_features_in_ : int
        Number of channels seen in ``fit`` (scikit-learn's name).
    n_chans_ : int
        Same as ``n_features_in_``.
    n_times_ : int
        Samples per epoch seen in ``fit`` (``transform`` accepts other lengths as long as
        ``(order - 1) * lag < n_times``).

    See Also
    --------
    delay_embedding : the embedding, and how it differs from pyRiemann's and MOABB's.
    pyriemann.estimation.TimeDelayCovariances : the wrap-around (``np.roll``) variant.

    Notes
    -----
    Stateless apart from the input checks: ``fit`` only validates the parameters against the
    data and records the channel count, which ``transform`` then enforces. Clone-safe, so
    ``GridSearchCV(pipe, {"acm__order": [...], "acm__lag": [...]})`` works as in MOABB.

    References
    ----------
    .. [1] I. Carrara and T. Papadopoulo, "Classification of BCI-EEG based on augmented
       covariance matrix", arXiv:2302.04508, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((4, 2, 50))
    >>> acm = AugmentedCovariance(order=3, lag=2).fit(X)
    >>> acm.transform(X).shape
    (4, 6, 6)
    """

    def __init__(self, order: int = 1, lag: int = 1,
                 estimator: str | Callable = "cov") -> None:
        self.order = order
        self.lag = lag
        self.estimator = estimator

    def _check_params(self, n_times: int) -> None:
        _check_order_lag(self.order, self.lag, n_times)
        if isinstance(self.estimator, str):
            check_option("covariance estimator", self.estimator, cov_est_functions)
        elif not callable(self.estimator):
            raise TypeError(
                f"estimator must be a string ({', '.join(sorted(cov_est_functions))}) or a "
                f"callable, got {self.estimator!r} of type {type(self.estimator).__name__}."
            )

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> AugmentedCovariance:
        """Validate the parameters against the epochs and record their channel count.

        Parameters
        ----------
        X : ndarray, shape (n_epochs, n_chans, n_times)
            Epochs.
        y : None
            Ignored, for the scikit-learn API.

        Returns
        -------
        self : AugmentedCovariance
        """
        X = validate_epochs(self, X, reset=True)
        self._check_params(X.shape[2])
        self.n_chans_ = X.shape[1]
        self.n_times_ = X.shape[2]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Augmented covariance of each epoch.

        Parameters
        ----------
        X : ndarray, shape (n_epochs, n_chans, n_times)
            Epochs, with the channels seen in ``fit``.

        Returns
        -------
        covs : ndarray, shape (n_epochs, order * n_chans, order * n_chans)
            Covariance matrices of the embedded epochs (squared unit of ``X``), blocks ordered as
            in :func:`delay_embedding` (block ``p`` = delay ``p * lag`` samples).
        """
        check_is_fitted(self)
        X = validate_epochs(self, X, reset=False)
        self._check_params(X.shape[2])
        embedded = delay_embedding(X, self.order, self.lag)
        logger.debug("AugmentedCovariance: %s epochs embedded to %s", X.shape, embedded.shape)
        return covariances(embedded, estimator=self.estimator)

    def __sklearn_tags__(self):
        """Declare 3-D input (epochs ``(n_epochs, n_chans, n_times)``) besides 2-D arrays."""
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
