"""Augmented covariance: embedding and covariance against loops, pyRiemann and MOABB."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from bci.features.augmented import AugmentedCovariance, delay_embedding

pytestmark = pytest.mark.filterwarnings("error")

ORDER_LAG = [(1, 1), (1, 3), (2, 1), (2, 3), (3, 2), (4, 1), (5, 4)]


@pytest.fixture
def X():
    return np.random.default_rng(42).standard_normal((3, 2, 25))


def _embedding_loops(X, order, lag):
    n_epochs, n_chans, n_times = X.shape
    n_out = n_times - (order - 1) * lag
    out = np.empty((n_epochs, order * n_chans, n_out))
    for e in range(n_epochs):
        for p in range(order):
            for c in range(n_chans):
                for t in range(n_out):
                    # output sample t is original sample t + (order - 1) * lag; block p delays it
                    out[e, p * n_chans + c, t] = X[e, c, t + (order - 1) * lag - p * lag]
    return out


@pytest.mark.parametrize(("order", "lag"), ORDER_LAG)
def test_embedding_equals_loops(X, order, lag):
    X_before = X.copy()
    emb = delay_embedding(X, order, lag)
    assert emb.shape == (3, order * 2, 25 - (order - 1) * lag)
    np.testing.assert_array_equal(emb, _embedding_loops(X, order, lag))
    np.testing.assert_array_equal(X, X_before)
    assert not np.shares_memory(emb, X)


def test_embedding_small_closed_form():
    X = np.arange(6.0).reshape(1, 1, 6)
    emb = delay_embedding(X, 3, 2)
    np.testing.assert_array_equal(emb[0], [[4, 5], [2, 3], [0, 1]])
    assert not np.shares_memory(emb, X)  # one channel: the reshape alone would be a view
    # the most recent block comes first for every channel
    X2 = np.stack([np.arange(5.0), 10 + np.arange(5.0)])[np.newaxis]
    np.testing.assert_array_equal(delay_embedding(X2, 2, 1)[0],
                                  [[1, 2, 3, 4], [11, 12, 13, 14], [0, 1, 2, 3], [10, 11, 12, 13]])


def test_embedding_keeps_dtype_and_leading_shape():
    X = np.random.default_rng(0).standard_normal((2, 3, 4, 30)).astype(np.float32)
    emb = delay_embedding(X, 3, 2)
    assert emb.dtype == np.float32
    assert emb.shape == (2, 3, 12, 26)
    np.testing.assert_array_equal(emb[1], delay_embedding(X[1], 3, 2))


@pytest.mark.parametrize(("order", "lag"), ORDER_LAG)
def test_covariance_equals_loops(X, order, lag):
    covs = AugmentedCovariance(order=order, lag=lag).fit_transform(X)
    emb = _embedding_loops(X, order, lag)
    n_feat, n_out = emb.shape[1:]
    for e in range(X.shape[0]):
        expected = np.zeros((n_feat, n_feat))
        centred = emb[e] - emb[e].mean(axis=1, keepdims=True)
        for i in range(n_feat):
            for j in range(n_feat):
                expected[i, j] = np.sum(centred[i] * centred[j]) / (n_out - 1)  # "cov": unbiased
        np.testing.assert_allclose(covs[e], expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("estimator", ["cov", "scm", "oas", "lwf"])
def test_order_one_is_pyriemann_covariances(X, estimator):
    from pyriemann.estimation import Covariances

    ours = AugmentedCovariance(order=1, lag=3, estimator=estimator).fit_transform(X)
    np.testing.assert_allclose(ours, Covariances(estimator=estimator).fit_transform(X),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("order", "lag"), [(2, 1), (3, 2), (4, 3)])
def test_relation_to_pyriemann_time_delay(X, order, lag):
    """PyRiemann rolls (wraps around); its columns after the wrapped ones are our embedding."""
    from pyriemann.estimation import TimeDelayCovariances

    tdc = TimeDelayCovariances(delays=[lag * p for p in range(1, order)], estimator="cov")
    tdc.fit(X).transform(X)
    span = (order - 1) * lag
    np.testing.assert_array_equal(tdc.Xtd_[..., span:], delay_embedding(X, order, lag))
    # its first columns mix the end of the epoch into the start (block 1, sample 0 = last sample)
    np.testing.assert_array_equal(tdc.Xtd_[:, 2:4, 0], X[:, :, -lag])


@pytest.mark.parametrize(("order", "lag"), [(1, 1), (1, 2), (2, 1), (2, 3), (3, 2), (4, 1)])
def test_relation_to_moabb_augmented_dataset(X, order, lag):
    """MOABB: blocks in reverse order, and ``lag`` fewer samples (none fewer at order=1)."""
    from moabb.pipelines.features import AugmentedDataset

    theirs = AugmentedDataset(order=order, lag=lag).fit(X, None).transform(X)
    ours = delay_embedding(X, order, lag)
    n_chans = X.shape[1]
    reverse = np.concatenate([np.arange(p * n_chans, (p + 1) * n_chans)
                              for p in reversed(range(order))])
    if order == 1:
        assert theirs.shape == X.shape
        np.testing.assert_array_equal(theirs, ours)
        return
    assert theirs.shape[-1] == X.shape[-1] - order * lag == ours.shape[-1] - lag
    np.testing.assert_array_equal(theirs, ours[:, reverse, :-lag])
    # hence their augmented covariance is ours, permuted, on the embedding cut by lag samples
    from pyriemann.estimation import Covariances

    cov_theirs = Covariances("cov").fit_transform(theirs)
    cov_ours = AugmentedCovariance(order, lag).fit_transform(X[..., :-lag])
    np.testing.assert_allclose(cov_theirs, cov_ours[:, reverse][:, :, reverse], rtol=1e-12)


@pytest.mark.parametrize(("order", "lag"), [(1, 1), (3, 2), (6, 1), (4, 5)])
@pytest.mark.parametrize("estimator", ["cov", "oas"])
def test_outputs_are_spd(order, lag, estimator):
    X = np.random.default_rng(1).standard_normal((5, 4, 120))
    covs = AugmentedCovariance(order=order, lag=lag, estimator=estimator).fit_transform(X)
    assert covs.shape == (5, 4 * order, 4 * order)
    np.testing.assert_allclose(covs, covs.transpose(0, 2, 1), rtol=0, atol=1e-13)
    assert np.linalg.eigvalsh(covs).min() > 1e-3


def test_transform_other_length_and_refit_forgets():
    rng = np.random.default_rng(2)
    acm = AugmentedCovariance(order=3, lag=2).fit(rng.standard_normal((4, 3, 50)))
    assert (acm.n_features_in_, acm.n_chans_, acm.n_times_) == (3, 3, 50)
    assert acm.transform(rng.standard_normal((2, 3, 20))).shape == (2, 9, 9)
    acm.fit(rng.standard_normal((4, 5, 40)))
    assert (acm.n_chans_, acm.n_times_) == (5, 40)


@pytest.mark.parametrize(("params", "exc", "match"), [
    ({"order": 0}, ValueError,
     r"order must be an int >= 1 \(stacked copies\), got 0\. order=1 is the plain covariance"),
    ({"order": -2}, ValueError, r"order must be an int >= 1 .*got -2"),
    ({"lag": 0}, ValueError,
     r"lag must be an int >= 1 \(samples between copies\), got 0\. lag=1 stacks consecutive"),
    ({"order": 2.5}, TypeError, r"order must be an int \(stacked copies\), got float \(2\.5\)"),
    ({"lag": True}, TypeError, r"lag must be an int \(samples between copies\), got bool"),
    ({"order": 4, "lag": 4}, ValueError,
     r"spans \(order - 1\) \* lag \+ 1 = 13 samples \(order=4, lag=4\) .*n_times=12"),
    ({"estimator": "oass"}, ValueError,
     r"Unknown covariance estimator 'oass'\. Did you mean 'oas'"),
    ({"estimator": 3}, TypeError, r"estimator must be a string"),
])
def test_invalid_params(params, exc, match):
    X = np.random.default_rng(0).standard_normal((3, 2, 12))
    with pytest.raises(exc, match=match):
        AugmentedCovariance(**params).fit(X)


def test_delay_embedding_errors():
    X = np.zeros((2, 3, 10))
    with pytest.raises(ValueError, match=r"needs \(order - 1\) \* lag < n_times"):
        delay_embedding(X, order=2, lag=10)
    with pytest.raises(ValueError, match="lag must be an int >= 1"):
        delay_embedding(X, order=2, lag=0)
    with pytest.raises(ValueError, match=r"got shape \(10,\)"):
        delay_embedding(np.zeros(10), order=1, lag=1)


def test_input_errors():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3, 30))
    acm = AugmentedCovariance(order=2)
    with pytest.raises(NotFittedError):
        acm.transform(X)
    acm.fit(X)
    with pytest.raises(ValueError, match=r"fit saw n_chans=3 and X of shape \(4, 2, 30\) has 2"):
        acm.transform(X[:, :2])
    with pytest.raises(ValueError, match=r"order=2, lag=1\) but the epochs have only n_times=1"):
        acm.transform(X[..., :1])
    bad = X.copy()
    bad[1, 2, 5] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf\), first at epoch 1, channel 2, sample 5"):
        AugmentedCovariance().fit(bad)
    with pytest.raises(ValueError, match=r"must be 3-D \(n_epochs, n_chans, n_times\)"):
        AugmentedCovariance().fit(X[..., np.newaxis])


# scikit-learn's common checks feed 2-D X (n_samples, n_features); like MNE's decoding
# estimators we read it through np.atleast_3d as (n_samples, n_chans=n_features, n_times=1):
# epochs of ONE time sample. Only order=1 applies to them ((order - 1) * lag < n_times = 1),
# and a covariance of one sample is degenerate: "scm" gives the zero matrix (defined, no
# warning), so AugmentedCovariance(estimator="scm") passes every check. With the default
# "cov" (numpy's unbiased estimator, divides by n_times - 1 = 0) the checks that compute a
# transform get NaN and a RuntimeWarning ("Degrees of freedom <= 0"), an error here; those are
# listed below. Every other check (clone, params, n_features_in_, NaN/inf/complex/1-D
# rejection, pickling, not-fitted errors...) runs on the default instance too.
_COV_ONE_SAMPLE = ("np.cov of epochs with a single time sample: division by n_times - 1 = 0, "
                   "NaN output and a RuntimeWarning (covered by the 'scm' instance)")
_EXPECTED_FAILED_DEFAULT = {name: _COV_ONE_SAMPLE for name in [
    "check_dtype_object",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit_idempotent",
]}


def _expected_failed(estimator):
    return _EXPECTED_FAILED_DEFAULT if estimator.estimator == "cov" else {}


@parametrize_with_checks([AugmentedCovariance(estimator="scm"), AugmentedCovariance()],
                         expected_failed_checks=_expected_failed)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _ar2_epochs(rng, n_epochs, n_chans, n_times, freq_cycles_per_sample, radius=0.9):
    """Independent AR(2) sources resonating at one frequency, each scaled to unit variance."""
    a1, a2 = 2 * radius * np.cos(2 * np.pi * freq_cycles_per_sample), -radius**2
    burn = 200
    noise = rng.standard_normal((n_epochs, n_chans, n_times + burn))
    src = lfilter([1.0], [1.0, -a1, -a2], noise, axis=-1)[..., burn:]
    return src / src.std(axis=-1, keepdims=True)


def test_grid_search_finds_temporal_structure():
    """Classes differ only in their AR spectra: order 1 is blind, order 2 separates them."""
    from pyriemann.tangentspace import TangentSpace
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    n_epochs, n_chans, n_times = 30, 3, 200
    mixing = rng.standard_normal((n_chans, n_chans))  # same spatial mixing for both classes
    slow = _ar2_epochs(rng, n_epochs, n_chans, n_times, 0.08)  # resonance at 0.08 sfreq
    fast = _ar2_epochs(rng, n_epochs, n_chans, n_times, 0.30)
    X = mixing @ np.concatenate([slow, fast])
    y = np.repeat([0, 1], n_epochs)
    # planted: same spatial covariance (unit-variance sources, same mixing) ...
    spatial = AugmentedCovariance().fit_transform(X)
    gap = np.abs(spatial[y == 0].mean(0) - spatial[y == 1].mean(0)).max()
    assert gap < 0.05 * np.abs(mixing @ mixing.T).max()

    pipe = Pipeline([("acm", AugmentedCovariance()), ("ts", TangentSpace()), ("svc", SVC())])
    grid = GridSearchCV(pipe, param_grid={"acm__order": [1, 2], "acm__lag": [1, 2]},
                        cv=StratifiedKFold(3, shuffle=True, random_state=0))
    grid.fit(X, y)
    scores = {(p["acm__order"], p["acm__lag"]): s
              for p, s in zip(grid.cv_results_["params"], grid.cv_results_["mean_test_score"],
                              strict=True)}
    assert grid.best_params_["acm__order"] == 2
    assert grid.best_score_ >= 0.95
    assert max(scores[(1, 1)], scores[(1, 2)]) <= 0.75  # ... so order 1 is near chance
