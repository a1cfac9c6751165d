"""Input validation shared by the whole package (private)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import numpy as np


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` hint, or an empty string when nothing is close."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""


def check_option(kind: str, name: str, candidates: Iterable[str]) -> str:
    """Check that ``name`` is one of ``candidates``; raise a ``ValueError`` with a hint otherwise."""
    candidates = list(candidates)
    if name not in candidates:
        raise ValueError(
            f"Unknown {kind} {name!r}.{did_you_mean(name, candidates)} "
            f"Available: {', '.join(sorted(candidates))}."
        )
    return name


def check_epochs_array(X, *, name: str = "X", n_chans: int | None = None,
                       n_times: int | None = None) -> np.ndarray:
    """Validate a batch of epochs ``(n_epochs, n_chans, n_times)`` and return it as float64.

    Raises ``ValueError`` naming the expected and received shape, or the location of the first
    non-finite sample.
    """
    arr = np.asarray(X)
    if arr.ndim == 2 and n_chans is not None and arr.shape[0] == n_chans:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D (n_epochs, n_chans, n_times), got shape {arr.shape}."
        )
    if n_chans is not None and arr.shape[1] != n_chans:
        raise ValueError(
            f"{name} has {arr.shape[1]} channels, expected n_chans={n_chans}; "
            "pick and order the channels as the decoder's ch_names."
        )
    if n_times is not None and arr.shape[2] != n_times:
        raise ValueError(
            f"{name} has {arr.shape[2]} samples per epoch, expected n_times={n_times}."
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        e, c, t = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite values (NaN/inf), first at epoch {e}, "
            f"channel {c}, sample {t}; interpolate or drop bad segments before decoding."
        )
    return arr


def validate_epochs(estimator, X, *, reset: bool) -> np.ndarray:
    """Validate epochs for a scikit-learn estimator and return them as 3-D float64.

    ``sklearn.utils.validation.validate_data(estimator, X, allow_nd=True)`` (records or checks
    ``n_features_in_``, which for epochs is ``n_chans``), then ``np.atleast_3d`` as MNE's decoding
    estimators do: a 2-D ``(n_samples, n_features)`` array becomes ``(n_samples, n_features, 1)``,
    i.e. epochs of one time sample. Non-finite values raise via :func:`check_epochs_array`, which
    names the first bad epoch, channel and sample. Never modifies ``X``.
    """
    from sklearn.utils.validation import validate_data

    shape = getattr(X, "shape", None)  # arrays and DataFrames; sklearn checks the rest
    expected = getattr(estimator, "n_features_in_", None)
    if (not reset and expected is not None and shape is not None and len(shape) >= 2
            and shape[1] != expected):
        # sklearn's own wording first (its common checks match it), then ours
        raise ValueError(
            f"X has {shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{expected} features as input: for epochs (n_epochs, n_chans, n_times) the features "
            f"are channels, so fit saw n_chans={expected} and X of shape {shape} has "
            f"{shape[1]}; pick the same channels, in the same order, as in fit."
        )
    X = validate_data(estimator, X, allow_nd=True, dtype=np.float64,
                      ensure_all_finite=False, reset=reset)
    X = np.atleast_3d(X)
    if X.ndim != 3:
        raise ValueError(
            f"X must be 3-D (n_epochs, n_chans, n_times), got shape {X.shape}; "
            "reshape or loop over the extra axes."
        )
    return check_epochs_array(X)
