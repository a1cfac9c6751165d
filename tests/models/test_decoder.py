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
