"""R^2 as NeuroBench defines it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import r2_score

from bci.evaluation.ibmi_metrics import r2_neurobench, r2_per_output


def _neurobench_accumulated(batches):
    """NeuroBench's R2 metric: SSE accumulated per axis over batches, variance of all labels."""
    sse = np.zeros(2)
    labels = []
    for true, pred in batches:
        sse += ((true - pred) ** 2).sum(axis=0)
        labels.append(true)
    labels = np.concatenate(labels)
    return float(np.mean(1 - sse / (labels.var(axis=0) * len(labels))))


def test_r2_matches_neurobench_accumulation_and_sklearn():
    rng = np.random.default_rng(0)
    true = [rng.standard_normal((2, n)) * [[1.0], [3.0]] for n in (30, 50, 20)]
    pred = [t + 0.5 * rng.standard_normal(t.shape) for t in true]
    ours = r2_neurobench(true, pred)
    batches = [(t.T, p.T) for t, p in zip(true, pred, strict=True)]
    assert ours == pytest.approx(_neurobench_accumulated(batches), abs=1e-12)
    flat_t, flat_p = np.concatenate(true, 1).T, np.concatenate(pred, 1).T
    assert ours == pytest.approx(r2_score(flat_t, flat_p), abs=1e-12)
    # pooled over samples, not a mean of per-trial scores
    per_trial = np.mean([r2_score(t.T, p.T) for t, p in zip(true, pred, strict=True)])
    assert ours != pytest.approx(per_trial, abs=1e-6)
    np.testing.assert_allclose(r2_per_output(flat_t, flat_p),
                               r2_score(flat_t, flat_p, multioutput="raw_values"))


def test_r2_errors():
    with pytest.raises(ValueError, match="same shape"):
        r2_neurobench(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="constant"):
        r2_neurobench(np.ones((4, 2)), np.zeros((4, 2)))
