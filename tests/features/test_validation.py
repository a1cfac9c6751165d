"""CheckEpochs: the validation step of the registered pipelines."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from bci.features.validation import CheckEpochs

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture
def X():
    return np.random.default_rng(0).standard_normal((6, 4, 50))


def test_passes_epochs_through_unchanged(X):
    before = X.copy()
    step = CheckEpochs().fit(X)
    assert (step.n_chans_, step.n_features_in_) == (4, 4)
    out = step.transform(X)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, X)
    np.testing.assert_array_equal(X, before)  # never modified
    as_int = step.transform(np.arange(24, dtype=np.int16).reshape(1, 4, 6))
    assert as_int.dtype == np.float64
    np.testing.assert_array_equal(as_int.ravel(), np.arange(24))
    np.testing.assert_array_equal(step.transform(X[2]), X[2:3])  # one epoch (n_chans, n_times)
    assert step.transform(X[:, :, :7]).shape == (6, 4, 7)  # other lengths are fine


def test_errors_name_the_problem(X):
    with pytest.raises(NotFittedError):
        CheckEpochs().transform(X)
    with pytest.raises(ValueError, match=r"^X must be 3-D \(n_epochs, n_chans, n_times\), got "
                                         r"shape \(6, 50\)\.$"):
        CheckEpochs().fit(X[:, 0])
    step = CheckEpochs().fit(X)
    with pytest.raises(ValueError, match=r"^X has 3 channels, expected n_chans=4; pick and order "
                                         r"the channels"):
        step.transform(X[:, :3])
    with pytest.raises(ValueError, match=r"must be 3-D \(n_epochs, n_chans, n_times\), got shape "
                                         r"\(6, 50\)"):
        step.transform(X[:, 0])
    bad = X.copy()
    bad[3, 1, 20] = np.inf
    with pytest.raises(ValueError, match=r"1 non-finite values \(NaN/inf\), first at epoch 3, "
                                         r"channel 1, sample 20"):
        step.transform(bad)
    with pytest.raises(ValueError, match=r"first at epoch 3, channel 1, sample 20"):
        CheckEpochs().fit(bad)
    with pytest.raises(TypeError, match=r"^allow_2d must be True or False, got int \(1\)\.$"):
        CheckEpochs(allow_2d=1).fit(X)


def test_allow_2d_reads_epochs_of_one_sample(X):
    step = CheckEpochs(allow_2d=True).fit(X[:, :, 0])
    assert step.n_chans_ == 4
    out = step.transform(X[:, :, 5])
    assert out.shape == (6, 4, 1)
    np.testing.assert_array_equal(out[:, :, 0], X[:, :, 5])
    np.testing.assert_array_equal(step.transform(X), X)  # 3-D epochs still work
    with pytest.raises(ValueError, match=r"X has 3 features, but CheckEpochs is expecting 4 "
                                         r"features as input"):
        step.transform(X[:, :3, 0])


def test_clone_and_pickle(X):
    step = CheckEpochs(allow_2d=True)
    twin = clone(step)
    assert twin is not step
    assert twin.get_params() == {"allow_2d": True}
    fitted = pickle.loads(pickle.dumps(CheckEpochs().fit(X)))
    np.testing.assert_array_equal(fitted.transform(X), X)


# scikit-learn's common checks feed 2-D arrays (n_samples, n_features). CheckEpochs(allow_2d=True)
# reads them as epochs of one sample, like MNE's decoding estimators, and passes every check.
# The default refuses 2-D arrays by design (before a covariance estimator they are a lost axis,
# see the test above); the checks that fit or transform 2-D data are expected to fail on it, and
# every other check (clone, params, repr, tags, not-fitted errors...) runs on it too.
_REFUSES_2D = ("CheckEpochs() refuses 2-D arrays by design (allow_2d=False): the check fits or "
               "transforms 2-D data; it passes on CheckEpochs(allow_2d=True)")
_FEEDS_2D = [
    "check_complex_data", "check_dict_unchanged", "check_dont_overwrite_parameters",
    "check_dtype_object", "check_estimator_sparse_array", "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag", "check_estimators_dtypes",
    "check_estimators_empty_data_messages", "check_estimators_fit_returns_self",
    "check_estimators_nan_inf", "check_estimators_overwrite_params", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_fit_score_takes_y", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in", "check_n_features_in_after_fitting",
    "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input", "check_transformer_data_not_an_array",
    "check_transformer_general", "check_transformer_preserve_dtypes",
]


def _expected_failed(estimator):
    return {} if estimator.allow_2d else dict.fromkeys(_FEEDS_2D, _REFUSES_2D)


@parametrize_with_checks([CheckEpochs(allow_2d=True), CheckEpochs()],
                         expected_failed_checks=_expected_failed)
def test_sklearn_compatible(estimator, check):
    check(estimator)
