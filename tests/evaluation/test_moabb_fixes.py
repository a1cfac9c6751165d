"""bci.evaluation.moabb_fixes: MOABB evaluations see every filter band; scores equal direct CV.

MOABB 1.3-1.7.2 evaluations hand a filter-bank paradigm's pipelines only its first band (see the
module docstring). These tests record the number of bands a pipeline is fitted on inside each
MOABB evaluation and check the evaluation's scores against scikit-learn on the arrays of
``paradigm.get_data`` with the same folds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from moabb.datasets.fake import FakeDataset
from moabb.evaluations import (
    CrossSessionEvaluation,
    CrossSubjectEvaluation,
    WithinSessionEvaluation,
)
from moabb.paradigms import SSVEP, FilterBankSSVEP
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import StratifiedKFold, cross_val_score

from bci.evaluation.moabb_fixes import AllBandsFilterBankSSVEP, fix_paradigm
from tests.conftest import requires_kalunga

pytestmark = [
    pytest.mark.filterwarnings("ignore:Montage name 'standard_1005' is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:Creating a dataset without passing data or dtype"),
]
SEED = 42
EVALUATIONS = {"within-session": WithinSessionEvaluation,
               "cross-session": CrossSessionEvaluation,
               "cross-subject": CrossSubjectEvaluation}


class BandLog(BaseEstimator, TransformerMixin):
    """Identity transformer that appends ``X.shape[-1]`` (bands) to a file on every fit.

    A file, not an attribute: MOABB fits clones of the pipeline and keeps none of them.
    """

    def __init__(self, path=None):
        self.path = path

    def fit(self, X, y=None):
        with open(self.path, "a") as f:
            f.write(f"{X.shape[-1]}\n")
        return self

    def transform(self, X):
        return X

    def bands_seen(self) -> set[int]:
        return {int(line) for line in Path(self.path).read_text().split()}


def _ts_lr(log_path=None):
    """MOABB's SSVEP TS+LR (pipelines/TSLR-SSVEP.yml), behind a BandLog."""
    from moabb.pipelines import ExtendedSSVEPSignal
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    steps = [ExtendedSSVEPSignal(), Covariances(estimator="oas"),
             TangentSpace(metric="riemann"), LogisticRegression(C=1.0)]
    return make_pipeline(*([BandLog(str(log_path))] if log_path else []), *steps)


def _fake_ssvep():
    """3 stimulation frequencies, 2 subjects x 2 sessions x 1 run of 30 trials (3 EEG channels)."""
    return FakeDataset(event_list=["13", "17", "21"], paradigm="ssvep", n_subjects=2,
                       n_sessions=2, n_runs=1, duration=100, n_events=30, seed=SEED)


def _evaluate(cls, paradigm, dataset, tmp_path, log_path):
    ev = cls(paradigm=paradigm, datasets=[dataset], overwrite=True,
             hdf5_path=str(tmp_path / "moabb"), random_state=SEED)
    res = ev.process({"TS+LR": _ts_lr(log_path)})
    return {(int(r.subject), str(r.session)): r.score for r in res.itertuples()}


def _as_stored(score: float) -> float:
    """Round a score as MOABB returns it: its results table is an HDF5 array of float32.

    (``moabb/analysis/results.py``, ``create_dataset("data", ...)`` without a dtype), so
    equality to float32 precision is the closest MOABB's scores can match a float64 one.
    """
    return float(np.float32(score))


def _direct_scores(kind, X, y, meta):
    """Return the folds of each MOABB evaluation, with scikit-learn on ``paradigm.get_data``."""
    subject, session = meta.subject.to_numpy(), meta.session.to_numpy()
    out = {}
    for s in np.unique(subject):
        for sess in np.unique(session[subject == s]):
            test = (subject == s) & (session == sess)
            if kind == "within-session":
                cv = StratifiedKFold(5, shuffle=True, random_state=SEED)
                out[int(s), str(sess)] = cross_val_score(_ts_lr(), X[test], y[test], cv=cv).mean()
                continue
            train = (subject == s) & (session != sess) if kind == "cross-session" else subject != s
            out[int(s), str(sess)] = _ts_lr().fit(X[train], y[train]).score(X[test], y[test])
    return out


