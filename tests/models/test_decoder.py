"""Decoder files: train, save, load, predict on raw windows; clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pkgutil
import zipfile

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

import bci
from bci.models.decoder import FORMAT_VERSION, Decoder, load_decoder
from tests._helpers import array_pipelines, cue_windows, cut_windows, rewrite_decoder_file


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from bci.data import SyntheticMotorImagery

    dataset = SyntheticMotorImagery()
    decoder = bci.train_decoder(dataset, "LeftRightImagery", "TS+LR", subjects=[1])
    path = decoder.save(tmp_path_factory.mktemp("dec") / "ts_lr.bci")
    return dataset, decoder, path


def test_round_trip_predicts_identically(trained):
    dataset, decoder, path = trained
    loaded = load_decoder(path)
    assert loaded.ch_names == decoder.ch_names
    assert loaded.classes == ["left_hand", "right_hand"]
    assert loaded.filters == decoder.filters == [(8.0, 32.0)]
    assert (loaded.sfreq, loaded.tmin, loaded.tmax) == (decoder.sfreq, decoder.tmin,
                                                        decoder.tmax)
    X, y = cue_windows(dataset, decoder, subject=2)
    np.testing.assert_array_equal(loaded.predict_proba(X), decoder.predict_proba(X))
    proba = loaded.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # trained on subject 1, the planted effect carries over to subject 2's raw windows
    assert (loaded.predict(X) == y).mean() > 0.85


def test_windows_match_moabb_epochs(trained):
    """Filtering a raw window gives (nearly) the decision of MOABB's continuous filtering."""
    dataset, decoder, _ = trained
    X, _ = cue_windows(dataset, decoder, subject=1)
    from moabb.paradigms import LeftRightImagery

    X_moabb, _, _ = LeftRightImagery().get_data(dataset, subjects=[1])
    ours = decoder.estimator.predict(decoder.preprocess(X))
    theirs = decoder.estimator.predict(X_moabb)
    assert (ours == theirs).mean() > 0.9


def test_input_errors(trained):
    _, decoder, _ = trained
    good = np.zeros((2, decoder.n_chans, decoder.n_times))
    with pytest.raises(ValueError, match=f"expected n_times={decoder.n_times}"):
        decoder.predict(good[..., :-1])
    with pytest.raises(ValueError, match=f"expected n_chans={decoder.n_chans}"):
        decoder.predict(good[:, :-1])
    bad = good.copy()
    bad[1, 3, 7] = np.nan
    with pytest.raises(ValueError, match="first at epoch 1, channel 3, sample 7"):
        decoder.predict(bad)
    with pytest.raises(ValueError, match="lacks 1 of the decoder's channels"):
        decoder.pick_channels(good[0, 1:], decoder.ch_names[1:])
    shuffled = decoder.ch_names[::-1]
    picked = decoder.pick_channels(good[0][::-1] + np.arange(decoder.n_chans)[:, None],
                                   shuffled)
    assert picked.shape == good[0].shape


def test_damaged_and_incompatible_files(trained, tmp_path):
    _, _, path = trained
    with pytest.raises(FileNotFoundError, match="No decoder file"):
        load_decoder(tmp_path / "nope.bci")
    truncated = tmp_path / "truncated.bci"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="not a bci decoder file or is damaged"):
        load_decoder(truncated)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["estimator.skops", "manifest.json"]
        assert json.loads(zf.read("manifest.json"))["format_version"] == FORMAT_VERSION == 3

    def flip(b):
        return b[:100] + bytes([b[100] ^ 1]) + b[101:]

    flipped = rewrite_decoder_file(path, tmp_path / "flipped.bci", payload_edit=flip)
    with pytest.raises(ValueError, match=r"is damaged: its payload \(estimator.skops\) does not"):
        load_decoder(flipped)
    newer = rewrite_decoder_file(path, tmp_path / "newer.bci",
                     lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="reads format <= 3. Upgrade bci"):
        load_decoder(newer)
    alien = rewrite_decoder_file(path, tmp_path / "alien.bci", lambda m: m.update(format="other"))
    with pytest.raises(ValueError, match="is not a bci decoder file"):
        load_decoder(alien)
    malformed = rewrite_decoder_file(path, tmp_path / "malformed.bci",
                         lambda m: m["decoder"].update(sfreq=-1.0), rehash=True)
    with pytest.raises(ValueError, match="decoder entry is malformed.*sfreq"):
        load_decoder(malformed)


