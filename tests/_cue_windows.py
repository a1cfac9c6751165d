"""Windows cut from a MOABB dataset's continuous recordings at each cue (shared by tests)."""

from __future__ import annotations

import mne
import numpy as np


def cue_windows(dataset, decoder, subject: int) -> tuple[np.ndarray, np.ndarray]:
    """Return unfiltered windows (volts) cut at each cue of ``subject``, and their labels.

    Windows start ``decoder.tmin`` after the cue and hold ``decoder.n_times`` samples of the
    decoder's channels; cues of classes the decoder does not know are skipped.
    """
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
