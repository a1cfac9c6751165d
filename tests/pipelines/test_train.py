"""train_decoder: filter-bank decoders, calibrated SVM probabilities, training amplitudes."""

from __future__ import annotations

import numpy as np
import pytest

import bci
from bci.data import SyntheticMotorImagery, SyntheticSSVEP
from bci.data.loaders import load_data
from bci.models.decoder import load_decoder
from bci.pipelines.train import calibrate, train_decoder
from tests._helpers import cue_windows


@pytest.fixture(scope="module")
def ssvep_decoder():
    dataset = SyntheticSSVEP(n_runs=1, n_trials=8)
    return dataset, train_decoder(dataset, "SSVEP", "SSVEP_TS+LR", subjects=[1])


def test_filter_bank_ssvep_decoder(ssvep_decoder, tmp_path):
    dataset, decoder = ssvep_decoder
    # SSVEP_TS+LR needs FilterBankSSVEP: one band around each stimulation frequency
    assert decoder.info["paradigm"] == "FilterBankSSVEP"
    assert decoder.filters == [(12.5, 13.5), (16.5, 17.5), (20.5, 21.5)]
    assert decoder.classes == ["13", "17", "21", "rest"]
    assert (decoder.tmin, decoder.tmax, decoder.n_times) == (1.0, 5.0, 1025)
    # preprocessing raw windows gives MOABB's filter-bank arrays' decisions
    X1, labels1 = cue_windows(dataset, decoder, 1)
    Xp = decoder.preprocess(X1)
    X_moabb, y_moabb, _ = load_data(dataset, "FilterBankSSVEP", [1])
    assert Xp.shape == X_moabb.shape == (32, 8, 1025, 3)
    np.testing.assert_array_equal(labels1, y_moabb)
    same = decoder.estimator.predict(Xp) == decoder.estimator.predict(X_moabb)
    assert same.mean() >= 0.95  # measured 1.0: the planted response is steady within a trial
    # the planted response carries over to another subject's raw windows, after a round trip
    loaded = load_decoder(decoder.save(tmp_path / "ssvep.bci"))
    assert loaded.filters == decoder.filters
    X2, labels2 = cue_windows(dataset, decoder, 2)
    np.testing.assert_array_equal(loaded.predict_proba(X2), decoder.predict_proba(X2))
    assert (loaded.predict(X2) == labels2).mean() >= 0.8  # measured 0.875, chance 0.25
    # naming the filter-bank paradigm directly gives the same decoder
    direct = train_decoder(dataset, "FilterBankSSVEP", "SSVEP_TS+LR", subjects=[1])
    assert direct.filters == decoder.filters
    np.testing.assert_allclose(direct.predict_proba(X2), decoder.predict_proba(X2))


def test_filter_bank_motor_imagery_decoder():
    dataset = SyntheticMotorImagery(n_runs=1, n_trials=12)
    estimator = bci.get_pipeline("SSVEP_TS+LR")  # bands stacked as channels: any filter bank
    decoder = train_decoder(dataset, "FilterBankLeftRightImagery", estimator, subjects=[1])
    assert decoder.filters == [(8.0, 12.0), (12.0, 16.0), (16.0, 20.0), (20.0, 24.0),
                               (24.0, 28.0), (28.0, 32.0)]
    X, labels = cue_windows(dataset, decoder, 2)
    assert decoder.preprocess(X).shape == (len(X), decoder.n_chans, decoder.n_times, 6)
    assert (decoder.predict(X) == labels).mean() >= 0.75  # measured 0.83 (24 windows)
    X_moabb, _, _ = load_data(dataset, "FilterBankLeftRightImagery", [1])
    X1, _ = cue_windows(dataset, decoder, 1)
    same = decoder.estimator.predict(decoder.preprocess(X1)) == decoder.estimator.predict(X_moabb)
    assert same.mean() >= 0.9  # measured 1.0
    with pytest.raises(ValueError, match="CSP\\+LDA takes single-band epochs .* not the 6 bands"):
        train_decoder(dataset, "FilterBankLeftRightImagery", "CSP+LDA", subjects=[1])


