"""The scikit-learn/MOABB bridge (bci.models.classifier), network decoder files, `bci train`."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from bci.models.classifier import DeepClassifier, scale_epochs
from bci.models.decoder import Decoder, load_decoder, save_decoder
from bci.models.training import torch_threads

N_CHANS, N_TIMES, SFREQ = 4, 128, 128.0


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _planted(n_epochs=48, seed=0, scale=1.0):
    """'right' epochs carry a 10 Hz sine on channel 0; returned in ``scale`` units."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_epochs, N_CHANS, N_TIMES))
    y = np.array(["left", "right"] * (n_epochs // 2))
    X[y == "right", 0] += np.sin(2 * np.pi * 10 * np.arange(N_TIMES) / SFREQ)
    return X * scale, y


def _clf(**params):
    defaults = dict(max_epochs=3, batch_size=8, seed=0, sfreq=SFREQ)
    return DeepClassifier("EEGNet", **{**defaults, **params})


@pytest.fixture(scope="module")
def fitted():
    X, y = _planted()
    with torch_threads(1):
        clf = DeepClassifier("ShallowConvNet", max_epochs=15, batch_size=8, lr=3e-3, seed=0,
                             sfreq=SFREQ, patience=5, val_fraction=0.2).fit(X[:32], y[:32])
    return clf, X, y


def test_clone_and_params_round_trip():
    clf = _clf(model_params={"drop_prob": 0.1}, scaling="epoch")
    params = clf.get_params()
    twin = clone(clf)
    assert twin.get_params() == params
    assert twin is not clf
    assert DeepClassifier(**params).get_params() == params
    twin.set_params(lr=0.5, model="EEGNeX")
    assert twin.lr == 0.5
    assert clf.lr == 1e-3
    assert twin.model == "EEGNeX"
    # the scikit-learn checks that apply to estimators of 3-D epochs (the others feed 2-D
    # tables of a few features, far shorter than any network's receptive field)
    from sklearn.utils.estimator_checks import (
        check_get_params_invariance,
        check_no_attributes_set_in_init,
        check_parameters_default_constructible,
    )

    for check in (check_get_params_invariance, check_no_attributes_set_in_init,
                  check_parameters_default_constructible):
        check("DeepClassifier", clf)


def test_fit_predict_planted_signal(fitted):
    clf, X, y = fitted
    assert list(clf.classes_) == ["left", "right"]
    assert clf.n_features_in_ == N_CHANS
    assert clf.n_times_ == N_TIMES
    proba = clf.predict_proba(X[32:])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert clf.score(X[32:], y[32:]) >= 0.9  # held-out epochs
    assert set(clf.predict(X[32:])) <= {"left", "right"}
    assert clf.best_epoch_ is not None
    assert 1 <= clf.n_epochs_ <= 15
    assert len(clf.history_) == clf.n_epochs_
    assert "val_loss" in clf.history_[0]


def test_units_do_not_matter_with_channel_scaling():
    X, y = _planted(24)
    volts = _clf().fit(X * 1e-6, y).predict_proba(X * 1e-6)
    micro = _clf().fit(X, y).predict_proba(X)
    np.testing.assert_allclose(volts, micro, atol=1e-4)
    Xs = scale_epochs(X, "sample")
    np.testing.assert_allclose(Xs.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(Xs.std(1), 1, atol=1e-4)
    Xe = scale_epochs(X, "epoch")
    np.testing.assert_allclose(Xe.std(-1), 1, atol=1e-4)


def test_seed_gives_same_predictions():
    X, y = _planted(24)
    a = _clf(seed=3).fit(X, y).predict_proba(X)
    b = _clf(seed=3).fit(X, y).predict_proba(X)
    c = _clf(seed=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_pickle_round_trip(fitted):
    clf, X, _ = fitted
    twin = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))


def test_errors(fitted):
    clf, X, y = fitted
    with pytest.raises(ValueError, match="Unknown model 'EEGNex'. Did you mean 'EEGNeX'"):
        DeepClassifier("EEGNex").fit(X, y)
    with pytest.raises(ValueError, match="Unknown scaling"):
        _clf(scaling="zscore").fit(X, y)
    with pytest.raises(ValueError, match=r"y has a single class \('left'\): one class cannot be "
                                         r"classified, a classifier needs at least 2"):
        _clf().fit(X, np.array(["left"] * len(X)))
    with pytest.raises(ValueError, match=r"requires y to be passed, but the target y is None"):
        _clf().fit(X, None)
    labels = np.arange(len(X)) % 2.0
    labels[5] = np.nan
    with pytest.raises(ValueError, match=r"y contains 1 NaN or infinite labels, first at epoch 5"):
        _clf().fit(X, labels)
    with pytest.raises(ValueError, match="trained on n_times=128"):
        clf.predict(X[:, :, :100])
    with pytest.raises(ValueError, match="too short for EEGNeX"):
        DeepClassifier("EEGNeX", max_epochs=1).fit(X[:, :, :64], y)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _clf().predict(X)


def _decoder(clf):
    return Decoder(estimator=clf, ch_names=[f"EEG{i}" for i in range(N_CHANS)], sfreq=SFREQ,
                   tmin=0.0, tmax=(N_TIMES - 1) / SFREQ, classes=list(clf.classes_),
                   filters=[(8.0, 30.0)], unit_factor=1e6, info={"pipeline": clf.model})


def test_network_decoder_file_round_trip(fitted, tmp_path):
    clf, X, _ = fitted
    fname = save_decoder(_decoder(clf), tmp_path / "net.bci")
    with zipfile.ZipFile(fname) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "network.pt"]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format_version"] == 3
    assert manifest["payload"] == "network.pt"
    assert manifest["network"]["config"]["n_chans"] == N_CHANS
    assert manifest["network"]["model"] == "ShallowConvNet"
    loaded = load_decoder(fname)
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), clf.predict_proba(X))
    raw = X * 1e-6  # raw windows in volts, as the real-time loop gets them
    np.testing.assert_array_equal(loaded.predict_proba(raw), _decoder(clf).predict_proba(raw))
    assert loaded.estimator.get_params() == clf.get_params()

    # the real-time loop's path: torch only, Lightning is never imported
    code = ("import sys, numpy as np; from bci.models.decoder import load_decoder; "
            f"d = load_decoder({str(fname)!r}); "
            f"p = d.predict_proba(np.load({str(tmp_path / 'x.npy')!r})); "
            "print('lightning' in sys.modules, 'pytorch_lightning' in sys.modules, p.shape)")
    np.save(tmp_path / "x.npy", raw[:3])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[:2] == ["False", "False"]

    # a damaged weights file fails with the checksum error
    with zipfile.ZipFile(fname) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    parts["network.pt"] = parts["network.pt"][:-10] + b"0" * 10
    with zipfile.ZipFile(tmp_path / "bad.bci", "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    with pytest.raises(ValueError, match="damaged"):
        load_decoder(tmp_path / "bad.bci")


def test_version_1_files_still_load(tmp_path):
    import joblib
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X, y = _planted(20)
    lda = LinearDiscriminantAnalysis().fit(X.reshape(len(X), -1), (y == "right").astype(int))
    buffer = io.BytesIO()
    joblib.dump(lda, buffer)  # format 1: a joblib payload, no "payload" key
    payload = buffer.getvalue()
    manifest = {"format": "bci-decoder", "format_version": 1,
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
                "decoder": {"ch_names": ["a"], "sfreq": 1.0, "tmin": 0.0, "tmax": 0.0,
                            "classes": ["left", "right"]}}
    with zipfile.ZipFile(tmp_path / "v1.bci", "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("estimator.joblib", payload)
    with pytest.warns(UserWarning, match="its estimator is a pickle"):  # only with trust=True
        loaded = load_decoder(tmp_path / "v1.bci", trust=True)
    np.testing.assert_array_equal(loaded.estimator.coef_, lda.coef_)


def test_registered_deep_pipelines():
    from bci.pipelines.registry import (
        DEEP_SETTINGS,
        get_pipeline,
        get_spec,
        list_pipelines,
    )

    for name in ("EEGNeX", "EEGNet", "ShallowConvNet"):
        est = get_pipeline(name)
        assert isinstance(est, DeepClassifier)
        assert est.model == name
        assert est.max_epochs == DEEP_SETTINGS["max_epochs"]
        assert "SSVEP" in get_spec(name).paradigms
        assert name in list_pipelines("any")
        assert get_spec(name).family == "any"


def test_deep_pipeline_in_moabb_within_session_evaluation():
    """MOABB's WithinSessionEvaluation (through bci.benchmark) on the planted synthetic MI."""
    import bci
    from bci.data.datasets import SyntheticMotorImagery

    dataset = SyntheticMotorImagery(n_subjects=1, n_trials=12, n_chans=4, random_state=0)
    pipelines = {"ShallowConvNet": DeepClassifier("ShallowConvNet", max_epochs=12,
                                                  batch_size=8, lr=3e-3, seed=0)}
    results = bci.benchmark(dataset=dataset, paradigm="LeftRightImagery", pipelines=pipelines,
                            subjects=[1])
    assert list(results["pipeline"]) == ["ShallowConvNet"]
    assert results["samples"].iloc[0] == 48
    assert results["score"].iloc[0] > 0.75  # ROC-AUC; chance is 0.5


def test_cli_train_model_writes_decoder_and_curves(tmp_path, capsys):
    from bci.cli import main

    out = tmp_path / "eegnet.bci"
    code = main(["train", "--dataset", "SyntheticMotorImagery", "--subjects", "1",
                 "--model", "EEGNet", "--max-epochs", "2", "--batch-size", "16",
                 "--threads", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "eegnet_learning_curves.png").stat().st_size > 1000
    decoder = load_decoder(out)
    assert isinstance(decoder.estimator, DeepClassifier)
    assert decoder.info["pipeline"] == "EEGNet"
    assert decoder.info["training"]["n_epochs"] == 2
    # the network's config records the rate of the epochs it was trained on
    rate = decoder.resample or decoder.sfreq
    assert decoder.estimator.sfreq == rate
    assert decoder.estimator.model_.get_config()["sfreq"] == rate
    rng = np.random.default_rng(0)
    proba = decoder.predict_proba(rng.standard_normal((2, decoder.n_chans, decoder.n_times))
                                  * 1e-5)
    assert proba.shape == (2, len(decoder.classes))
    assert "learning curves" in capsys.readouterr().out
    assert main(["train", "--dataset", "SyntheticMotorImagery", "--model", "EEGNex",
                 "--out", str(out)]) == 2
    assert "Did you mean 'EEGNeX'" in capsys.readouterr().err


def test_torch_global_state_untouched_by_fit():
    X, y = _planted(16)
    state = torch.get_rng_state()
    _clf(max_epochs=1).fit(X, y)
    assert torch.equal(state, torch.get_rng_state())


# scikit-learn's common checks feed 2-D arrays (n_samples, n_features), read as epochs of one time
# sample (np.atleast_3d, as MNE's decoding estimators do): a network whose kernels and pools are
# one sample long takes them (min_n_times = 1). Trained 15 epochs, it separates the checks' blobs
# (accuracy 0.91-0.93 against the 0.83 required).
_TINY_EEGNET = dict(F1=4, D=2, kernel_length=1, depthwise_kernel_length=1, pool_1=1, pool_2=1,
                    drop_prob=0.0)


@parametrize_with_checks(
    [DeepClassifier("EEGNet", model_params=_TINY_EEGNET, max_epochs=15, batch_size=64, lr=1e-2,
                    weight_decay=0.0, seed=0)],
    expected_failed_checks=lambda est: {
        "check_supervised_y_2d": "y must be 1-D: a column vector (n_epochs, 1) is refused with "
                                 "a ValueError, not ravelled with a DataConversionWarning",
    })
def test_sklearn_compatible(estimator, check):
    check(estimator)