@pytest.mark.parametrize("kind", list(EVALUATIONS))
def test_evaluations_see_all_bands_and_match_direct_cv(kind, tmp_path):
    dataset, paradigm = _fake_ssvep(), FilterBankSSVEP(n_classes=3)
    fixed = fix_paradigm(paradigm, dataset)
    assert isinstance(fixed, AllBandsFilterBankSSVEP)
    log = tmp_path / "bands.txt"
    scores = _evaluate(EVALUATIONS[kind], fixed, dataset, tmp_path, log)

    assert BandLog(str(log)).bands_seen() == {3}  # 12.5-13.5, 16.5-17.5, 20.5-21.5 Hz
    X, y, meta = FilterBankSSVEP(n_classes=3).get_data(dataset)
    assert X.shape == (120, 3, 385, 3)
    expected = _direct_scores(kind, X, y, meta)
    assert scores.keys() == expected.keys()
    assert len(scores) == 4
    for key, score in scores.items():
        assert score == _as_stored(expected[key]), key


@pytest.mark.parametrize("kind", list(EVALUATIONS))
def test_moabb_still_drops_bands(kind, tmp_path):
    """Tripwire: MOABB itself still evaluates the first band only (the defect worked around).

    Without the fix, each evaluation's scores are those of the first band (12.5-13.5 Hz) alone.
    When this fails, MOABB hands every band to the pipelines: the workaround has turned itself
    off and ``bci/evaluation/moabb_fixes.py`` (and its call in benchmarks.py) can be deleted.
    """
    dataset = _fake_ssvep()
    log = tmp_path / "bands.txt"
    scores = _evaluate(EVALUATIONS[kind], FilterBankSSVEP(n_classes=3), dataset, tmp_path, log)
    assert BandLog(str(log)).bands_seen() == {1}, (
        "MOABB now hands all filter bands to pipelines; bci.evaluation.moabb_fixes is inactive "
        "and can be removed.")
    X, y, meta = FilterBankSSVEP(n_classes=3).get_data(dataset)
    first_band = _direct_scores(kind, X[..., :1], y, meta)
    assert scores.keys() == first_band.keys()
    for key, score in scores.items():
        assert score == _as_stored(first_band[key]), key


def test_fix_paradigm_is_narrow():
    dataset = _fake_ssvep()
    single = SSVEP(n_classes=3)
    assert fix_paradigm(single, dataset) is single  # one band: nothing to fix
    one_band = FilterBankSSVEP(filters=[(12, 14)], n_classes=3)
    assert fix_paradigm(one_band, dataset) is one_band

    paradigm = FilterBankSSVEP(n_classes=3, tmax=2.0)
    fixed = fix_paradigm(paradigm, dataset)
    assert paradigm.filters is None  # the caller's paradigm is untouched
    assert fixed.filters == [[12.5, 13.5], [16.5, 17.5], [20.5, 21.5]]
    assert (fixed.n_classes, fixed.tmax) == (3, 2.0)
    assert fix_paradigm(fixed, dataset) is fixed

    # a caller's own single pipeline (here MOABB's second band) is honoured, not replaced
    own = fixed.make_process_pipelines(dataset)
    X1, *_ = fixed.get_data(dataset, subjects=[1], process_pipelines=[own[1]])
    X, *_ = fixed.get_data(dataset, subjects=[1])
    assert X1.shape[-1] == 1
    assert X.shape[-1] == 3
    np.testing.assert_array_equal(X1[..., 0], X[..., 1])

    with pytest.raises(TypeError, match="paradigm must be a MOABB paradigm, got str"):
        fix_paradigm("FilterBankSSVEP", dataset)


@pytest.mark.real_data
@requires_kalunga
def test_kalunga_within_session_matches_direct_cv(tmp_path):
    from moabb.datasets import Kalunga2016

    subjects = [1, 2, 3]
    dataset = Kalunga2016()
    dataset.subject_list = subjects
    log = tmp_path / "bands.txt"
    fixed = fix_paradigm(FilterBankSSVEP(n_classes=4), dataset)
    scores = _evaluate(WithinSessionEvaluation, fixed, dataset, tmp_path, log)

    assert BandLog(str(log)).bands_seen() == {3}
    X, y, meta = FilterBankSSVEP(n_classes=4).get_data(Kalunga2016(), subjects)
    assert X.shape == (3 * 64, 8, 513, 3)
    expected = _direct_scores("within-session", X, y, meta)
    assert scores.keys() == expected.keys() == {(1, "0"), (2, "0"), (3, "0")}
    for key, score in scores.items():
        assert score == _as_stored(expected[key]), key
    # MOABB's published SSVEP_TS+LR mean on Kalunga2016 is 70.86 %; chance is 25 %
    assert np.mean(list(scores.values())) > 0.7
