"""Helpers shared by test modules: windows at cues, edited decoder files, padded trials."""

from __future__ import annotations

import hashlib
import json
import zipfile

import mne
import numpy as np


def cue_windows(dataset, decoder, subject: int) -> tuple[np.ndarray, np.ndarray]:
    """Return unfiltered windows (volts) cut at each cue of ``subject``, and their labels.

    Windows start ``decoder.tmin`` after the cue and hold ``decoder.n_times`` samples of the
    decoder's channels; cues of classes the decoder does not know, and windows that would run
    past the end of their run, are skipped.
    """
    windows, labels = [], []
    start = int(round(decoder.tmin * decoder.sfreq))
    for runs in dataset.get_data(subjects=[subject])[subject].values():
        for raw in runs.values():
            events, event_id = mne.events_from_annotations(raw, verbose=False)
            names = {v: k for k, v in event_id.items()}
            data = raw.get_data(picks=decoder.ch_names)
            for onset, _, code in events:
                stop = onset + start + decoder.n_times
                if names[code] in decoder.classes and stop <= data.shape[1]:
                    windows.append(data[:, onset + start:stop])
                    labels.append(names[code])
    return np.stack(windows), np.array(labels)


def rewrite_decoder_file(src, out, manifest_edit=None, payload_edit=None, *, rehash=False):
    """Copy a decoder file, editing its manifest and/or payload.

    With ``rehash`` both checksums are recomputed after the edit, as anyone can: only a
    signature can then tell the file was changed.
    """
    from bci.models._decoder_io import file_digest

    with zipfile.ZipFile(src) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        name = manifest["payload"]
        payload = zf.read(name)
    if manifest_edit:
        manifest_edit(manifest)
    if payload_edit:
        payload = payload_edit(payload)
    if rehash:
        manifest["payload_sha256"] = hashlib.sha256(payload).hexdigest()
        manifest["sha256"] = file_digest(manifest, payload)
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr(name, payload)
    return out


def padded_trials(n_trials: int, seed: int):
    """Return trials of 8-30 steps, zero-padded to 30, with targets and masks.

    Target 2 x0 - x1 + 0.5 on real steps and 100 on the padding, so a loss that counted padded
    steps could not learn the map.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_trials, 2, 30)).astype(np.float32)
    lengths = rng.integers(8, 31, n_trials)
    mask = np.arange(30)[None] < lengths[:, None]
    X[~np.broadcast_to(mask[:, None], X.shape)] = 0.0
    y = np.where(mask, 2 * X[:, 0] - X[:, 1] + 0.5, 100.0)[:, None].astype(np.float32)
    return X, y, mask


def cut_windows(raw, tmin: float, n_times: int) -> tuple[np.ndarray, np.ndarray]:
    """Return windows of ``n_times`` samples starting ``tmin`` s after every annotation, labels."""
    events, event_id = mne.events_from_annotations(raw, verbose=False)
    names = {v: k for k, v in event_id.items()}
    data = raw.get_data()
    start = int(round(tmin * raw.info["sfreq"]))
    X = np.stack([data[:, onset + start:onset + start + n_times] for onset, _, _ in events])
    return X, np.array([names[code] for code in events[:, 2]])


def array_pipelines() -> list[str]:
    """Names of the registered pipelines that take arrays and are not the 'any' family."""
    from bci.pipelines.registry import get_spec, list_pipelines

    return [name for name in list_pipelines()
            if not get_spec(name).epochs_input and get_spec(name).family != "any"]