@pytest.mark.parametrize(("field", "edit"), [
    ("classes", lambda d: d.update(classes=d["classes"][::-1])),
    ("ch_names", lambda d: d.update(ch_names=d["ch_names"][::-1])),
    ("unit_factor", lambda d: d.update(unit_factor=d["unit_factor"] * 1e-6)),
    ("filters", lambda d: d.update(filters=[[1.0, 4.0]])),
    ("tmin", lambda d: d.update(tmin=d["tmin"] + 0.5, tmax=d["tmax"] + 0.5)),
    ("sfreq", lambda d: d.update(sfreq=2 * d["sfreq"])),
    ("resample", lambda d: d.update(resample=64.0)),
    ("info", lambda d: d["info"].update(subjects=[9])),
])
def test_editing_the_manifest_is_refused(trained, tmp_path, field, edit):
    """Any edit of the conventions is caught by the digest of manifest and payload."""
    _, _, path = trained
    edited = rewrite_decoder_file(path, tmp_path / f"{field}.bci", lambda m: edit(m["decoder"]))
    with zipfile.ZipFile(edited) as zf:  # the payload and its own checksum are untouched
        manifest = json.loads(zf.read("manifest.json"))
        assert hashlib.sha256(zf.read("estimator.skops")).hexdigest() == \
            manifest["payload_sha256"]
    with zipfile.ZipFile(path) as zf:
        assert manifest["decoder"] != json.loads(zf.read("manifest.json"))["decoder"]
    with pytest.raises(ValueError, match="was edited after it was saved: its manifest"):
        load_decoder(edited)


def test_reversed_classes_would_decode_wrong(trained, tmp_path):
    """Why the manifest is hashed: reversed classes flip every decision (0.98 -> 0.02 before)."""
    dataset, decoder, path = trained
    X, y = cue_windows(dataset, decoder, subject=2)
    reversed_ = dataclasses.replace(decoder, classes=decoder.classes[::-1])
    assert (decoder.predict(X) == y).mean() > 0.85
    assert (reversed_.predict(X) == y).mean() < 0.15  # what a silently edited file would do
    edited = rewrite_decoder_file(path, tmp_path / "rev.bci",
                      lambda m: m["decoder"].update(classes=m["decoder"]["classes"][::-1]))
    with pytest.raises(ValueError, match="was edited after it was saved"):
        load_decoder(edited)


# ---------------------------------------------------------------------------------------------
# every registered array pipeline through a decoder file (skops, trusted types only)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recordings():
    from bci.data import make_motor_imagery, make_ssvep

    return {"imagery": make_motor_imagery(8, n_chans=6, random_state=0),
            "ssvep": make_ssvep(4, n_chans=6, random_state=0)}


def test_array_pipelines_listed():
    """The round-trip test below covers every registered array pipeline, these included."""
    assert {"CSP+LDA", "TS+LR", "TS+SVM", "MDM", "FgMDM", "ACM+TS+SVM", "SSVEP_TS+LR",
            "SSVEP_TS+SVM", "SSVEP_MDM"} <= set(array_pipelines())


