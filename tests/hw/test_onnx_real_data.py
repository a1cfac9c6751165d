"""ONNX decoder files on real recordings: torch vs ONNX Runtime parity, int8 from training data."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import bci  # noqa: E402
from bci.cli import main  # noqa: E402
from bci.hw.onnx_export import export_onnx, training_epochs  # noqa: E402
from bci.models.classifier import DeepClassifier  # noqa: E402
from bci.models.decoder import load_decoder  # noqa: E402
from tests._helpers import cue_windows  # noqa: E402
from tests.conftest import requires_kalunga, requires_physionet  # noqa: E402

pytestmark = pytest.mark.real_data


def _network(model: str = "EEGNet") -> DeepClassifier:
    return DeepClassifier(model, max_epochs=3, batch_size=16, seed=0)


@requires_kalunga
def test_kalunga_parity_and_int8_on_training_windows(tmp_path, capsys):
    from moabb.datasets import Kalunga2016

    decoder = bci.train_decoder("Kalunga2016", "SSVEP", _network(), subjects=[1],
                                paradigm_params={"n_classes": 4})
    source = decoder.save(tmp_path / "kalunga.bci")
    X, labels = cue_windows(Kalunga2016(), decoder, 1)  # raw windows at the cues, volts
    assert X.shape[1:] == (8, 513)
    assert len(X) >= 60
    onnx_decoder = load_decoder(export_onnx(decoder, tmp_path / "k-onnx.bci"))
    np.testing.assert_allclose(onnx_decoder.predict_proba(X), decoder.predict_proba(X),
                               rtol=0, atol=1e-5)
    np.testing.assert_array_equal(onnx_decoder.predict(X), decoder.predict(X))
    # the training windows, as the estimator saw them, are what int8 calibrates on
    train = training_epochs(decoder)
    assert train.shape == (64, 8, 513)
    assert np.median(np.abs(train), axis=(0, 2)).tolist() == pytest.approx(
        decoder.train_amplitude, rel=1e-9)
    # `bci export --int8` loads them by default (the decoder's dataset and subjects)
    assert main(["export", "--format", "onnx", str(source), "--out", str(tmp_path), "--int8"]) == 0
    assert "int8 QDQ calibrated on 64 windows" in capsys.readouterr().out
    int8 = load_decoder(tmp_path / "kalunga-onnx-int8.bci")
    agree = np.mean(int8.predict(X) == onnx_decoder.predict(X))
    assert agree >= 0.85
    assert abs(np.mean(int8.predict(X) == labels) - np.mean(decoder.predict(X) == labels)) <= 0.1


@requires_physionet
def test_physionet_parity_64_channels(tmp_path):
    from bci.data.loaders import get_dataset

    params = {"feet_runs": []}
    decoder = bci.train_decoder("PhysionetMI", "LeftRightImagery", _network("ShallowConvNet"),
                                subjects=[1], dataset_params=params)
    X, _ = cue_windows(get_dataset("PhysionetMI", **params), decoder, 1)
    assert X.shape[1:] == (64, decoder.n_times)
    onnx_decoder = load_decoder(export_onnx(decoder, tmp_path / "p-onnx.bci"))
    np.testing.assert_allclose(onnx_decoder.predict_proba(X), decoder.predict_proba(X),
                               rtol=0, atol=1e-5)
    train = training_epochs(decoder, dataset_params=params)
    assert train.shape == (45, 64, decoder.estimator.n_times_)
    int8 = load_decoder(export_onnx(decoder, tmp_path / "p-int8.bci", int8=True,
                                    calibration=train))
    assert np.mean(int8.predict(X) == onnx_decoder.predict(X)) >= 0.8