def test_training_amplitudes_are_the_training_arrays_medians(ssvep_decoder):
    dataset, decoder = ssvep_decoder
    X, _, _ = load_data(dataset, "FilterBankSSVEP", [1])
    expected = np.median(np.abs(X).transpose(1, 0, 2, 3).reshape(8, -1), axis=1)
    np.testing.assert_allclose(decoder.train_amplitude, expected, rtol=1e-12)
    # windows like the training ones are ~1 x the range
    X1, _ = cue_windows(dataset, decoder, 1)
    ratio = decoder.amplitude_ratio(decoder.preprocess(X1))
    assert 0.5 < np.median(ratio) < 2.0


@pytest.fixture(scope="module")
def svm_decoder():
    dataset = SyntheticMotorImagery()
    return dataset, train_decoder(dataset, "LeftRightImagery", "TS+SVM", subjects=[1])


def test_svm_decoder_has_calibrated_probabilities(svm_decoder, tmp_path):
    from sklearn.calibration import CalibratedClassifierCV

    dataset, decoder = svm_decoder
    assert isinstance(decoder.estimator, CalibratedClassifierCV)
    calibration = decoder.info["calibration"]
    assert calibration["method"] == "sigmoid"
    assert calibration["n_folds"] == 5
    assert set(calibration["params"]) == {"svc__C", "svc__kernel"}
    assert calibration["agreement"] == 1.0  # measured on the training epochs
    loaded = load_decoder(decoder.save(tmp_path / "svm.bci"))
    X, labels = cue_windows(dataset, decoder, 2)
    proba = loaded.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert ((proba >= 0) & (proba <= 1)).all()
    # the calibrated argmax is the tuned SVM's decision on nearly every window (measured 99 of
    # 100 held-out windows); the SVM is the tuned pipeline refitted on all epochs
    svm = loaded.estimator.calibrated_classifiers_[0].estimator
    assert type(svm[-1]).__name__ == "SVC"
    assert svm[-1].C == calibration["params"]["svc__C"]
    agreement = np.mean(proba.argmax(axis=1) == svm.predict(loaded.preprocess(X)))
    assert agreement >= 0.95
    assert (loaded.predict(X) == labels).mean() >= 0.85  # measured 0.93
    # not overconfident: the probability of the true class tracks correctness
    p_true = proba[np.arange(len(labels)), (labels == "right_hand").astype(int)]
    assert p_true[loaded.predict(X) == labels].mean() > 0.7
    assert 0.5 < proba.max(axis=1).mean() < 0.99


def test_threshold_policy_runs_on_an_svm_decoder(svm_decoder):
    from bci.data import make_motor_imagery
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.policies import ThresholdPolicy
    from bci.realtime.safety import SafetyGate
    from bci.realtime.sources import raw_source
    from bci.realtime.stimulation import RecordingStimulator
    from bci.realtime.stream import Stream

    _, decoder = svm_decoder
    raw = make_motor_imagery(8, n_chans=8, sfreq=128.0, random_state=7)
    stim = RecordingStimulator()
    loop = OnlineLoop(Stream(raw_source(raw, chunk_size=16), threaded=False), decoder,
                      step_s=0.5, catch_up=True, stimulator=stim,
                      policy=ThresholdPolicy("left_hand", on=0.8, off=0.5, refractory_s=1.0),
                      safety=SafetyGate(min_interval_s=1.0, max_per_minute=None,
                                        max_per_session=None))
    summary = loop.run()
    scores = np.array([d.score for d in loop.decisions])
    assert summary["decisions"] == len(loop.decisions) > 20
    assert summary["faults"] == {}
    assert np.isfinite(scores).all()
    assert summary["stimuli_fired"] == len(stim.events) >= 1
    # every stimulus followed a decision with p(left_hand) >= 0.8
    fired_at = [d.t_end for d in loop.decisions if d.score >= 0.8]
    assert len(fired_at) >= summary["stimuli_fired"]


