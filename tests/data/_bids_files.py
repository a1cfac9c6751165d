"""Small BIDS folders written with mne-bids for the BIDSDataset tests (simulated and real)."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np

from bci.data import make_motor_imagery

MEG_IEEG = Path("/work/shared/data/meg_ieeg")
ELEKTA = MEG_IEEG / "mne-testing-data" / "misc" / "test_elekta_3ch_raw.fif"
CTF = MEG_IEEG / "mne-testing-data" / "CTF" / "testdata_ctf_short_discontinuous.ds_raw.fif"
KIT = MEG_IEEG / "mne-python" / "mne" / "io" / "kit" / "tests" / "data" / "test_bin_raw.fif"
ECOG = (MEG_IEEG / "mne-testing-data" / "Persyst"
        / "sub-pt1_ses-02_task-monitor_acq-ecog_run-01_clip2.lay")
EVOKED = MEG_IEEG / "mne-python" / "mne" / "io" / "tests" / "data" / "test-ave.fif.gz"


def write_raw(raw, root, *, subject="01", session=None, task="mi", run=None, datatype="eeg",
              events=None, event_id=None, fmt="auto"):
    """Write one recording with :func:`mne_bids.write_raw_bids`; return its BIDSPath."""
    import mne_bids

    path = mne_bids.BIDSPath(subject=subject, session=session, task=task, run=run,
                             datatype=datatype, root=root)
    mne_bids.write_raw_bids(raw, path, events=events, event_id=event_id, format=fmt,
                            allow_preload=True, overwrite=True, verbose=False)
    return path


def write_simulated(root, *, subjects=("01", "02"), sessions=(None,), runs=("01", "02"),
                    n_trials=6, sfreq=128.0, sfreqs=None):
    """Write simulated motor imagery (``make_motor_imagery``), ``n_trials`` a class a run.

    ``sfreqs`` (a dict run -> Hz) records some runs at another rate. Returns the number of
    trials of each class written for each subject.
    """
    for s, sub in enumerate(subjects):
        for k, ses in enumerate(sessions):
            for r, run in enumerate(runs):
                rate = (sfreqs or {}).get(run, sfreq)
                raw = make_motor_imagery(n_trials, sfreq=rate,
                                         random_state=1000 * s + 100 * k + r)
                write_raw(raw, root, subject=sub, session=ses, run=run, fmt="BrainVision")
    return n_trials * len(sessions) * len(runs)


def elekta_events():
    """Read the Elekta recording and its 162 triggers (``mne.find_events``)."""
    raw = mne.io.read_raw_fif(ELEKTA, verbose="error")
    return raw, mne.find_events(raw, shortest_event=1, verbose=False)


def write_elekta(root, subject="01"):
    """Write the Elekta 3-channel MEG recording, its 162 triggers as ``trial_type`` ``code<N>``."""
    raw, events = elekta_events()
    event_id = {f"code{c}": int(c) for c in np.unique(events[:, 2])}
    return write_raw(raw, root, subject=subject, task="triggers", datatype="meg", fmt="FIF",
                     events=events, event_id=event_id)


def ecog_clip():
    """Read the 83-channel ECoG clip (Persyst), channels typed ``ecog``."""
    raw = mne.io.read_raw_persyst(ECOG, verbose="error")
    raw.set_channel_types(dict.fromkeys(raw.ch_names, "ecog"), verbose="error")
    return raw
