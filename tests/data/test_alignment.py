"""Euclidean alignment: identity mean covariance, equivalence to covariance re-centering."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from bci.data.alignment import EuclideanAlignment

pytestmark = pytest.mark.filterwarnings("error")


def _domain(rng, n_epochs=30, n_chans=4, n_times=150, scale=1.0):
    """Trials of one 'subject': white sources through a subject-specific mixing matrix."""
    mixing = scale * (np.eye(n_chans) + 0.8 * rng.standard_normal((n_chans, n_chans)))
    return mixing @ rng.standard_normal((n_epochs, n_chans, n_times))


def _scm(X):
    """Non-centred trial covariances X X^T / n_times, by explicit loops."""
    out = np.zeros((X.shape[0], X.shape[1], X.shape[1]))
    for i, trial in enumerate(X):
        for t in range(X.shape[2]):
            out[i] += np.outer(trial[:, t], trial[:, t])
    return out / X.shape[2]


@pytest.fixture
def X():
    return _domain(np.random.default_rng(7))


def test_mean_covariance_is_identity(X):
    X_before = X.copy()
    ea = EuclideanAlignment()
    Xa = ea.fit_transform(X)
    assert Xa.shape == X.shape
    assert not np.shares_memory(Xa, X)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_allclose(_scm(Xa).mean(axis=0), np.eye(4), rtol=0, atol=1e-10)
    # the stored matrices: R is the mean trial covariance, R_inv_sqrt_ its symmetric inverse root
    np.testing.assert_allclose(ea.reference_, _scm(X).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(ea.R_inv_sqrt_ @ ea.reference_ @ ea.R_inv_sqrt_, np.eye(4),
                               atol=1e-10)
    np.testing.assert_allclose(ea.R_inv_sqrt_, ea.R_inv_sqrt_.T, atol=1e-12)
    assert (ea.n_features_in_, ea.n_chans_) == (4, 4)


def test_equals_covariance_recentering(X):
    """Signal-level EA then SCM == SCM then Euclidean re-centering R^-1/2 C R^-1/2."""
    from pyriemann.preprocessing import Whitening

    covs = _scm(X)
    R_inv_sqrt = EuclideanAlignment().fit(X).R_inv_sqrt_
    aligned_covs = _scm(EuclideanAlignment().fit_transform(X))
    np.testing.assert_allclose(aligned_covs, R_inv_sqrt @ covs @ R_inv_sqrt, rtol=1e-10)
    np.testing.assert_allclose(aligned_covs, Whitening(metric="euclid").fit_transform(covs),
                               rtol=1e-10, atol=1e-12)


def test_per_domain_equals_pyriemann_tlcenter():
    """One EA per subject == pyRiemann's TLCenter(metric='euclid') on their covariances."""
    from pyriemann.transfer import TLCenter, encode_domains

    rng = np.random.default_rng(3)
    X_a, X_b = _domain(rng), _domain(rng, scale=5.0)
    aligned = np.concatenate([EuclideanAlignment().fit_transform(X_a),
                              EuclideanAlignment().fit_transform(X_b)])
    covs = _scm(np.concatenate([X_a, X_b]))
    y = np.zeros(len(covs), dtype=int)
    domains = np.repeat(["a", "b"], len(X_a))
    covs_enc, y_enc = encode_domains(covs, y, domains)
    recentred = TLCenter(target_domain="", metric="euclid").fit_transform(covs_enc, y_enc)
    np.testing.assert_allclose(_scm(aligned), recentred, rtol=1e-10, atol=1e-12)


def test_removes_domain_mixing():
    """EA of A X equals EA of X up to a rotation: the aligned covariances share eigenvalues."""
    rng = np.random.default_rng(4)
    X = _domain(rng)
    shift = np.eye(4) + rng.standard_normal((4, 4))  # a different cap placement / subject
    eig = np.linalg.eigvalsh(_scm(EuclideanAlignment().fit_transform(X)))
    eig_shifted = np.linalg.eigvalsh(_scm(EuclideanAlignment().fit_transform(shift @ X)))
    np.testing.assert_allclose(eig_shifted, eig, rtol=1e-9)


def test_transform_applies_fitted_reference():
    rng = np.random.default_rng(5)
    train, test = _domain(rng), rng.standard_normal((3, 4, 40))
    ea = EuclideanAlignment().fit(train)
    expected = np.stack([ea.R_inv_sqrt_ @ trial for trial in test])
    np.testing.assert_allclose(ea.transform(test), expected, rtol=1e-12)


def test_moabb_euclidean_alignment_reference():
    """Compare with MOABB's signal-level EA, which centres each trial in time.

    With estimator='scm' it equals ours on zero-mean trials only.
    """
    from moabb.datasets.preprocessing import EuclideanAlignment as MoabbEA

    rng = np.random.default_rng(6)
    X = _domain(rng) + rng.standard_normal((30, 4, 1))  # per-trial DC offsets
    X_zero_mean = X - X.mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(EuclideanAlignment().fit_transform(X_zero_mean),
                               MoabbEA(estimator="scm").fit_transform(X_zero_mean),
                               rtol=1e-10, atol=1e-12)
    assert not np.allclose(EuclideanAlignment().fit_transform(X),
                           MoabbEA(estimator="scm").fit_transform(X), rtol=1e-3)


def test_errors():
    rng = np.random.default_rng(0)
    X = _domain(rng)
    with pytest.raises(NotFittedError):
        EuclideanAlignment().transform(X)
    bad = X.copy()
    bad[2, 1, 17] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf\), first at epoch 2, channel 1, sample 17"):
        EuclideanAlignment().fit(bad)
    with pytest.raises(ValueError, match=r"must be 3-D \(n_epochs, n_chans, n_times\), got shape "
                                         r"\(30, 4, 150, 1\)"):
        EuclideanAlignment().fit(X[..., np.newaxis])
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        EuclideanAlignment().fit(X[0, 0])
    ea = EuclideanAlignment().fit(X)
    with pytest.raises(ValueError, match=r"fit saw n_chans=4 and X of shape \(30, 3, 150\) has 3"):
        ea.transform(X[:, :3])
    average_ref = X - X.mean(axis=1, keepdims=True)  # channels sum to zero: R has rank 3
    with pytest.raises(ValueError, match=r"R .* is singular: rank 3 < n_chans=4"):
        EuclideanAlignment().fit(average_ref)


# scikit-learn's common checks feed 2-D X (n_samples, n_features), read through np.atleast_3d
# as (n_samples, n_chans=n_features, n_times=1) like MNE's decoding estimators. EA is well
# defined there (R = mean of x x^T over samples, full rank for the checks' data; a single
# sample gives a singular R, rejected with a message naming n_samples=1 as check_fit2d_1sample
# expects), so every check runs and none is expected to fail.
@parametrize_with_checks([EuclideanAlignment()])
def test_sklearn_compatible(estimator, check):
    check(estimator)
