"""SubspaceProjection / estimate_rank: exact ranks, MNE's estimate, well-posed covariances."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from bci.features.rank import SubspaceProjection, estimate_rank


def _low_rank(rng, n_epochs=30, n_chans=20, rank=6, n_times=200):
    mixing = rng.standard_normal((n_chans, rank))
    return mixing, np.einsum("cr,ert->ect", mixing, rng.standard_normal((n_epochs, rank,
                                                                          n_times)))


@pytest.mark.parametrize("rank", [1, 6, 19, 20])
def test_estimate_rank_is_exact_on_low_rank_data(rank):
    _, X = _low_rank(np.random.default_rng(rank), rank=rank)
    assert estimate_rank(X) == rank


def test_estimate_rank_matches_mne_compute_rank():
    mne = pytest.importorskip("mne")
    rng = np.random.default_rng(0)
    _, X = _low_rank(rng, n_epochs=10, n_chans=16, rank=11)
    epochs = mne.EpochsArray(X * 1e-6, mne.create_info(16, 100.0, "eeg"), verbose=False)
    assert estimate_rank(X) == mne.compute_rank(epochs, verbose=False)["eeg"] == 11


def test_projection_spans_the_signal_subspace_and_makes_covariances_full_rank():
    from pyriemann.estimation import Covariances

    rng = np.random.default_rng(1)
    mixing, X = _low_rank(rng)
    X_copy = X.copy()
    proj = SubspaceProjection().fit(X)
    np.testing.assert_array_equal(X, X_copy)  # not modified
    assert proj.rank_ == 6
    W = proj.filters_
    np.testing.assert_allclose(W @ W.T, np.eye(6), atol=1e-10)
    # the projector W.T W leaves the mixing columns unchanged: it spans their space
    np.testing.assert_allclose(W.T @ W @ mixing, mixing, atol=1e-8)
    assert proj.eigenvalues_[6] < 1e-10 * proj.eigenvalues_[0]
    covs_raw = Covariances("scm").fit_transform(X)
    covs = Covariances("scm").fit_transform(proj.transform(X))
    assert np.linalg.matrix_rank(covs_raw[0]) == 6  # 20 x 20 but singular
    assert covs.shape == (30, 6, 6)
    assert np.linalg.eigvalsh(covs).min() > 1e-3 * np.linalg.eigvalsh(covs).max()


def test_fixed_rank_and_errors():
    _, X = _low_rank(np.random.default_rng(2))
    assert SubspaceProjection(rank=3).fit(X).transform(X).shape == (30, 3, 200)
    with pytest.raises(ValueError, match="rank=21 exceeds the 20 channels"):
        SubspaceProjection(rank=21).fit(X)
    with pytest.raises(ValueError, match="rank must be 'auto'"):
        SubspaceProjection(rank="full").fit(X)
    fitted = SubspaceProjection().fit(X)
    with pytest.raises(ValueError, match="X has 19 features"):
        fitted.transform(X[:, :19])


def test_rank_pipeline_decodes_rank_deficient_data():
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(3)
    n_chans, rank, n_per = 24, 8, 30
    mixing = rng.standard_normal((n_chans, rank))
    y = np.repeat([0, 1], n_per)
    src = rng.standard_normal((2 * n_per, rank, 100))
    src[y == 1, 0] *= 2.0  # class 1: source 0 twice as strong (planted)
    X = np.einsum("cr,ert->ect", mixing, src)
    pipe = make_pipeline(SubspaceProjection(), Covariances("oas"), TangentSpace(),
                         LogisticRegression())
    scores = cross_val_score(pipe, X, y, cv=5)
    assert scores.mean() > 0.9


@parametrize_with_checks([SubspaceProjection(), SubspaceProjection(rank=1)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
