"""Metrics of intracortical velocity decoders: R^2 as NeuroBench defines it.

NeuroBench's ``R2`` workload metric (``neurobench/metrics/workload/r2.py``) accumulates, per
output dimension (x and y velocity), the sum of squared errors over every predicted sample and
divides by ``n * var`` of all the true values seen (population variance, ``correction=0``):
``R2_d = 1 - sum (y_d - p_d)^2 / (n var(y_d))``, and reports the mean of the two. That is
scikit-learn's ``r2_score(..., multioutput="uniform_average")`` on the concatenated samples,
not an average of per-trial scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["r2_per_output", "r2_neurobench"]


def _stack(values, name: str) -> np.ndarray:
    """``(n_samples, n_outputs)`` from an array or a list of ``(n_outputs, n_bins)`` trials."""
    if isinstance(values, (list, tuple)):
        if not values:
            raise ValueError(f"{name} is an empty list; pass one (n_outputs, n_bins) array per "
                             "trial.")
        arr = np.concatenate([np.asarray(v, dtype=np.float64) for v in values], axis=1).T
    else:
        arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (n_samples, n_outputs) or a list of (n_outputs, "
                         f"n_bins) arrays, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values.")
    return arr


def r2_per_output(y_true: np.ndarray | Sequence[np.ndarray],
                  y_pred: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """R^2 of each output dimension over all samples (NeuroBench's per-axis R^2).

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (n_samples, n_outputs), or list of (n_outputs, n_bins)
        True and predicted velocities (lists are trials, concatenated in time).

    Returns
    -------
    r2 : ndarray, shape (n_outputs,)
        ``1 - SSE_d / (n * var(y_true_d))``; a constant ``y_true_d`` raises ``ValueError``.
    """
    true, pred = _stack(y_true, "y_true"), _stack(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {true.shape} and "
                         f"{pred.shape}.")
    denom = true.var(axis=0) * true.shape[0]
    if np.any(denom == 0):
        raise ValueError("y_true is constant along an output; R^2 is undefined.")
    return 1.0 - ((true - pred) ** 2).sum(axis=0) / denom


def r2_neurobench(y_true: np.ndarray | Sequence[np.ndarray],
                  y_pred: np.ndarray | Sequence[np.ndarray]) -> float:
    """NeuroBench's R^2: the mean over output dimensions of :func:`r2_per_output`.

    Examples
    --------
    >>> y = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    >>> r2_neurobench(y, y)
    1.0
    >>> r2_neurobench(y, np.zeros_like(y) + y.mean(axis=0))
    0.0
    """
    return float(np.mean(r2_per_output(y_true, y_pred)))
