"""NumPy export of covariance pipelines: parity with scikit-learn/pyRiemann, refusals, CLI."""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest

from bci.hw.numpy_export import SUPPORTED, export_numpy, to_numpy_pipeline
from bci.models.decoder import Decoder, load_decoder
from bci.models.numpy_runtime import NumpyPipeline
from bci.pipelines.registry import get_pipeline, get_spec
from bci.pipelines.train import calibrate
from tests._helpers import array_pipelines, cue_windows, cut_windows
from tests.conftest import requires_kalunga, requires_physionet

TOL = 1e-9


@pytest.fixture(scope="module")
def recordings():
    from bci.data import make_motor_imagery, make_ssvep

    return {"imagery": make_motor_imagery(8, n_chans=6, random_state=0),
            "ssvep": make_ssvep(4, n_chans=6, random_state=0)}


def _fitted(recordings, name, estimator=None):
    family = get_spec(name).family if estimator is None else "imagery"
    raw = recordings[family]
    filters = [(8.0, 32.0)] if family == "imagery" else [(12.0, 14.0), (16.0, 18.0),
                                                         (20.0, 22.0)]
    decoder = Decoder(estimator=estimator or get_pipeline(name, scoring="accuracy"),
                      ch_names=raw.ch_names, sfreq=raw.info["sfreq"], tmin=0.5, tmax=2.5,
                      classes=[], filters=filters, unit_factor=1e6, info={"pipeline": name})
    X, labels = cut_windows(raw, decoder.tmin, decoder.n_times)
    classes, y = np.unique(labels, return_inverse=True)
    decoder.classes = [str(c) for c in classes]
    Xp = decoder.preprocess(X)
    decoder.estimator.fit(Xp, y)
    if not hasattr(decoder.estimator, "predict_proba"):  # as `bci train` does (SVMs)
        decoder.estimator, _ = calibrate(decoder.estimator, Xp, y)
    return decoder, X, labels


def test_every_registered_array_pipeline_is_covered():
    assert {"CSP+LDA", "TS+LR", "TS+SVM", "MDM", "FgMDM", "ACM+TS+SVM", "RANK+TS+LR",
            "RANK+MDM", "SSVEP_TS+LR", "SSVEP_TS+SVM", "SSVEP_MDM"} == set(array_pipelines())


@pytest.mark.parametrize("name", array_pipelines())
def test_registered_pipelines_equal_sklearn(recordings, tmp_path, name):
    decoder, X, labels = _fitted(recordings, name)
    path = export_numpy(decoder, tmp_path / "np.bci")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["arrays.npz", "manifest.json"]
    loaded = load_decoder(path)
    assert isinstance(loaded.estimator, NumpyPipeline)
    assert (loaded.ch_names, loaded.classes, loaded.filters, loaded.unit_factor,
            loaded.sfreq, loaded.tmin, loaded.tmax, loaded.train_amplitude) == (
        decoder.ch_names, decoder.classes, decoder.filters, decoder.unit_factor,
        decoder.sfreq, decoder.tmin, decoder.tmax, decoder.train_amplitude)
    proba = loaded.predict_proba(X)
    np.testing.assert_allclose(proba, decoder.predict_proba(X), rtol=0, atol=TOL)
    assert not np.allclose(proba, proba[:1])  # the windows differ: not a constant
    np.testing.assert_array_equal(loaded.predict(X), decoder.predict(X))
    assert (loaded.predict(X) == labels).mean() >= 0.9  # the planted effect, exported
    assert loaded.info["exported"]["steps"] == loaded.estimator.steps
    assert loaded.info["pipeline"] == name