def test_calibrate_freezes_nested_grid_searches():
    """ACM+TS+SVM searches the SVM inside the outer search: both choices are kept."""
    dataset = SyntheticMotorImagery(n_subjects=1, n_trials=10, n_chans=4, n_runs=1)
    X, y, _ = load_data(dataset, "LeftRightImagery", [1])
    y = (y == "right_hand").astype(int)
    search = bci.get_pipeline("ACM+TS+SVM", param_grid=None)
    search.set_params(param_grid=[{"acm__order": [1, 2], "acm__lag": [1]}])
    search.fit(X, y)
    calibrated, report = calibrate(search, X, y, random_state=0)
    chosen = search.best_estimator_.named_steps["svc"].best_params_
    assert report["params"] == {**search.best_params_, **{f"svc__{k}": v
                                                         for k, v in chosen.items()}}
    final = calibrated.calibrated_classifiers_[0].estimator
    assert type(final.named_steps["svc"]).__name__ == "SVC"  # no search left inside
    assert final.named_steps["svc"].C == chosen["C"]
    assert final.named_steps["acm"].order == search.best_params_["acm__order"]
    np.testing.assert_allclose(calibrated.predict_proba(X).sum(axis=1), 1.0)
    assert report["agreement"] == np.mean(calibrated.predict(X) == search.predict(X))


def test_calibrate_errors():
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.svm import SVC

    class NoScores(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.zeros(len(X), dtype=int)

    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.array([0] * 11 + [1])
    with pytest.raises(TypeError, match="neither predict_proba nor decision_function"):
        calibrate(NoScores().fit(X, y), X, y)
    with pytest.raises(ValueError, match="needs >= 2 epochs per class, got 1"):
        calibrate(SVC().fit(X, y), X, y)
    with pytest.raises(ValueError, match="SSVEP_CCA takes MNE epochs"):
        train_decoder(SyntheticSSVEP(), "SSVEP", "SSVEP_CCA", subjects=[1])


def test_microvolt_stream_stops_a_session_naming_the_unit():
    """A stream in µV given to a decoder trained in V: no decision, a clear stop reason."""
    from bci.data import make_motor_imagery
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.sources import ArraySource
    from bci.realtime.stream import Stream

    decoder = train_decoder(SyntheticMotorImagery(n_runs=1), "LeftRightImagery", "TS+LR",
                            subjects=[1])
    raw = make_motor_imagery(4, n_chans=8, sfreq=128.0, random_state=7)
    source = ArraySource(raw.get_data() * 1e6, 128.0, raw.ch_names, chunk_size=16)
    summary = OnlineLoop(Stream(source, threaded=False), decoder, step_s=0.5,
                         catch_up=True).run()
    assert summary["decisions"] == 0
    assert summary["faults"] == {"decoder_error": 5}
    assert "Microvolts given to a decoder that takes volts? Divide by 1e6" in \
        summary["stopped_reason"]


@pytest.mark.slow  # ~45 s: each process loads the data; the library path is in test_training_ddp
def test_bci_train_on_two_processes_writes_one_decoder(tmp_path):
    """The README's `bci train` on 2 CPU processes (DDP, gloo on 127.0.0.1)."""
    import subprocess
    import sys

    from tests.models._ddp_run import loopback_env

    proc = subprocess.run([sys.executable, "-m", "bci.cli", "train", "--dataset",
                           "SyntheticMotorImagery", "--subjects", "1", "--model", "EEGNet",
                           "--max-epochs", "2", "--batch-size", "8", "--threads", "1",
                           "--devices", "2", "--strategy", "ddp", "--out", "s1.bci"],
                          env=loopback_env(), capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr
    assert proc.stdout.count("Saved EEGNet decoder") == 1  # rank 1 wrote and printed nothing
    decoder = load_decoder(tmp_path / "s1.bci")
    assert decoder.info["training"]["n_epochs"] == 2
    assert [row["epoch"] for row in decoder.info["training"]["history"]] == [0, 1]
    assert (tmp_path / "s1_learning_curves.png").is_file()
