"""Decoder files: train, save, load, predict on raw windows; clear errors."""

from __future__ import annotations

import json
import zipfile

import mne
import numpy as np
import pytest

import bci
from bci.models.decoder import FORMAT_VERSION, load_decoder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from bci.data import SyntheticMotorImagery

    dataset = SyntheticMotorImagery()
    decoder = bci.train_decoder(dataset, "LeftRightImagery", "TS+LR", subjects=[1])
    path = decoder.save(tmp_path_factory.mktemp("dec") / "ts_lr.bci")
    return dataset, decoder, path


def _raw_windows(dataset, decoder, subject):
    """Unfiltered windows cut from the continuous recordings at each cue, and their labels."""
    windows, labels = [], []
    start = int(round(decoder.tmin * decoder.sfreq))
    for runs in dataset.get_data(subjects=[subject])[subject].values():
        for raw in runs.values():
            events, event_id = mne.events_from_annotations(raw, verbose=False)
            names = {v: k for k, v in event_id.items()}
            data = raw.get_data(picks=decoder.ch_names)
            for onset, _, code in events:
                if names[code] in decoder.classes:
                    windows.append(data[:, onset + start:onset + start + decoder.n_times])
                    labels.append(names[code])
    return np.stack(windows), np.array(labels)


def test_round_trip_predicts_identically(trained):
    dataset, decoder, path = trained
    loaded = load_decoder(path)
    assert loaded.ch_names == decoder.ch_names
    assert loaded.classes == ["left_hand", "right_hand"]
    assert loaded.filters == decoder.filters == [(8.0, 32.0)]
    assert (loaded.sfreq, loaded.tmin, loaded.tmax) == (decoder.sfreq, decoder.tmin,
                                                        decoder.tmax)
    X, y = _raw_windows(dataset, decoder, subject=2)
    np.testing.assert_array_equal(loaded.predict_proba(X), decoder.predict_proba(X))
    proba = loaded.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # trained on subject 1, the planted effect carries over to subject 2's raw windows
    assert (loaded.predict(X) == y).mean() > 0.85


def test_windows_match_moabb_epochs(trained):
    """Filtering a raw window gives (nearly) the decision of MOABB's continuous filtering."""
    dataset, decoder, _ = trained
    X, _ = _raw_windows(dataset, decoder, subject=1)
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

    def rewrite(name, manifest_edit=None, payload_edit=None):
        out = tmp_path / name
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
            manifest = json.loads(src.read("manifest.json"))
            payload = src.read("estimator.joblib")
            if manifest_edit:
                manifest_edit(manifest)
            if payload_edit:
                payload = payload_edit(payload)
            dst.writestr("manifest.json", json.dumps(manifest))
            dst.writestr("estimator.joblib", payload)
        return out

    flipped = rewrite("flipped.bci", payload_edit=lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:])
    with pytest.raises(ValueError, match="is damaged: its estimator does not match"):
        load_decoder(flipped)
    newer = rewrite("newer.bci", manifest_edit=lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="Upgrade bci"):
        load_decoder(newer)
    alien = rewrite("alien.bci", manifest_edit=lambda m: m.update(format="other"))
    with pytest.raises(ValueError, match="is not a bci decoder file"):
        load_decoder(alien)


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
    X2, _ = _raw_windows(dataset, decoder, subject=2)
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
    X, _ = _raw_windows(dataset, decoder, subject=2)
    with pytest.raises(ValueError, match=match):
        decoder.predict_proba(X[:3] * scale)
    with pytest.raises(ValueError, match=match):
        decoder.predict(X[:3] * scale)


def test_unusual_amplitudes_warn_once_per_interval(trained, caplog):
    dataset, decoder, _ = trained
    X, _ = _raw_windows(dataset, decoder, subject=2)
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
    X, _ = _raw_windows(dataset, decoder, subject=2)
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
    X, _ = _raw_windows(dataset, decoder, subject=2)
    with caplog.at_level("DEBUG", logger="bci"):
        proba = old.predict_proba(X[:2] * 1e6)
    assert proba.shape == (2, 2)
    assert any("amplitude check skipped" in r.getMessage() for r in caplog.records)