def _sklearn_variants():
    """Estimators beyond the registered ones that the runtime also computes."""
    from pyriemann.classification import MDM
    from pyriemann.estimation import Covariances
    from pyriemann.spatialfilters import CSP
    from pyriemann.tangentspace import FGDA, TangentSpace
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    return {
        "lwf+TS+LR": make_pipeline(Covariances("lwf"), TangentSpace(), LogisticRegression()),
        "scm+MDM": make_pipeline(Covariances("scm"), MDM()),
        "cov+FGDA+MDM": make_pipeline(Covariances("cov"), FGDA(), MDM()),
        "CSP(log=False)+TS+LDA": make_pipeline(Covariances("oas"), CSP(nfilter=4, log=False),
                                               TangentSpace(), LinearDiscriminantAnalysis()),
        "TS+SVC(rbf)": make_pipeline(Covariances("oas"), TangentSpace(),
                                     SVC(kernel="rbf", gamma="scale")),
        "TS+SVC(poly)": make_pipeline(Covariances("oas"), TangentSpace(),
                                      SVC(kernel="poly", degree=2, coef0=1.0)),
        "TS+SVC(sigmoid)": make_pipeline(Covariances("oas"), TangentSpace(),
                                         SVC(kernel="sigmoid", gamma=0.01)),
        "calibrated ensemble": CalibratedClassifierCV(
            make_pipeline(Covariances("oas"), TangentSpace(), SVC(kernel="linear")), cv=3),
    }


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("variant", list(_sklearn_variants()))
def test_variants_equal_sklearn(variant, n_classes):
    """Other estimators, kernels, shrinkages and two or three classes: same numbers."""
    from bci.data import make_motor_imagery

    rng = np.random.default_rng(n_classes)
    raw = make_motor_imagery(6, n_chans=5, sfreq=64.0, random_state=n_classes)
    X, labels = cut_windows(raw, 0.5, 96)
    X = X * 1e6 + 0.3 * rng.standard_normal(X.shape)
    y = np.unique(labels, return_inverse=True)[1]
    if n_classes == 3:
        y = np.arange(len(y)) % 3
    est = _sklearn_variants()[variant].fit(X, y)
    spec, arrays = to_numpy_pipeline(est, n_chans=5)
    runtime = NumpyPipeline(spec, arrays)
    np.testing.assert_array_equal(runtime.classes_, est.classes_)
    if hasattr(est, "predict_proba"):
        np.testing.assert_allclose(runtime.predict_proba(X), est.predict_proba(X), rtol=0,
                                   atol=TOL)
    if hasattr(est, "decision_function") and spec["model"]["type"] == "pipeline":
        ours = runtime._model.decision_function(X)
        np.testing.assert_allclose(ours, est.decision_function(X), rtol=0, atol=TOL)
    np.testing.assert_array_equal(runtime.predict(X), est.predict(X))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_svc_probability_is_libsvm_platt_scaling(n_classes):
    """SVC(probability=True): libsvm's sigmoid and pairwise coupling, replicated."""
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4, 50))
    y = np.arange(60) % n_classes
    X[y == 1, 0] *= 2.0
    with warnings.catch_warnings():  # deprecated in scikit-learn 1.9
        warnings.simplefilter("ignore", FutureWarning)
        est = make_pipeline(Covariances("oas"), TangentSpace(),
                            SVC(kernel="rbf", probability=True, random_state=0)).fit(X, y)
        expected = est.predict_proba(X)
    spec, arrays = to_numpy_pipeline(est, n_chans=4)
    ours = NumpyPipeline(spec, arrays).predict_proba(X)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TOL)
    assert 1e-3 < ours.min() < ours.max() < 1 - 1e-3  # calibrated, not saturated


def test_unsupported_step_is_named_with_the_supported_list(recordings, tmp_path):
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    est = Pipeline([("cov", Covariances("oas")), ("ts", TangentSpace()),
                    ("forest", RandomForestClassifier(n_estimators=3, random_state=0))])
    decoder, _, _ = _fitted(recordings, "TS+LR", est)
    with pytest.raises(TypeError, match=r"cannot express step 'forest' \(sklearn\.ensemble\."
                                        r"_forest\.RandomForestClassifier\)\. It runs: "
                                        r"CheckEpochs.*TangentSpace"):
        export_numpy(decoder, tmp_path / "x.bci")
    assert not (tmp_path / "x.bci").exists()
    for name in ("Covariances", "TangentSpace", "MDM", "FgMDM", "CSP", "SVC"):
        assert name in SUPPORTED


@pytest.mark.parametrize(("step", "match"), [
    ("cov", r"step 'cov' .*estimator='mcd'"),
    ("ts", r"step 'ts' .*map metric 'logeuclid'"),
    ("ts_update", r"step 'ts' .*tsupdate=True"),
])
def test_unsupported_settings_are_named(step, match):
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3, 40)), np.arange(20) % 2
    cov = Covariances("mcd" if step == "cov" else "oas")
    ts = TangentSpace(metric="logeuclid" if step == "ts" else "riemann",
                      tsupdate=step == "ts_update")
    est = Pipeline([("cov", cov), ("ts", ts), ("lr", LogisticRegression())]).fit(X, y)
    with pytest.raises(TypeError, match=match):
        to_numpy_pipeline(est, n_chans=3)


def test_network_decoder_points_to_onnx():
    from bci.models.classifier import DeepClassifier

    with pytest.raises(TypeError, match="It is a network: export it with `bci export "
                                        "--format onnx`"):
        to_numpy_pipeline(DeepClassifier("EEGNet"), n_chans=4)


def test_same_decoder_gives_the_same_bytes(recordings, tmp_path):
    decoder, _, _ = _fitted(recordings, "MDM")
    a = export_numpy(decoder, tmp_path / "a.bci")
    b = export_numpy(decoder, tmp_path / "b.bci")
    c = export_numpy(load_decoder(a), tmp_path / "c.bci")  # exporting an export: a copy
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb, zipfile.ZipFile(c) as zc:
        assert za.read("arrays.npz") == zb.read("arrays.npz") == zc.read("arrays.npz")
        assert za.read("manifest.json") == zb.read("manifest.json")
        assert json.loads(za.read("manifest.json")) == json.loads(zc.read("manifest.json"))


