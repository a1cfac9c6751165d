"""Latency statistics: percentiles, maximum and count of measured delays.

One function serves the session summaries of :mod:`bci.realtime.report`, the closed-loop
latency benchmark and the spindle recipe, so a "p99" means the same everywhere: numpy's
linear-interpolation percentile over the finite values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from .._checks import check_real, check_type, ensure_int

__all__ = ["latency_stats"]


def latency_stats(values: Iterable[float | None], *,
                  percentiles: Sequence[float] = (50, 95, 99), decimals: int = 4,
                  scale: float = 1.0) -> dict[str, float | int | None]:
    """Percentiles, maximum and count of latencies, leaving out missing and non-finite values.

    Parameters
    ----------
    values : iterable of float | None
        Latencies, shape ``(n_values,)``, in any unit (milliseconds in the session summaries).
        ``None``, NaN and infinite values are left out (a window without a decision has no
        latency).
    percentiles : sequence of float
        Percentiles to report, each in [0, 100]; key ``f"p{q:g}"`` (``50`` -> ``"p50"``).
    decimals : int
        Digits after the decimal point kept by :func:`round` (>= 0).
    scale : float
        Factor applied to every value before the statistics, e.g. ``1e3`` for seconds in and
        milliseconds out; finite and > 0.

    Returns
    -------
    stats : dict
        ``{"p50": ..., "p95": ..., "p99": ..., "max": ..., "n": ...}`` (one key per entry of
        ``percentiles``, then ``"max"`` and ``"n"``): floats in the unit of
        ``values * scale``, and the count of values used. Every statistic is None when no value
        is left.

    Examples
    --------
    >>> latency_stats(range(1, 101))
    {'p50': 50.5, 'p95': 95.05, 'p99': 99.01, 'max': 100.0, 'n': 100}
    >>> latency_stats([0.002, None, float("nan"), 0.004], percentiles=(50,), scale=1e3)
    {'p50': 3.0, 'max': 4.0, 'n': 2}
    >>> latency_stats([])
    {'p50': None, 'p95': None, 'p99': None, 'max': None, 'n': 0}
    """
    qs = [check_real(q, "percentiles", low=0.0, high=100.0) for q in
          check_type(percentiles, (list, tuple, np.ndarray, range), "percentiles")]
    decimals = ensure_int(decimals, "decimals", minimum=0, what="digits")
    scale = check_real(scale, "scale", low=0.0, low_inclusive=False)
    keys = [f"p{q:g}" for q in qs]
    kept = [v for v in values if v is not None and math.isfinite(v)]
    arr = np.asarray(kept, dtype=float)
    if scale != 1.0:
        arr = arr * scale
    if arr.size == 0:
        return {**dict.fromkeys(keys), "max": None, "n": 0}
    stats: dict[str, float | int | None] = {
        key: round(float(p), decimals) for key, p in zip(keys, np.percentile(arr, qs), strict=True)}
    stats["max"] = round(float(arr.max()), decimals)
    stats["n"] = int(arr.size)
    return stats
