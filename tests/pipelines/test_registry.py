"""The pipeline registry: MOABB names, fresh estimators, embedded grid search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from bci.pipelines.registry import ACM_GRID, MOABB_ACM_GRID, PIPELINES, get_pipeline, list_pipelines

MOABB_NAMES = {"CSP+LDA", "TS+LR", "TS+SVM", "MDM", "FgMDM", "ACM+TS+SVM", "SSVEP_TS+LR",
               "SSVEP_TS+SVM", "SSVEP_MDM", "SSVEP_CCA"}
RANK_NAMES = {"RANK+TS+LR", "RANK+MDM"}  # bci's: signal-subspace projection first (MEG)
DEEP_NAMES = {"EEGNeX", "EEGNet", "ShallowConvNet", "NeuroGPT", "NeuroGPT-encoder",
              "NeuroGPT-linear"}  # family "any": imagery and SSVEP


def test_registry_uses_moabb_names():
    assert set(list_pipelines()) == MOABB_NAMES | RANK_NAMES | DEEP_NAMES
    assert set(list_pipelines("ssvep")) == {n for n in MOABB_NAMES if n.startswith("SSVEP")}
    assert set(list_pipelines("any")) == DEEP_NAMES


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_fresh_cloneable_estimator(name):
    a, b = get_pipeline(name), get_pipeline(name)
    assert a is not b
    clone(a)  # MOABB clones every pipeline before each fold
    assert isinstance(a, GridSearchCV) == (PIPELINES[name].param_grid is not None)


def test_grid_search_matches_moabb_inner_cv():
    est = get_pipeline("TS+SVM", random_state=7, scoring="roc_auc")
    assert est.cv.n_splits == 3
    assert est.cv.shuffle
    assert est.cv.random_state == 7
    assert est.scoring == "roc_auc"
    assert est.param_grid == PIPELINES["TS+SVM"].param_grid
    acm = get_pipeline("ACM+TS+SVM", param_grid=MOABB_ACM_GRID)
    assert len(acm.param_grid["acm__order"]) == 10
    assert ACM_GRID != MOABB_ACM_GRID


def test_errors():
    with pytest.raises(ValueError, match=r"Unknown pipeline 'TS\+SVN'. Did you mean 'TS\+SVM'"):
        get_pipeline("TS+SVN")
    with pytest.raises(ValueError, match="has no hyper-parameter grid"):
        get_pipeline("MDM", param_grid={"mdm__metric": ["riemann"]})
    with pytest.raises(ValueError, match=r"not parameters of 'TS\+SVM'"):
        get_pipeline("TS+SVM", param_grid={"svm__C": [1.0]})


def test_pipelines_fit_planted_lateralisation():
    """Two classes differing in the power of one channel: every MI pipeline separates them."""
    rng = np.random.default_rng(0)
    n, c, t = 60, 6, 200
    X = rng.standard_normal((n, c, t))
    y = np.repeat([0, 1], n // 2)
    X[y == 1, 0] *= 2.5
    for name in list_pipelines("imagery"):
        est = get_pipeline(name)
        if isinstance(est, GridSearchCV):  # keep the test fast: smallest grid
            grid = est.param_grid[-1] if isinstance(est.param_grid, list) else est.param_grid
            est.set_params(param_grid={k: v[-1:] for k, v in grid.items()})
        est.fit(X[::2], y[::2])
        assert (est.predict(X[1::2]) == y[1::2]).mean() > 0.9, name


@pytest.mark.parametrize("name", ["CSP+LDA", "TS+LR", "MDM", "FgMDM"])
def test_clear_errors_for_bad_epochs(name):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((20, 4, 100)), np.repeat([0, 1], 10)
    pipe = get_pipeline(name)
    with pytest.raises(ValueError, match=r"must be 3-D \(n_epochs, n_chans, n_times\)"):
        pipe.fit(X[:, 0], y)
    bad = X.copy()
    bad[3, 2, 50] = np.nan
    with pytest.raises(ValueError, match="first at epoch 3, channel 2, sample 50"):
        pipe.fit(bad, y)
    pipe.fit(X, y)
    with pytest.raises(ValueError, match="has 3 channels, expected n_chans=4"):
        pipe.predict(X[:, :3])
    assert pipe.predict(X).shape == (20,)
