"""One decoder file, three ways: offline, pseudo-online and live over loopback LSL.

`bci play` streams a recording, `bci stream` decodes it live with a decoder file and records
every decision (its window's last sample and probabilities). The recorded samples are found in
the file, and the very same windows are decoded offline (``Decoder.predict_proba``) and
pseudo-online (:func:`bci.realtime.trial_replay.replay_trials`, a window ending on each
"cue"): the decisions must agree window for window.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bci.cli import main
from bci.models.decoder import load_decoder
from bci.realtime.recording import read_events, read_signal
from bci.realtime.trial_replay import replay_trials
from tests.realtime._helpers import playing

pytest.importorskip("pylsl")


def _offset(recorded: np.ndarray, signal: np.ndarray) -> int:
    """Sample of ``signal`` where ``recorded`` (a contiguous stretch of it) starts."""
    n = min(64, recorded.shape[1])
    for o in np.flatnonzero(signal[0] == recorded[0, 0]):
        if np.array_equal(signal[:, o:o + n], recorded[:, :n]):
            return int(o)
    raise AssertionError("the recorded samples are not a stretch of the played file")


def test_offline_pseudo_online_and_live_decide_alike(tmp_path, mi_decoder, mi_recording,
                                                     capsys):
    fif = tmp_path / "mi_raw.fif"
    mi_recording.save(fif, verbose=False)
    decoder_file = mi_decoder.save(tmp_path / "mi.bci")
    name = f"bci-po-{os.getpid()}"
    with playing(fif, name, "--duration-s", "30"):
        record = tmp_path / "session"
        code = main(["stream", "--source", name, "--decoder", str(decoder_file),
                     "--stimulator", "none", "--record", str(record), "--duration-s", "4",
                     "--step-s", "0.1", "--timeout-s", "20"])
    assert code == 0, capsys.readouterr().out
    decoder = load_decoder(decoder_file)  # the one decoder file, for all three
    recorded, _, _ = read_signal(record)
    # what the player sent: the file's samples as float32 (MNE saves single precision)
    from mne.io import read_raw_fif

    signal = read_raw_fif(fif, preload=True, verbose=False).get_data(picks=decoder.ch_names)
    offset = _offset(recorded.astype(np.float64), signal)
    live = [e for e in read_events(record) if e["kind"] == "decision"]
    assert len(live) >= 5
    n = decoder.n_times
    ends = np.array([e["index"] for e in live]) + offset  # window ends in the file
    live_proba = np.array([e["proba"] for e in live])
    # offline: the decoder on the same windows of the file
    offline = decoder.predict_proba(np.stack([signal[:, k - n + 1:k + 1] for k in ends]))
    # pseudo-online: the replayed loop, one window ending on each "cue"
    rep = replay_trials(decoder, signal, mi_recording.info["sfreq"], decoder.ch_names, ends,
                        step_s=0.1, horizon_s=0.0)
    pseudo = rep.proba[:, 0]
    # same code, one window at a time instead of a batch: equal to rounding (1e-16)
    np.testing.assert_allclose(pseudo, offline, rtol=0, atol=1e-12)
    # live probabilities are recorded to 5 decimals
    np.testing.assert_allclose(live_proba, offline, atol=1e-5)
    assert (live_proba.argmax(1) == offline.argmax(1)).all()