@pytest.mark.parametrize("name", array_pipelines())
def test_every_registered_array_pipeline_round_trips(recordings, tmp_path, name):
    from bci.pipelines.registry import get_pipeline, get_spec

    family = get_spec(name).family
    raw = recordings[family]
    filters = [(8.0, 32.0)] if family == "imagery" else [(12.0, 14.0), (16.0, 18.0),
                                                         (20.0, 22.0)]
    decoder = Decoder(estimator=get_pipeline(name, scoring="accuracy"), ch_names=raw.ch_names,
                      sfreq=raw.info["sfreq"], tmin=0.5, tmax=2.5, classes=[],
                      filters=filters, unit_factor=1e6, info={"pipeline": name})
    X, labels = cut_windows(raw, decoder.tmin, decoder.n_times)
    classes, y = np.unique(labels, return_inverse=True)
    decoder.classes = [str(c) for c in classes]
    decoder.estimator.fit(decoder.preprocess(X), y)
    assert (decoder.predict(X) == labels).mean() >= 0.9  # the planted effect is learnt

    path = decoder.save(tmp_path / "d.bci")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["estimator.skops", "manifest.json"]
        assert not zf.read("estimator.skops").startswith(b"\x80")  # not a pickle
    loaded = load_decoder(path)
    assert type(loaded.estimator) is type(decoder.estimator)
    np.testing.assert_array_equal(loaded.predict(X), decoder.predict(X))
    Xp = decoder.preprocess(X)
    for method in ("predict_proba", "decision_function", "transform"):
        if hasattr(decoder.estimator, method):
            np.testing.assert_array_equal(getattr(loaded.estimator, method)(Xp),
                                          getattr(decoder.estimator, method)(Xp))
    if hasattr(decoder.estimator, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), decoder.predict_proba(X))
    assert (loaded.ch_names, loaded.classes, loaded.filters, loaded.unit_factor) == \
        (decoder.ch_names, decoder.classes, decoder.filters, decoder.unit_factor)


def test_calibrated_svm_round_trips(recordings, tmp_path):
    """SVM probabilities by calibration (a likely fit for threshold policies) stay loadable."""
    from sklearn.calibration import CalibratedClassifierCV

    from bci.pipelines.registry import get_pipeline

    raw = recordings["imagery"]
    X, labels = cut_windows(raw, 0.5, 257)
    clf = CalibratedClassifierCV(get_pipeline("TS+SVM"), cv=2).fit(X * 1e6, labels == "left_hand")
    decoder = Decoder(estimator=clf, ch_names=raw.ch_names, sfreq=128.0, tmin=0.5, tmax=2.5,
                      classes=["right_hand", "left_hand"], unit_factor=1e6)
    loaded = load_decoder(decoder.save(tmp_path / "cal.bci"))
    np.testing.assert_array_equal(loaded.predict_proba(X), decoder.predict_proba(X))


def test_trusted_types_name_real_types():
    from bci.models.decoder import TRUSTED_TYPES

    for name in TRUSTED_TYPES:
        obj = pkgutil.resolve_name(name)
        assert f"{obj.__module__}.{obj.__qualname__}" == name
    assert len(TRUSTED_TYPES) == len(set(TRUSTED_TYPES)) == 19  # + SubspaceProjection


class _Doubler(TransformerMixin, BaseEstimator):
    """A transformer bci does not know (so its type is not trusted)."""

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def transform(self, X):
        return 2 * np.asarray(X)


def test_untrusted_types_are_refused_by_name(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), np.arange(20) % 2
    est = make_pipeline(_Doubler(), LogisticRegression()).fit(X, y)
    decoder = Decoder(estimator=est, ch_names=["a", "b", "c"], sfreq=1.0, tmin=0.0, tmax=0.0,
                      classes=["x", "y"])
    name = f"{__name__}._Doubler"
    with pytest.warns(UserWarning, match=f"loading the file will need.*{name}"):
        path = decoder.save(tmp_path / "custom.bci")
    with pytest.raises(ValueError, match=rf"holds types that bci does not trust.*{name}.*"
                                         r"trusted_types="):
        load_decoder(path)
    with pytest.raises(TypeError, match="trusted_types must be a sequence"):
        load_decoder(path, trusted_types=name)
    loaded = load_decoder(path, trusted_types=[name])
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), est.predict_proba(X))


