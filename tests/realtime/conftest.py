"""Fixtures of the real-time tests: a fitted motor-imagery decoder and its recordings."""

from __future__ import annotations

import mne
import numpy as np
import pytest

import bci
from bci.models.decoder import Decoder


def _cue_windows(raw, tmin: float, n_times: int):
    events, event_id = mne.events_from_annotations(raw, verbose=False)
    names = {v: k for k, v in event_id.items()}
    data = raw.get_data()
    start = int(round(tmin * raw.info["sfreq"]))
    X = np.stack([data[:, o + start:o + start + n_times] for o, _, _ in events])
    return X, np.array([names[c] for _, _, c in events])


@pytest.fixture(scope="session")
def mi_decoder():
    """Return a TS+LR decoder (8 channels, 128 Hz, 0.5-2.5 s windows) fitted on synthetic MI."""
    from bci.data import make_motor_imagery

    train = make_motor_imagery(25, n_chans=8, sfreq=128.0, random_state=0)
    decoder = Decoder(estimator=bci.get_pipeline("TS+LR"), ch_names=train.ch_names,
                      sfreq=128.0, tmin=0.5, tmax=2.5, classes=["left_hand", "right_hand"],
                      filters=[(8.0, 30.0)], unit_factor=1e6,
                      info={"pipeline": "TS+LR", "dataset": "make_motor_imagery"})
    X, y = _cue_windows(train, decoder.tmin, decoder.n_times)
    decoder.estimator.fit(decoder.preprocess(X), (y == "right_hand").astype(int))
    return decoder


@pytest.fixture(scope="session")
def mi_recording():
    """Return a held-out synthetic MI recording (other seed) to replay."""
    from bci.data import make_motor_imagery

    return make_motor_imagery(8, n_chans=8, sfreq=128.0, random_state=1)
