"""RANK+ pipelines (signal-subspace projection) exported to the NumPy runtime, on MEG-like data.

The trials are simulated from the real evoked templates of ``test-ave.fif.gz`` on the real
Elekta noise (``bci.data.meg.make_meg_trials``): 102 magnetometers of rank 99 (three SSP
projectors), the rank-deficient case the projection is for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bci.hw.numpy_export import export_numpy
from bci.models.decoder import Decoder, load_decoder
from bci.models.numpy_runtime import NumpyPipeline
from bci.pipelines.registry import get_pipeline, list_pipelines
from tests._helpers import cut_windows
from tests.data._bids_files import ELEKTA, EVOKED

TOL = 1e-9


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Eigendecompositions of 99 x 99 matrices: ~10x faster on one thread of a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def meg():
    if not (EVOKED.is_file() and ELEKTA.is_file()):
        pytest.skip(f"staged MEG files absent: {EVOKED}, {ELEKTA}")
    from bci.data.meg import make_meg_trials

    raw = make_meg_trials(EVOKED, ELEKTA, n_trials=6, snr=0.3, random_state=0)
    return raw.pick("mag")


@pytest.fixture(scope="module")
def held_out(meg):
    """Other trials (other seed, SNR 0.05): probabilities away from 0 and 1."""
    from bci.data.meg import make_meg_trials

    return make_meg_trials(EVOKED, ELEKTA, n_trials=6, snr=0.05, random_state=1).pick("mag")


@pytest.fixture(scope="module")
def fitted(meg, tmp_path_factory):
    """Each RANK+ pipeline fitted once and exported (Riemannian means of 99 x 99 matrices)."""
    cache = {}

    def get(name):
        if name not in cache:
            decoder, X, labels = _fitted(meg, name)
            path = export_numpy(decoder, tmp_path_factory.mktemp("rank") / "meg.bci")
            cache[name] = decoder, X, labels, path
        return cache[name]

    return get


def _fitted(raw, name):
    decoder = Decoder(estimator=get_pipeline(name), ch_names=raw.ch_names,
                      sfreq=raw.info["sfreq"], tmin=0.0, tmax=0.5, classes=[],
                      filters=[(1.0, 40.0)], unit_factor=1e15,
                      info={"pipeline": name, "ch_types": raw.get_channel_types()})
    X, labels = cut_windows(raw, decoder.tmin, decoder.n_times)
    classes, y = np.unique(labels, return_inverse=True)
    decoder.classes = [str(c) for c in classes]
    decoder.estimator.fit(decoder.preprocess(X), y)
    return decoder, X, labels


def test_rank_pipelines_are_registered_for_imagery():
    assert {"RANK+TS+LR", "RANK+MDM"} <= set(list_pipelines("imagery"))
    steps = [name for name, _ in get_pipeline("RANK+MDM").steps]
    assert steps == ["check", "rank", "covariances", "mdm"]


@pytest.mark.parametrize("name", ["RANK+TS+LR", "RANK+MDM"])
def test_rank_pipelines_export_equal_sklearn_on_meg(fitted, held_out, name):
    decoder, X, labels, path = fitted(name)
    proj = decoder.estimator.named_steps["rank"]
    assert (len(decoder.ch_names), proj.rank_) == (102, 99)  # the 3 SSP directions removed
    loaded = load_decoder(path)
    assert isinstance(loaded.estimator, NumpyPipeline)
    assert loaded.estimator.steps[:2] == ["projection", "covariances"]
    assert loaded.info["ch_types"] == ["mag"] * 102
    proba = loaded.predict_proba(X)
    np.testing.assert_allclose(proba, decoder.predict_proba(X), rtol=0, atol=TOL)
    assert not np.allclose(proba, proba[:1])
    np.testing.assert_array_equal(loaded.predict(X), decoder.predict(X))
    assert (loaded.predict(X) == labels).mean() >= 0.9  # the planted templates, 4 classes
    Xh, _ = cut_windows(held_out, decoder.tmin, decoder.n_times)
    theirs = decoder.predict_proba(Xh)
    assert ((theirs > 0.01) & (theirs < 0.99)).any()  # not saturated: the comparison bites
    np.testing.assert_allclose(loaded.predict_proba(Xh), theirs, rtol=0, atol=TOL)


def test_rank_export_runs_without_sklearn_or_pyriemann(fitted, tmp_path):
    decoder, X, _, path = fitted("RANK+TS+LR")
    np.save(tmp_path / "X.npy", X[:4])
    code = (
        "import sys, numpy as np, bci\n"
        f"d = bci.load_decoder({str(path)!r})\n"
        f"p = d.predict_proba(np.load({str(tmp_path / 'X.npy')!r}))\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, p)\n"
        "print(','.join(sorted(m for m in ('sklearn', 'pyriemann', 'skops', 'torch')"
        " if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [""]
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), decoder.predict_proba(X[:4]),
                               rtol=0, atol=TOL)


def test_damaged_projection_filters_are_refused(fitted):
    exported = load_decoder(fitted("RANK+MDM")[3]).estimator
    arrays = dict(exported.arrays)
    key = exported.spec["model"]["steps"][0]["arrays"]["filters"]
    arrays[key] = arrays[key][:, :50]
    with pytest.raises(ValueError, match=r"projection.*filters.*expected \(rank, 102\)"):
        NumpyPipeline(exported.spec, arrays)


def test_cli_train_and_export_rank_decoder_on_bids_meg(meg, tmp_path, capsys):
    """`bci train --pipeline RANK+MDM` on a BIDS MEG folder, then `bci export --format numpy`."""
    pytest.importorskip("mne_bids")
    from bci.cli import main
    from tests.data._bids_files import write_raw

    root = tmp_path / "meg_bids"
    write_raw(meg.copy(), root, subject="01", task="meg", datatype="meg", fmt="FIF")
    data = ["--dataset", "BIDS", "--dataset-param", f"root={root}", "--dataset-param",
            "ch_types=mag", "--dataset-param", "interval=(0.0, 0.5)", "--paradigm",
            "MotorImagery", "--paradigm-param", "n_classes=4", "--paradigm-param", "fmin=1",
            "--paradigm-param", "fmax=40"]
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    shown = " ".join(readme.replace("\\\n", " ").split())
    assert ("bci train --dataset BIDS --dataset-param root=/data/my_meg_bids "
            + " ".join(f'"{a}"' if " " in a else a for a in data[4:])
            + " --pipeline RANK+MDM --out meg.bci") in shown
    assert "bci export --format numpy meg.bci --out exported/" in shown
    dec = tmp_path / "meg.bci"
    assert main(["train", *data, "--pipeline", "RANK+MDM", "--subjects", "1", "--out",
                 str(dec)]) == 0
    assert main(["export", "--format", "numpy", str(dec), "--out", str(tmp_path / "x")]) == 0
    assert "projection -> covariances -> mdm" in capsys.readouterr().out
    decoder = load_decoder(dec)
    exported = load_decoder(tmp_path / "x" / "meg-numpy.bci")
    assert exported.info["ch_types"] == ["mag"] * 102
    assert decoder.estimator.named_steps["rank"].rank_ == 99
    X = np.random.default_rng(3).standard_normal((3, 102, decoder.n_times)) * 1e-13
    np.testing.assert_allclose(exported.predict_proba(X), decoder.predict_proba(X), rtol=0,
                               atol=TOL)