# --- amplitude plausibility: unit mistakes, integers, empty batches -------------------------
def test_training_amplitudes_recorded_and_kept(trained):
    from bci.data.loaders import load_data

    dataset, decoder, path = trained
    X, _, _ = load_data(dataset, "LeftRightImagery", [1])  # µV, MOABB's 8-32 Hz band
    expected = np.median(np.abs(X).transpose(1, 0, 2).reshape(X.shape[1], -1), axis=1)
    np.testing.assert_allclose(decoder.train_amplitude, expected, rtol=1e-12)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    np.testing.assert_allclose(manifest["decoder"]["train_amplitude"], expected, rtol=1e-12)
    assert load_decoder(path).train_amplitude == decoder.train_amplitude
    # windows of another subject in volts are ~1 x the training range
    X2, _ = cue_windows(dataset, decoder, subject=2)
    ratio = decoder.amplitude_ratio(decoder.preprocess(X2))
    assert 0.5 < ratio.min() <= ratio.max() < 2.0


@pytest.mark.parametrize(("scale", "match"), [
    (1e6, r"~1\.\d+e\+06 x the decoder's training range .* Microvolts given to a decoder "
          r"that takes volts\? Divide by 1e6"),
    (1e3, r"~1\.\d+e\+03 x .* Millivolts given to a decoder that takes volts\? Divide by 1e3"),
    (1e-6, r"~9\.\d+e-07 x .* Volts divided by 1e6 .* Multiply by 1e6"),
    (0.0, r"0 x \(a flat signal\) .* Is the amplifier connected"),
])
def test_implausible_units_are_refused(trained, scale, match):
    dataset, decoder, _ = trained
    X, _ = cue_windows(dataset, decoder, subject=2)
    with pytest.raises(ValueError, match=match):
        decoder.predict_proba(X[:3] * scale)
    with pytest.raises(ValueError, match=match):
        decoder.predict(X[:3] * scale)


def test_unusual_amplitudes_warn_once_per_interval(trained, caplog):
    dataset, decoder, _ = trained
    X, _ = cue_windows(dataset, decoder, subject=2)
    fresh = load_decoder(trained[2])
    with caplog.at_level("WARNING", logger="bci"):
        fresh.predict_proba(X[:2] * 20)  # 20 x: a loose electrode, not a unit
        fresh.predict_proba(X[:2] * 20)  # within AMPLITUDE_WARN_EVERY_S: silent
        fresh.predict_proba(X[:2])  # plausible: silent
    warnings = [r for r in caplog.records if "training range" in r.getMessage()]
    assert len(warnings) == 1
    assert "~19.3 x the decoder's training range" in warnings[0].getMessage()


def test_integer_and_empty_batches(trained):
    dataset, decoder, _ = trained
    X, _ = cue_windows(dataset, decoder, subject=2)
    counts = np.round(X[:2] / 0.5e-6).astype(np.int16)  # raw ADC counts
    with pytest.raises(TypeError, match="windows are int16 numbers, but the decoder takes "
                                        "floating-point volts"):
        decoder.predict_proba(counts)
    with pytest.raises(TypeError, match="bool numbers"):
        decoder.predict(X[:2] > 0)
    empty = np.zeros((0, decoder.n_chans, decoder.n_times))
    with pytest.raises(ValueError, match=r"X holds no window \(shape \(0, 8, 513\)\)"):
        decoder.predict_proba(empty)


def test_decoders_without_training_amplitudes_are_not_checked(trained, caplog):
    import dataclasses

    dataset, decoder, _ = trained
    old = dataclasses.replace(decoder, train_amplitude=None)  # as a file from before
    X, _ = cue_windows(dataset, decoder, subject=2)
    with caplog.at_level("DEBUG", logger="bci"):
        proba = old.predict_proba(X[:2] * 1e6)
    assert proba.shape == (2, 2)
    assert any("amplitude check skipped" in r.getMessage() for r in caplog.records)