def test_bare_and_unfitted_estimators_are_named():
    from pyriemann.classification import MDM
    from sklearn.tree import DecisionTreeClassifier

    with pytest.raises(TypeError, match=r"cannot express the estimator \(sklearn\.tree\."
                                        r"_classes\.DecisionTreeClassifier\)"):
        to_numpy_pipeline(DecisionTreeClassifier(), n_chans=3)
    with pytest.raises(RuntimeError,
                       match=r"MDM is not fitted \(.*has no attribute 'classes_'\); fit it"):
        to_numpy_pipeline(MDM(), n_chans=3)


def test_cli_export_numpy(recordings, tmp_path, capsys):
    from bci.cli import main

    decoder, X, _ = _fitted(recordings, "TS+LR")
    source = decoder.save(tmp_path / "s1.bci")
    assert main(["export", "--format", "numpy", str(source), "--out", str(tmp_path / "out")]) \
        == 0
    out = capsys.readouterr().out
    path = tmp_path / "out" / "s1-numpy.bci"
    assert f"Exported TS+LR to {path}" in out
    assert "covariances -> tangent_space -> linear" in out
    np.testing.assert_allclose(load_decoder(path).predict_proba(X), decoder.predict_proba(X),
                               rtol=0, atol=TOL)


def test_cli_refuses_unexportable_decoder(recordings, tmp_path, capsys):
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    from bci.cli import main

    est = Pipeline([("cov", Covariances("oas")), ("ts", TangentSpace()),
                    ("knn", KNeighborsClassifier(3))])
    decoder, _, _ = _fitted(recordings, "TS+LR", est)
    source = decoder.save(tmp_path / "knn.bci")
    assert main(["export", "--format", "numpy", str(source), "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "cannot express step 'knn'" in err
    assert "KNeighborsClassifier" in err
    assert not list(tmp_path.glob("*-numpy.bci"))


# ---------------------------------------------------------------------------------------------
# Real data: the decoders `bci train` writes, on the staged recordings
# ---------------------------------------------------------------------------------------------
def _real_parity(tmp_path, dataset, paradigm, pipeline, subject, dataset_params=None):
    import bci
    from bci.data.loaders import get_dataset

    decoder = bci.train_decoder(dataset, paradigm, pipeline, subjects=[subject],
                                dataset_params=dataset_params)
    path = export_numpy(decoder, tmp_path / f"{pipeline}.bci")
    loaded = load_decoder(path)
    X, labels = cue_windows(get_dataset(dataset, **(dataset_params or {})), decoder, subject)
    expected = decoder.predict_proba(X)
    got = loaded.predict_proba(X)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    np.testing.assert_array_equal(loaded.predict(X), decoder.predict(X))
    return float(np.max(np.abs(got - expected))), float((loaded.predict(X) == labels).mean())


@pytest.mark.real_data
@requires_physionet
@pytest.mark.parametrize("pipeline", ["TS+LR", "MDM", "FgMDM", "CSP+LDA"])
def test_physionet_subject1_equals_sklearn(tmp_path, pipeline):
    diff, accuracy = _real_parity(tmp_path, "PhysionetMI", "LeftRightImagery", pipeline, 1,
                                  {"feet_runs": []})
    assert diff <= TOL
    assert accuracy >= 0.6  # trained on these windows' subject: well above chance


@pytest.mark.real_data
@requires_kalunga
@pytest.mark.parametrize("pipeline", ["SSVEP_TS+LR", "SSVEP_TS+SVM", "SSVEP_MDM"])
@pytest.mark.parametrize("subject", [1, 7])
def test_kalunga_equals_sklearn(tmp_path, pipeline, subject):
    diff, accuracy = _real_parity(tmp_path, "Kalunga2016", "SSVEP", pipeline, subject)
    assert diff <= TOL
    assert accuracy >= 0.5  # 4 classes: chance is 0.25


def test_export_refuses_when_parity_fails(recordings, tmp_path, monkeypatch):
    decoder, _, _ = _fitted(recordings, "TS+LR")
    proba = NumpyPipeline.predict_proba
    monkeypatch.setattr(NumpyPipeline, "predict_proba", lambda self, X: proba(self, X) + 1e-6)
    with pytest.raises(RuntimeError, match=r"differs from it by 1e-06 on random epochs "
                                           r"\(predict_proba\), over the tolerance 1e-09; the "
                                           "file was not written"):
        export_numpy(decoder, tmp_path / "x.bci")
    assert not (tmp_path / "x.bci").exists()
